"""Merkle proofs: verification against block headers (BRC-74 BUMP via bsv-sdk's MerklePath; TSC),
and building the tree and BUMPs of a block from its ordered txids (:class:`MerkleTree`).

A proof is only as good as the header it is checked against: the computed root must equal the
merkle root of the longest-chain block at the proof's height (the check ARC added in arc#780).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from bsv.merkle_path import MerklePath

from proofline_kit.outbound.deadline import Deadline
from proofline_kit.wire import ByteReader, TxFormatError, varint

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


def _single_leaf_root(data: bytes) -> tuple[int, str] | None:
    """(height, txid) when ``data`` is the BUMP of a one-transaction block: one level holding one
    txid leaf at offset 0 (ts-sdk ``MerklePath.fromCoinbaseTxidAndHeight``; its ``computeRoot``
    answers the txid itself). bsv-sdk's Python MerklePath cannot read that form."""
    try:
        reader = ByteReader(data)
        height = reader.varint()
        if reader.take(1) != b"\x01" or reader.varint() != 1 or reader.varint() != 0:
            return None
        if not reader.take(1)[0] & _FLAG_TXID:
            return None
        leaf = reader.take(32)
    except TxFormatError:
        return None
    return (height, leaf[::-1].hex()) if reader.at_end() else None


def bump_root(txid: str, bump_hex: str) -> tuple[int, str]:
    """(block height, merkle root in display hex) that the BUMP proves for ``txid``."""
    try:
        data = bytes.fromhex(bump_hex)
    except ValueError as exc:
        raise MalformedProof(f"not a BUMP: {exc}") from exc
    single = _single_leaf_root(data)
    if single is not None:
        if single[1] != txid.lower():
            raise TxidNotInProof(f"the BUMP does not contain {txid.lower()}")
        return single
    try:
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


# ---- building BUMPs from a block's txids (a wallet that scans whole blocks) -------------------

_FLAG_HASH = 0
_FLAG_DUPLICATE = 1
_FLAG_TXID = 2


class MerkleTree:
    """The merkle tree of a block's ordered txids (display hex, coinbase first), built once so the
    root and any number of BRC-74 BUMPs come from it. Hashes are kept in internal byte order; the
    last node of an odd level pairs with itself, as in Bitcoin.

    A one-transaction block has the coinbase txid as its root and gets a one-level BUMP holding
    just that txid (ts-sdk's form; :func:`bump_root` reads it)."""

    __slots__ = ("_levels",)

    def __init__(self, txids: Sequence[str]) -> None:
        if not txids:
            raise ValueError("a merkle tree needs at least one txid")
        if not all(len(t) == 64 for t in txids):
            raise ValueError("a txid has 64 hex digits")
        text = "".join(txids)
        if not (text.isascii() and text.isalnum()):  # bytes.fromhex would skip spaces
            raise ValueError("a txid is hex")
        joined = bytes.fromhex(text)  # ValueError unless every txid is hex
        level = [joined[i : i + 32][::-1] for i in range(0, len(joined), 32)]
        levels = [level]
        sha = hashlib.sha256
        while len(level) > 1:
            if len(level) % 2:
                level = [*level, level[-1]]
            level = [sha(sha(level[i] + level[i + 1]).digest()).digest() for i in range(0, len(level), 2)]
            levels.append(level)
        self._levels = levels

    @property
    def size(self) -> int:
        """How many transactions the block holds."""
        return len(self._levels[0])

    @property
    def root(self) -> str:
        """The merkle root in display hex (what a header's ``merkleroot`` shows)."""
        return self._levels[-1][0][::-1].hex()

    def bump(self, indices: int | Iterable[int], block_height: int) -> str:
        """The BUMP (hex) proving the transactions at ``indices`` (block positions, 0 = coinbase):
        one index gives the usual single-transaction path; several give one compound path
        carrying each as a txid leaf and only the hashes none of them lets a verifier compute."""
        wanted = sorted({indices} if isinstance(indices, int) else set(indices))
        count = len(self._levels[0])
        if not wanted or wanted[0] < 0 or wanted[-1] >= count:
            raise ValueError(f"indices must be block positions 0..{count - 1}")
        if block_height < 0:
            raise ValueError("block height must not be negative")
        leaves = self._levels[0]
        if count == 1:
            return (varint(block_height) + b"\x01\x01\x00\x02" + leaves[0]).hex()
        tree_height = len(self._levels) - 1
        out = [varint(block_height), bytes((tree_height,))]
        known = wanted
        for h in range(tree_height):
            level = self._levels[h]  # unpadded: a missing right sibling is the duplicate
            entries: dict[int, bytes] = {}
            if h == 0:
                for i in known:
                    entries[i] = bytes((_FLAG_TXID,)) + level[i]
            known_set = set(known)
            for p in known:
                sibling = p ^ 1
                if sibling in known_set or sibling in entries:
                    continue
                if sibling < len(level):
                    entries[sibling] = bytes((_FLAG_HASH,)) + level[sibling]
                else:
                    entries[sibling] = bytes((_FLAG_DUPLICATE,))
            out.append(varint(len(entries)))
            out.extend(varint(offset) + entries[offset] for offset in sorted(entries))
            known = sorted({p >> 1 for p in known})
        return b"".join(out).hex()

    def bumps(self, indices: Iterable[int], block_height: int) -> dict[int, str]:
        """One single-transaction BUMP per index, keyed by index."""
        return {i: self.bump(i, block_height) for i in sorted(set(indices))}


def merkle_root(txids: Sequence[str]) -> str:
    """The merkle root (display hex) of a block's ordered txids."""
    return MerkleTree(txids).root


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
