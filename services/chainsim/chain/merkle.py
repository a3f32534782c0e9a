"""Merkle trees and BRC-74 BUMP encoding.

Hashes are in internal (little-endian) byte order throughout; an odd node at the end of a level is
paired with itself, as in Bitcoin.
"""

from __future__ import annotations

import hashlib

from services.chainsim.chain.txcodec import varint

_FLAG_HASH = 0
_FLAG_DUPLICATE = 1
_FLAG_TXID = 2


def _h(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def merkle_levels(leaves: list[bytes]) -> list[list[bytes]]:
    """All levels of the tree: ``levels[0]`` are the leaves, ``levels[-1] == [root]``."""
    if not leaves:
        raise ValueError("a merkle tree needs at least one leaf")
    levels = [list(leaves)]
    level = levels[0]
    while len(level) > 1:
        nxt: list[bytes] = []
        last = len(level) - 1
        for i in range(0, len(level), 2):
            left = level[i]
            right = level[i + 1] if i < last else left
            nxt.append(_h(left + right))
        levels.append(nxt)
        level = nxt
    return levels


def merkle_root(leaves: list[bytes]) -> bytes:
    return merkle_levels(leaves)[-1][0]


def bump(levels: list[list[bytes]], index: int, block_height: int) -> bytes:
    """The BUMP (BRC-74) proving leaf ``index`` against the root of ``levels``.

    A block of one transaction (its root is the coinbase txid) gets a one-level path holding just
    that txid, as ts-sdk's ``MerklePath.fromCoinbaseTxidAndHeight`` builds it and its
    ``computeRoot`` reads it ("special case for blocks with only one transaction")."""
    if len(levels) == 1:
        return b"".join((varint(block_height), b"\x01\x01", varint(0), bytes((_FLAG_TXID,)), levels[0][0]))
    tree_height = len(levels) - 1
    out = [varint(block_height), bytes((tree_height,))]
    for h in range(tree_height):
        level = levels[h]
        pos = index >> h
        sib = pos ^ 1
        leaves: list[tuple[int, int, bytes]] = []
        if h == 0:
            leaves.append((pos, _FLAG_TXID, level[pos]))
        if sib < len(level):
            leaves.append((sib, _FLAG_HASH, level[sib]))
        else:
            leaves.append((sib, _FLAG_DUPLICATE, b""))
        leaves.sort()
        out.append(varint(len(leaves)))
        for offset, flag, digest in leaves:
            out += [varint(offset), bytes((flag,)), digest]
    return b"".join(out)


def root_from_bump(leaf: bytes, proof: bytes) -> tuple[int, bytes]:
    """Block height and root that ``proof`` gives for ``leaf`` (our own check; tests also use bsv-sdk)."""
    p = 0

    def read_varint() -> int:
        nonlocal p
        first = proof[p]
        if first < 0xFD:
            p += 1
            return first
        size = {0xFD: 2, 0xFE: 4, 0xFF: 8}[first]
        value = int.from_bytes(proof[p + 1 : p + 1 + size], "little")
        p += 1 + size
        return value

    height = read_varint()
    tree_height = proof[p]
    p += 1
    current = leaf
    index: int | None = None
    for h in range(tree_height):
        count = read_varint()
        entries: dict[int, tuple[int, bytes]] = {}
        for _ in range(count):
            offset = read_varint()
            flag = proof[p]
            p += 1
            digest = b""
            if flag != _FLAG_DUPLICATE:
                digest = proof[p : p + 32]
                p += 32
            entries[offset] = (flag, digest)
            if h == 0 and flag == _FLAG_TXID and digest == leaf:
                index = offset
        if index is None:
            raise ValueError("leaf not found in proof")
        if tree_height == 1 and count == 1:
            return height, leaf  # a one-transaction block: the root is the txid
        pos = index >> h
        flag, digest = entries[pos ^ 1]
        sibling = current if flag == _FLAG_DUPLICATE else digest
        current = _h(current + sibling) if pos % 2 == 0 else _h(sibling + current)
    return height, current
