"""Transaction bytes as the providers need them: the txid, the raw serialization (WhatsOnChain, node)
and, when the caller has it, Extended Format (BRC-30) so ARC can validate without fetching parents."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

_EF_MARKER = b"\x00\x00\x00\x00\x00\xef"


class TxFormatError(ValueError):
    """The bytes are not a complete raw or Extended Format transaction."""


class _Reader:
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

    def script(self) -> None:
        self.take(self.varint())


def _txid(raw: bytes) -> str:
    return hashlib.sha256(hashlib.sha256(raw).digest()).digest()[::-1].hex()


def _strip_ef(data: bytes) -> bytes:
    """The raw serialization of an EF transaction (drops the marker and each input's prevout data)."""
    reader = _Reader(data)
    parts = [reader.take(4)]
    reader.take(len(_EF_MARKER))
    start = reader.pos
    n_in = reader.varint()
    parts.append(data[start : reader.pos])
    for _ in range(n_in):
        begin = reader.pos
        reader.take(36)
        reader.script()
        reader.take(4)
        parts.append(data[begin : reader.pos])
        reader.take(8)  # previous output's satoshis
        reader.script()  # previous output's locking script
    begin = reader.pos
    _skip_outputs_and_locktime(reader)
    parts.append(data[begin : reader.pos])
    _expect_end(reader)
    return b"".join(parts)


def _skip_outputs_and_locktime(reader: _Reader) -> None:
    for _ in range(reader.varint()):
        reader.take(8)
        reader.script()
    reader.take(4)


def _expect_end(reader: _Reader) -> None:
    if reader.pos != len(reader.data):
        raise TxFormatError(f"{len(reader.data) - reader.pos} trailing bytes after the transaction")


def _check_raw(data: bytes) -> None:
    reader = _Reader(data)
    reader.take(4)
    for _ in range(reader.varint()):
        reader.take(36)
        reader.script()
        reader.take(4)
    _skip_outputs_and_locktime(reader)
    _expect_end(reader)


@dataclass(frozen=True, slots=True)
class PreparedTx:
    """A transaction ready to broadcast. Build with :meth:`from_bytes` / :meth:`from_hex`."""

    txid: str
    raw: bytes
    ef: bytes | None = None

    @classmethod
    def from_bytes(cls, data: bytes) -> PreparedTx:
        """Accepts raw or Extended Format bytes (BEEF is not supported: send its last tx as EF)."""
        if len(data) >= 4 and data[2:4] == b"\xbe\xef":
            raise TxFormatError("BEEF is not supported; pass the transaction in raw or Extended Format")
        if data[4:10] == _EF_MARKER:
            raw = _strip_ef(data)
            return cls(_txid(raw), raw, data)
        _check_raw(data)
        return cls(_txid(data), data, None)

    @classmethod
    def from_hex(cls, hex_str: str) -> PreparedTx:
        try:
            data = bytes.fromhex(hex_str)
        except ValueError as exc:
            raise TxFormatError("transaction hex is not hex") from exc
        return cls.from_bytes(data)

    @property
    def parent_txids(self) -> frozenset[str]:
        """Txids of the outputs this transaction spends."""
        reader = _Reader(self.raw)
        reader.take(4)
        parents: set[str] = set()
        for _ in range(reader.varint()):
            parents.add(reader.take(36)[31::-1].hex())
            reader.script()
            reader.take(4)
        return frozenset(parents)

    @property
    def arc_payload(self) -> bytes:
        """What ARC should get: EF when we have it (no parent lookups, no 460), else raw."""
        return self.ef if self.ef is not None else self.raw


def require_txid(txid: str) -> str:
    """``txid`` in lower-case display hex; ValueError unless it is 64 hex digits (it goes in URLs)."""
    if len(txid) != 64:
        raise ValueError(f"a txid has 64 hex digits, got {len(txid)}")
    try:
        bytes.fromhex(txid)
    except ValueError as exc:
        raise ValueError("a txid is hex") from exc
    return txid.lower()
