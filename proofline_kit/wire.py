"""Bitcoin transactions on the wire, for every service that builds or reads them: varints, a
bounds-checked reader, txids, typed parse/serialize, and Extended Format (BRC-30) so ARC can
validate without looking parents up."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

# Every satoshi that can ever exist (21,000,000 coins): no amount, and no sum of amounts, above it is real.
MAX_SATOSHIS = 2_100_000_000_000_000


class TxFormatError(ValueError):
    """The bytes are not a complete raw or Extended Format transaction."""


@dataclass(frozen=True, slots=True, order=True)
class Outpoint:
    txid: str  # display-order hex
    vout: int

    def __str__(self) -> str:
        return f"{self.txid}:{self.vout}"


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


_EF_MARKER = b"\x00\x00\x00\x00\x00\xef"


@dataclass(frozen=True, slots=True)
class TxInput:
    outpoint: Outpoint
    unlocking_script: bytes = b""
    sequence: int = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class TxOutput:
    satoshis: int
    locking_script: bytes


@dataclass(frozen=True, slots=True)
class Tx:
    inputs: tuple[TxInput, ...]
    outputs: tuple[TxOutput, ...]
    version: int = 1
    locktime: int = 0


def _outpoint(outpoint: Outpoint) -> bytes:
    return bytes.fromhex(outpoint.txid)[::-1] + outpoint.vout.to_bytes(4, "little")


def output_bytes(satoshis: int, locking_script: bytes) -> bytes:
    """One serialized output: value (8 bytes LE), script length, script."""
    return satoshis.to_bytes(8, "little") + varint(len(locking_script)) + locking_script


def _outputs(outputs: Sequence[TxOutput]) -> bytes:
    return varint(len(outputs)) + b"".join(output_bytes(o.satoshis, o.locking_script) for o in outputs)


def serialize(tx: Tx) -> bytes:
    parts = [tx.version.to_bytes(4, "little"), varint(len(tx.inputs))]
    for tx_input in tx.inputs:
        parts.append(_input(tx_input))
    parts.append(_outputs(tx.outputs))
    parts.append(tx.locktime.to_bytes(4, "little"))
    return b"".join(parts)


def _input(tx_input: TxInput) -> bytes:
    script = tx_input.unlocking_script
    return _outpoint(tx_input.outpoint) + varint(len(script)) + script + tx_input.sequence.to_bytes(4, "little")


def parse(raw: bytes) -> Tx:
    reader = ByteReader(raw)
    version = int.from_bytes(reader.take(4), "little")
    inputs = []
    for _ in range(reader.varint()):
        prev = reader.take(36)
        script = reader.take(reader.varint())
        sequence = int.from_bytes(reader.take(4), "little")
        inputs.append(TxInput(Outpoint(prev[31::-1].hex(), int.from_bytes(prev[32:], "little")), script, sequence))
    outputs = []
    for _ in range(reader.varint()):
        satoshis = int.from_bytes(reader.take(8), "little")
        outputs.append(TxOutput(satoshis, reader.take(reader.varint())))
    locktime = int.from_bytes(reader.take(4), "little")
    if reader.pos != len(raw):
        raise ValueError("trailing bytes after the transaction")
    return Tx(tuple(inputs), tuple(outputs), version, locktime)


def extended_format(raw: bytes, spent: Sequence[TxOutput]) -> bytes:
    """The signed transaction with each input's previous output appended (BRC-30)."""
    tx = parse(raw)
    if len(spent) != len(tx.inputs):
        raise ValueError("one spent output per input is required")
    parts = [tx.version.to_bytes(4, "little"), _EF_MARKER, varint(len(tx.inputs))]
    for tx_input, prevout in zip(tx.inputs, spent, strict=True):
        parts.append(_input(tx_input))
        parts.append(prevout.satoshis.to_bytes(8, "little") + varint(len(prevout.locking_script)))
        parts.append(prevout.locking_script)
    parts.append(_outputs(tx.outputs))
    parts.append(tx.locktime.to_bytes(4, "little"))
    return b"".join(parts)
