"""BUMP and TSC verification offline: our own tree and BUMP encoder against bsv-sdk's MerklePath."""

from __future__ import annotations

import hashlib

import pytest

from proofline_kit.chain import BlockHeader, Deadline, ProofVerdict, TscProof, verify_merkle_path, verify_tsc_proof
from proofline_kit.chain.merkle import MalformedProof, TxidNotInProof, bump_root, tsc_root


def dsha(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def levels_of(txids: list[str]) -> list[list[bytes]]:
    level = [bytes.fromhex(t)[::-1] for t in txids]
    levels = [level]
    while len(level) > 1:
        if len(level) % 2:
            level = [*level, level[-1]]
        level = [dsha(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
        levels.append(level)
    return levels


def varint(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    return b"\xfd" + n.to_bytes(2, "little") if n <= 0xFFFF else b"\xfe" + n.to_bytes(4, "little")


def bump_for(txids: list[str], index: int, height: int) -> str:
    levels = levels_of(txids)
    out = [varint(height), bytes([len(levels) - 1])]
    for h, level in enumerate(levels[:-1]):
        sibling = (index >> h) ^ 1
        leaves: list[bytes] = []
        if h == 0:
            leaves.append(varint(index) + b"\x02" + level[index])
        if sibling < len(level):
            leaves.append(varint(sibling) + b"\x00" + level[sibling])
        else:
            leaves.append(varint(sibling) + b"\x01")
        out.append(varint(len(leaves)) + b"".join(sorted(leaves)))
    return b"".join(out).hex()


def tsc_for(txids: list[str], index: int, target: str) -> TscProof:
    levels = levels_of(txids)
    nodes = []
    for h, level in enumerate(levels[:-1]):
        sibling = (index >> h) ^ 1
        nodes.append(level[sibling][::-1].hex() if sibling < len(level) else "*")
    return TscProof(index, txids[index], target, tuple(nodes))


class Headers:
    def __init__(self, *headers: BlockHeader) -> None:
        self.headers = headers
        self.asked: list[int | str] = []

    async def block_header(self, block: int | str, *, deadline: Deadline | None = None) -> BlockHeader | None:
        self.asked.append(block)
        for h in self.headers:
            if block in (h.height, h.block_hash):
                return h
        return None


TXIDS = [hashlib.sha256(bytes([i])).hexdigest() for i in range(7)]  # odd sizes exercise duplicates
ROOT = levels_of(TXIDS)[-1][0][::-1].hex()
HEADER = BlockHeader("e1" * 32, 800_000, ROOT, "e0" * 32, 1, 3)


@pytest.mark.parametrize("index", range(len(TXIDS)))
async def test_every_position_verifies(index: int) -> None:
    bump = bump_for(TXIDS, index, 800_000)
    assert bump_root(TXIDS[index], bump) == (800_000, ROOT)
    check = await verify_merkle_path(TXIDS[index], bump, Headers(HEADER))
    assert check.verdict is ProofVerdict.VALID
    assert (check.block_hash, check.block_height) == (HEADER.block_hash, 800_000)


async def test_tampering_is_caught() -> None:
    bump = bump_for(TXIDS, 2, 800_000)
    flipped = bytearray(bytes.fromhex(bump))
    flipped[-1] ^= 0xFF
    headers = Headers(HEADER)

    assert (await verify_merkle_path(TXIDS[2], flipped.hex(), headers)).verdict is ProofVerdict.ROOT_MISMATCH
    assert (await verify_merkle_path(TXIDS[5], bump, headers)).verdict is ProofVerdict.TXID_NOT_IN_PATH
    assert (await verify_merkle_path(TXIDS[2], bump + "00", headers)).verdict is ProofVerdict.MALFORMED
    assert (await verify_merkle_path(TXIDS[2], bump[:-10], headers)).verdict is ProofVerdict.MALFORMED
    assert (await verify_merkle_path(TXIDS[2], "zz", headers)).verdict is ProofVerdict.MALFORMED
    moved = bump_for(TXIDS, 2, 800_001)
    assert (await verify_merkle_path(TXIDS[2], moved, headers)).verdict is ProofVerdict.UNKNOWN_BLOCK


async def test_stale_header_is_not_trusted() -> None:
    stale = BlockHeader("e3" * 32, 800_000, ROOT, "e0" * 32, 1, -1)
    check = await verify_merkle_path(TXIDS[0], bump_for(TXIDS, 0, 800_000), Headers(stale))
    assert check.verdict is ProofVerdict.UNKNOWN_BLOCK


def test_bump_root_errors() -> None:
    with pytest.raises(TxidNotInProof):
        bump_root("00" * 32, bump_for(TXIDS, 1, 9))
    with pytest.raises(MalformedProof):
        bump_root(TXIDS[1], "")


@pytest.mark.parametrize("index", range(len(TXIDS)))
async def test_tsc_proofs(index: int) -> None:
    proof = tsc_for(TXIDS, index, HEADER.block_hash)
    assert tsc_root(TXIDS[index], proof) == ROOT
    headers = Headers(HEADER)
    assert (await verify_tsc_proof(TXIDS[index], proof, headers)).valid
    assert headers.asked == [HEADER.block_hash]


async def test_tsc_tampering() -> None:
    proof = tsc_for(TXIDS, 3, HEADER.block_hash)
    bad_node = TscProof(proof.index, proof.tx_or_id, proof.target, ("00" * 32, *proof.nodes[1:]))
    wrong_index = TscProof(proof.index ^ 1, proof.tx_or_id, proof.target, proof.nodes)
    garbage = TscProof(proof.index, proof.tx_or_id, proof.target, ("xyz",))
    headers = Headers(HEADER)
    assert (await verify_tsc_proof(TXIDS[3], bad_node, headers)).verdict is ProofVerdict.ROOT_MISMATCH
    assert (await verify_tsc_proof(TXIDS[3], wrong_index, headers)).verdict is ProofVerdict.ROOT_MISMATCH
    assert (await verify_tsc_proof(TXIDS[3], garbage, headers)).verdict is ProofVerdict.MALFORMED
    assert (await verify_tsc_proof(TXIDS[4], proof, headers)).verdict is ProofVerdict.TXID_NOT_IN_PATH
