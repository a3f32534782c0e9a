"""Bitcoin wire-format primitives every transaction codec of the suite shares: varints, a
bounds-checked byte reader, and the txid of raw bytes."""

from __future__ import annotations

import hashlib


class TxFormatError(ValueError):
    """The bytes are not a complete raw or Extended Format transaction."""


def varint(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    if n <= 0xFFFFFFFF:
        return b"\xfe" + n.to_bytes(4, "little")
    return b"\xff" + n.to_bytes(8, "little")


def txid_of(raw: bytes) -> str:
    """Display-order (big-endian) hex of the double SHA-256 of the raw transaction."""
    return hashlib.sha256(hashlib.sha256(raw).digest()).digest()[::-1].hex()


class ByteReader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise TxFormatError("transaction bytes end early")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def varint(self) -> int:
        first = self.take(1)[0]
        if first < 0xFD:
            return first
        width = 2 if first == 0xFD else 4 if first == 0xFE else 8
        return int.from_bytes(self.take(width), "little")

    def at_end(self) -> bool:
        return self.pos == len(self.data)
