"""Transaction wire format: parse raw and Extended Format (BRC-30) bytes, build simple transactions.

Hot path of ``POST /v1/txs``: everything works on ``bytes`` slices and ints; outpoints are the 36
wire bytes (little-endian txid + little-endian vout) so they can be used as dictionary keys as is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EF_MARKER = b"\x00\x00\x00\x00\x00\xef"
BEEF_V1_MARKER = b"\xbe\xef"
_MAX_MONEY = 21_000_000 * 100_000_000


class TxDecodeError(ValueError):
    """The bytes are not a (complete) transaction."""


def hash256(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def txid_hex(txid_le: bytes) -> str:
    """Display (big-endian) hex of an internal little-endian txid."""
    return txid_le[::-1].hex()


def txid_le(txid_hex_str: str) -> bytes:
    """Internal byte order of a display hex txid; raises ValueError when it is not 64 hex chars."""
    if len(txid_hex_str) != 64:
        raise ValueError("txid must be 64 hex characters")
    return bytes.fromhex(txid_hex_str)[::-1]


def outpoint(txid_le_bytes: bytes, vout: int) -> bytes:
    return txid_le_bytes + vout.to_bytes(4, "little")


def varint(n: int) -> bytes:
    if n < 0xFD:
        return bytes((n,))
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    if n <= 0xFFFFFFFF:
        return b"\xfe" + n.to_bytes(4, "little")
    return b"\xff" + n.to_bytes(8, "little")


class ParsedTx:
    """One decoded transaction. ``inputs``: (outpoint36, unlocking script, sequence)."""

    __slots__ = ("ef", "inputs", "locktime", "outputs", "outputs_blob", "raw", "txid", "version")

    def __init__(
        self,
        raw: bytes,
        txid: bytes,
        version: int,
        locktime: int,
        inputs: list[tuple[bytes, bytes, int]],
        outputs: list[tuple[int, bytes]],
        outputs_blob: bytes,
        ef: list[tuple[int, bytes]] | None,
    ) -> None:
        self.raw = raw
        self.txid = txid
        self.version = version
        self.locktime = locktime
        self.inputs = inputs
        self.outputs = outputs
        self.outputs_blob = outputs_blob
        self.ef = ef

    @property
    def txid_hex(self) -> str:
        return self.txid[::-1].hex()

    @property
    def size(self) -> int:
        return len(self.raw)


def _varint_at(b: bytes, p: int) -> tuple[int, int]:
    x = b[p]
    if x < 0xFD:
        return x, p + 1
    if x == 0xFD:
        return int.from_bytes(b[p + 1 : p + 3], "little"), p + 3
    if x == 0xFE:
        return int.from_bytes(b[p + 1 : p + 5], "little"), p + 5
    return int.from_bytes(b[p + 1 : p + 9], "little"), p + 9


def parse_tx(data: bytes, start: int = 0) -> tuple[ParsedTx, int]:
    """Decode one raw or EF transaction at ``start``; return it and the offset just after it."""
    try:
        return _parse(data, start)
    except IndexError as exc:
        raise TxDecodeError("truncated transaction") from exc


def _parse(b: bytes, start: int) -> tuple[ParsedTx, int]:
    n = len(b)
    p = start + 4
    if p > n:
        raise TxDecodeError("truncated transaction")
    version = int.from_bytes(b[start:p], "little")
    is_ef = b[p : p + 6] == EF_MARKER
    if is_ef:
        p += 6
    n_in, p = _varint_at(b, p)
    if n_in * 41 > n - p:
        raise TxDecodeError("input count exceeds data")
    inputs: list[tuple[bytes, bytes, int]] = []
    ef: list[tuple[int, bytes]] | None = [] if is_ef else None
    pieces: list[bytes] | None = [b[start : start + 4], varint(n_in)] if is_ef else None
    for _ in range(n_in):
        in_start = p
        op = b[p : p + 36]
        slen, p = _varint_at(b, p + 36)
        script = b[p : p + slen]
        p += slen
        seq_end = p + 4
        if seq_end > n:
            raise TxDecodeError("truncated input")
        seq = int.from_bytes(b[p:seq_end], "little")
        p = seq_end
        inputs.append((op, script, seq))
        if ef is not None and pieces is not None:
            pieces.append(b[in_start:p])
            sats = int.from_bytes(b[p : p + 8], "little")
            plen, p = _varint_at(b, p + 8)
            prev_script = b[p : p + plen]
            p += plen
            if p > n:
                raise TxDecodeError("truncated extended input")
            ef.append((sats, prev_script))
    outs_start = p
    n_out, p = _varint_at(b, p)
    if n_out * 9 > n - p:
        raise TxDecodeError("output count exceeds data")
    blob_start = p
    outputs: list[tuple[int, bytes]] = []
    for _ in range(n_out):
        value = int.from_bytes(b[p : p + 8], "little")
        slen, p = _varint_at(b, p + 8)
        outputs.append((value, b[p : p + slen]))
        p += slen
    end = p + 4
    if end > n:
        raise TxDecodeError("truncated transaction")
    locktime = int.from_bytes(b[p:end], "little")
    blob = b[blob_start:p]
    if pieces is None:
        raw = b[start:end] if (start or end != n) else b
    else:
        pieces.append(b[outs_start:end])
        raw = b"".join(pieces)
    tx = ParsedTx(raw, hash256(raw), version, locktime, inputs, outputs, blob, ef)
    return tx, end


def parse_one(data: bytes) -> ParsedTx:
    """Decode exactly one transaction; trailing bytes are an error."""
    tx, end = parse_tx(data, 0)
    if end != len(data):
        raise TxDecodeError("trailing bytes after transaction")
    return tx


def parse_stream(data: bytes) -> list[ParsedTx]:
    """Decode back-to-back transactions (ARC's octet-stream batch body)."""
    out: list[ParsedTx] = []
    p = 0
    while p < len(data):
        tx, p = parse_tx(data, p)
        out.append(tx)
    return out


def is_beef(data: bytes) -> bool:
    return len(data) >= 4 and data[2:4] == BEEF_V1_MARKER


def is_data_script(script: bytes) -> bool:
    """OP_RETURN or OP_FALSE OP_RETURN (go-sdk ``IsData``)."""
    return script[:1] == b"\x6a" or script[:2] == b"\x00\x6a"


def push_only(script: bytes) -> bool:
    """True when every opcode is a push (<= OP_16) and the pushes are well formed."""
    p = 0
    n = len(script)
    while p < n:
        op = script[p]
        p += 1
        if op > 0x60:
            return False
        if 0 < op < 0x4C:
            p += op
        elif op == 0x4C:
            if p >= n:
                return False
            p += 1 + script[p]
        elif op == 0x4D:
            if p + 2 > n:
                return False
            p += 2 + int.from_bytes(script[p : p + 2], "little")
        elif op == 0x4E:
            if p + 4 > n:
                return False
            p += 4 + int.from_bytes(script[p : p + 4], "little")
        if p > n:
            return False
    return True


def pushes(script: bytes) -> list[bytes] | None:
    """The data of each push in a push-only script, or None when it is not push-only."""
    out: list[bytes] = []
    p = 0
    n = len(script)
    while p < n:
        op = script[p]
        p += 1
        if 0 < op < 0x4C:
            size = op
        elif op == 0x4C and p < n:
            size = script[p]
            p += 1
        elif op == 0x4D and p + 2 <= n:
            size = int.from_bytes(script[p : p + 2], "little")
            p += 2
        elif op == 0x4E and p + 4 <= n:
            size = int.from_bytes(script[p : p + 4], "little")
            p += 4
        elif op == 0:
            out.append(b"")
            continue
        else:
            return None
        if p + size > n:
            return None
        out.append(script[p : p + size])
        p += size
    return out


def push_data(data: bytes) -> bytes:
    size = len(data)
    if size < 0x4C:
        return bytes((size,)) + data
    if size <= 0xFF:
        return b"\x4c" + bytes((size,)) + data
    if size <= 0xFFFF:
        return b"\x4d" + size.to_bytes(2, "little") + data
    return b"\x4e" + size.to_bytes(4, "little") + data


def serialize_tx(
    version: int,
    inputs: Sequence[tuple[bytes, bytes, int]],
    outputs: Sequence[tuple[int, bytes]],
    locktime: int = 0,
) -> bytes:
    """Raw bytes of a transaction given (outpoint36, unlocking script, sequence) inputs."""
    parts = [version.to_bytes(4, "little"), varint(len(inputs))]
    for op, script, seq in inputs:
        parts += [op, varint(len(script)), script, seq.to_bytes(4, "little")]
    parts.append(varint(len(outputs)))
    for value, script in outputs:
        parts += [value.to_bytes(8, "little"), varint(len(script)), script]
    parts.append(locktime.to_bytes(4, "little"))
    return b"".join(parts)


def max_money() -> int:
    return _MAX_MONEY


def to_ef(raw: bytes, prevouts: Sequence[tuple[int, bytes]]) -> bytes:
    """Extended Format (BRC-30) bytes of ``raw`` given each input's (satoshis, locking script)."""
    tx = parse_one(raw)
    if len(prevouts) != len(tx.inputs):
        raise ValueError("one prevout per input is required")
    parts = [raw[:4], EF_MARKER, varint(len(tx.inputs))]
    for (op, script, seq), (value, prev_script) in zip(tx.inputs, prevouts, strict=True):
        parts += [
            op,
            varint(len(script)),
            script,
            seq.to_bytes(4, "little"),
            value.to_bytes(8, "little"),
            varint(len(prev_script)),
            prev_script,
        ]
    parts.append(varint(len(tx.outputs)))
    parts.append(tx.outputs_blob)
    parts.append(tx.locktime.to_bytes(4, "little"))
    return b"".join(parts)
