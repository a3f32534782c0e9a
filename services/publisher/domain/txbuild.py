"""Publish transactions as bytes: the OP_FALSE OP_RETURN data script, the unsigned transaction
(one pool input, the data output, change), its fee, and Extended Format (BRC-30) for ARC. Pure."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from proofline_kit.chain import FeeRate
from proofline_kit.wire import Outpoint, Tx, TxInput, TxOutput, output_bytes, parse, txid_of, varint
from proofline_kit.wire import extended_format as extended_format_of
from proofline_kit.wire import serialize as serialize_tx

OP_FALSE = 0x00
OP_RETURN = 0x6A
OP_PUSHDATA1 = 0x4C
OP_PUSHDATA2 = 0x4D
OP_PUSHDATA4 = 0x4E
# A P2PKH unlocking script at its largest: push(72-byte low-S DER + sighash byte) + push(33-byte key),
# one byte of slack so the estimate is never below the signed size.
P2PKH_UNLOCK_MAX_BYTES = 1 + 73 + 1 + 33
P2PKH_LOCK_BYTES = 25


class DataMode(Enum):
    # The record's canonical JSON bytes go on chain.
    RECORD = "record"
    # SHA-256 of the record plus a reference (the job id) go on chain; the record stays off chain.
    HASH = "hash"


@dataclass(frozen=True, slots=True)
class DataFormat:
    mode: DataMode = DataMode.RECORD
    # First push of every data output (a protocol tag); empty = none.
    prefix: bytes = b"proofline"


@dataclass(frozen=True, slots=True)
class UnsignedPublish:
    """A publish transaction before signing: one input (the pool UTXO), the data output first,
    change second (if any)."""

    raw: bytes
    funding: Outpoint
    spent: TxOutput
    outputs: tuple[TxOutput, ...]
    fee_satoshis: int
    change: TxOutput | None


def push(data: bytes) -> bytes:
    """The minimal push of `data` (as the interpreter's minimal-push rule wants it)."""
    n = len(data)
    if n < OP_PUSHDATA1:
        return bytes([n]) + data
    if n <= 0xFF:
        return bytes([OP_PUSHDATA1, n]) + data
    if n <= 0xFFFF:
        return bytes([OP_PUSHDATA2]) + n.to_bytes(2, "little") + data
    return bytes([OP_PUSHDATA4]) + n.to_bytes(4, "little") + data


def data_pushes(record: bytes, job_id: str, data_format: DataFormat) -> list[bytes]:
    pushes = [data_format.prefix] if data_format.prefix else []
    if data_format.mode is DataMode.RECORD:
        pushes.append(record)
    else:
        pushes += [hashlib.sha256(record).digest(), job_id.encode()]
    return pushes


def data_script(pushes: Sequence[bytes]) -> bytes:
    return bytes([OP_FALSE, OP_RETURN]) + b"".join(push(p) for p in pushes)


def read_data_script(script: bytes) -> list[bytes] | None:
    """The pushes of an OP_FALSE OP_RETURN script; None when `script` is not one."""
    if script[:2] != bytes([OP_FALSE, OP_RETURN]):
        return None
    pushes: list[bytes] = []
    pos = 2
    while pos < len(script):
        op = script[pos]
        pos += 1
        if op < OP_PUSHDATA1:
            size = op
        elif op == OP_PUSHDATA1:
            size, pos = script[pos], pos + 1
        elif op == OP_PUSHDATA2:
            size, pos = int.from_bytes(script[pos : pos + 2], "little"), pos + 2
        elif op == OP_PUSHDATA4:
            size, pos = int.from_bytes(script[pos : pos + 4], "little"), pos + 4
        else:
            return None
        if pos + size > len(script):
            return None
        pushes.append(script[pos : pos + size])
        pos += size
    return pushes


def serialize(funding: Outpoint, unlocking: bytes, outputs: Sequence[TxOutput]) -> bytes:
    return serialize_tx(Tx((TxInput(funding, unlocking),), tuple(outputs)))


def signed_size(outputs: Sequence[TxOutput]) -> int:
    """Size in bytes of the signed transaction (one P2PKH input) at most."""
    return len(serialize(Outpoint("00" * 32, 0), b"\x00" * P2PKH_UNLOCK_MAX_BYTES, outputs))


def min_funding(data: bytes, fee: FeeRate) -> int:
    """The smallest pool UTXO that can pay for this data output (no change)."""
    return max(1, fee.fee_for(signed_size([TxOutput(0, data)])))


class FundingTooSmall(ValueError):
    pass


def build_publish(
    funding: Outpoint,
    spent: TxOutput,
    data: bytes,
    change_script: bytes,
    fee: FeeRate,
    dust_limit: int,
) -> UnsignedPublish:
    """The unsigned transaction spending `funding` (worth `spent.satoshis`) to the data output and,
    when what is left after the fee is at least `dust_limit`, change to `change_script`."""
    data_out = TxOutput(0, data)
    with_change = fee.fee_for(signed_size([data_out, TxOutput(0, change_script)]))
    change_value = spent.satoshis - with_change
    outputs: tuple[TxOutput, ...]
    if change_value >= max(1, dust_limit):
        change: TxOutput | None = TxOutput(change_value, change_script)
        outputs = (data_out, TxOutput(change_value, change_script))
        paid = with_change
    else:
        change = None
        outputs = (data_out,)
        paid = spent.satoshis
        if paid < fee.fee_for(signed_size(outputs)):
            raise FundingTooSmall(f"{spent.satoshis} sat cannot pay the fee of a {len(data)}-byte data output")
    return UnsignedPublish(serialize(funding, b"", outputs), funding, spent, outputs, paid, change)


SIGHASH_ALL_FORKID = 0x41


def _dsha(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def sighash(unsigned: UnsignedPublish) -> bytes:
    """The SIGHASH_ALL|FORKID digest (BIP143 as BSV uses it) of the publish transaction's input."""
    funding = unsigned.funding
    outpoint = bytes.fromhex(funding.txid)[::-1] + funding.vout.to_bytes(4, "little")
    sequence = b"\xff\xff\xff\xff"
    outputs = b"".join(output_bytes(o.satoshis, o.locking_script) for o in unsigned.outputs)
    preimage = (
        b"\x01\x00\x00\x00"
        + _dsha(outpoint)
        + _dsha(sequence)
        + outpoint
        + varint(len(unsigned.spent.locking_script))
        + unsigned.spent.locking_script
        + unsigned.spent.satoshis.to_bytes(8, "little")
        + sequence
        + _dsha(outputs)
        + b"\x00\x00\x00\x00"
        + SIGHASH_ALL_FORKID.to_bytes(4, "little")
    )
    return _dsha(preimage)


def p2pkh_unlocking(signature_der: bytes, public_key: bytes) -> bytes:
    return push(signature_der + bytes([SIGHASH_ALL_FORKID])) + push(public_key)


def check_signed(unsigned: UnsignedPublish, signed_raw: bytes, claimed_txid: str) -> None:
    """The signer returned our transaction with only the unlocking script filled in, and the txid
    it claims. Raises ValueError otherwise."""
    signed = parse(signed_raw)
    if txid_of(signed_raw) != claimed_txid:
        raise ValueError("the signer's txid does not match the signed bytes")
    if (
        len(signed.inputs) != 1
        or signed.inputs[0].outpoint != unsigned.funding
        or not signed.inputs[0].unlocking_script
    ):
        raise ValueError("the signed transaction spends something else, or is not signed")
    if signed.outputs != unsigned.outputs or signed.version != 1 or signed.locktime != 0:
        raise ValueError("the signed transaction's outputs differ from the ones built")


def extended_format(signed_raw: bytes, spent: TxOutput) -> bytes:
    """The signed one-input transaction with the spent output appended to its input (BRC-30)."""
    return extended_format_of(signed_raw, [spent])
