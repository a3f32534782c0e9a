"""Bitcoin transaction bytes for maintenance transactions: unsigned serialization, txids, and
Extended Format (BRC-30) so ARC can validate without looking parents up."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from proofline_kit.wire import ByteReader, txid_of, varint
from services.utxo.domain.models import Outpoint

__all__ = ["Tx", "TxInput", "TxOutput", "extended_format", "parse", "serialize", "txid_of", "varint"]

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


def _outputs(outputs: Sequence[TxOutput]) -> bytes:
    parts = [varint(len(outputs))]
    for output in outputs:
        parts.append(output.satoshis.to_bytes(8, "little") + varint(len(output.locking_script)) + output.locking_script)
    return b"".join(parts)


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
