"""Merkle proof verification against block headers (BRC-74 BUMP via bsv-sdk's MerklePath; TSC).

A proof is only as good as the header it is checked against: the computed root must equal the
merkle root of the longest-chain block at the proof's height (the check ARC added in arc#780).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from bsv.merkle_path import MerklePath

from proofline_kit.outbound.deadline import Deadline

from .woc_results import BlockHeader, TscProof


class ProofVerdict(Enum):
    VALID = "valid"
    ROOT_MISMATCH = "root_mismatch"  # tampered, or the block was reorganised away
    TXID_NOT_IN_PATH = "txid_not_in_path"
    MALFORMED = "malformed"
    UNKNOWN_BLOCK = "unknown_block"  # no longest-chain block at that height / with that hash


@dataclass(frozen=True, slots=True)
class ProofCheck:
    verdict: ProofVerdict
    txid: str
    block_height: int | None = None
    block_hash: str | None = None
    computed_root: str | None = None
    header_root: str | None = None
    detail: str = ""

    @property
    def valid(self) -> bool:
        return self.verdict is ProofVerdict.VALID


class MalformedProof(ValueError):
    pass


class TxidNotInProof(ValueError):
    pass


class HeaderSource(Protocol):
    """Where trusted headers come from (``WocClient`` satisfies it; so can our own header store)."""

    async def block_header(self, block: int | str, *, deadline: Deadline | None = None) -> BlockHeader | None: ...


def bump_root(txid: str, bump_hex: str) -> tuple[int, str]:
    """(block height, merkle root in display hex) that the BUMP proves for ``txid``."""
    try:
        data = bytes.fromhex(bump_hex)
        path: Any = MerklePath.from_binary(data)
        # The SDK reader ignores trailing bytes; a proof must be exactly one BUMP.
        if len(path.to_binary()) != len(data):
            raise MalformedProof("trailing bytes after the BUMP")
    except MalformedProof:
        raise
    except (ValueError, IndexError, TypeError, KeyError, AssertionError, OverflowError) as exc:
        raise MalformedProof(f"not a BUMP: {exc}") from exc
    txid = txid.lower()
    if not any(leaf.get("hash_str") == txid for leaf in path.path[0]):
        raise TxidNotInProof(f"the BUMP does not contain {txid}")
    try:
        root = str(path.compute_root(txid))
    except ValueError as exc:
        raise MalformedProof(f"incomplete BUMP: {exc}") from exc
    return int(path.block_height), root.lower()


def _dsha(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def tsc_root(txid: str, proof: TscProof) -> str:
    """The merkle root (display hex) a TSC proof yields for ``txid``."""
    try:
        node = bytes.fromhex(txid)[::-1]
        index = proof.index
        for sibling_hex in proof.nodes:
            sibling = node if sibling_hex == "*" else bytes.fromhex(sibling_hex)[::-1]
            if len(sibling) != 32:
                raise MalformedProof("TSC nodes are 32-byte hashes")
            node = _dsha(sibling + node) if index & 1 else _dsha(node + sibling)
            index >>= 1
    except ValueError as exc:
        raise MalformedProof(f"not a TSC proof: {exc}") from exc
    return node[::-1].hex()


def _compare(txid: str, root: str, header: BlockHeader | None, height: int | None) -> ProofCheck:
    if header is None:
        return ProofCheck(ProofVerdict.UNKNOWN_BLOCK, txid, height, computed_root=root)
    if header.confirmations is not None and header.confirmations < 0:  # node convention for a stale block
        return ProofCheck(
            ProofVerdict.UNKNOWN_BLOCK,
            txid,
            header.height,
            header.block_hash,
            root,
            detail="block is not on the longest chain",
        )
    verdict = ProofVerdict.VALID if header.merkle_root == root else ProofVerdict.ROOT_MISMATCH
    return ProofCheck(verdict, txid, header.height, header.block_hash, root, header.merkle_root)


async def verify_merkle_path(
    txid: str, bump_hex: str, headers: HeaderSource, *, deadline: Deadline | None = None
) -> ProofCheck:
    """Check a BUMP (ARC's ``merklePath``) against the header at its block height. Raises
    ``ChainUnavailable`` only when the header source cannot answer."""
    txid = txid.lower()
    try:
        height, root = bump_root(txid, bump_hex)
    except TxidNotInProof as exc:
        return ProofCheck(ProofVerdict.TXID_NOT_IN_PATH, txid, detail=str(exc))
    except MalformedProof as exc:
        return ProofCheck(ProofVerdict.MALFORMED, txid, detail=str(exc))
    header = await headers.block_header(height, deadline=deadline)
    if header is not None and header.height != height:
        return ProofCheck(ProofVerdict.UNKNOWN_BLOCK, txid, height, computed_root=root, detail="header height differs")
    return _compare(txid, root, header, height)


async def verify_tsc_proof(
    txid: str, proof: TscProof, headers: HeaderSource, *, deadline: Deadline | None = None
) -> ProofCheck:
    """Check a TSC proof (WoC ``/proof/tsc``) against the header of its target block."""
    txid = txid.lower()
    if proof.tx_or_id != txid:
        return ProofCheck(ProofVerdict.TXID_NOT_IN_PATH, txid, detail="the proof is for another transaction")
    try:
        root = tsc_root(txid, proof)
    except MalformedProof as exc:
        return ProofCheck(ProofVerdict.MALFORMED, txid, detail=str(exc))
    header = await headers.block_header(proof.target, deadline=deadline)
    return _compare(txid, root, header, None if header is None else header.height)
