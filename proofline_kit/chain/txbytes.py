"""Transaction bytes as the providers need them: the txid, the raw serialization (WhatsOnChain, node)
and, when the caller has it, Extended Format (BRC-30) so ARC can validate without fetching parents."""

from __future__ import annotations

from dataclasses import dataclass

from proofline_kit.wire import ByteReader, TxFormatError, txid_of

__all__ = ["PreparedTx", "TxFormatError", "require_txid"]

_EF_MARKER = b"\x00\x00\x00\x00\x00\xef"


def _skip_script(reader: ByteReader) -> None:
    reader.take(reader.varint())


def _strip_ef(data: bytes) -> bytes:
    """The raw serialization of an EF transaction (drops the marker and each input's prevout data)."""
    reader = ByteReader(data)
    parts = [reader.take(4)]
    reader.take(len(_EF_MARKER))
    start = reader.pos
    n_in = reader.varint()
    parts.append(data[start : reader.pos])
    for _ in range(n_in):
        begin = reader.pos
        reader.take(36)
        _skip_script(reader)
        reader.take(4)
        parts.append(data[begin : reader.pos])
        reader.take(8)  # previous output's satoshis
        _skip_script(reader)  # previous output's locking script
    begin = reader.pos
    _skip_outputs_and_locktime(reader)
    parts.append(data[begin : reader.pos])
    _expect_end(reader)
    return b"".join(parts)


def _skip_outputs_and_locktime(reader: ByteReader) -> None:
    for _ in range(reader.varint()):
        reader.take(8)
        _skip_script(reader)
    reader.take(4)


def _expect_end(reader: ByteReader) -> None:
    if reader.pos != len(reader.data):
        raise TxFormatError(f"{len(reader.data) - reader.pos} trailing bytes after the transaction")


def _check_raw(data: bytes) -> None:
    reader = ByteReader(data)
    reader.take(4)
    for _ in range(reader.varint()):
        reader.take(36)
        _skip_script(reader)
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
            return cls(txid_of(raw), raw, data)
        _check_raw(data)
        return cls(txid_of(data), data, None)

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
        reader = ByteReader(self.raw)
        reader.take(4)
        parents: set[str] = set()
        for _ in range(reader.varint()):
            parents.add(reader.take(36)[31::-1].hex())
            _skip_script(reader)
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
