"""Unsigned transactions: parsing, FORKID sighashes, and applying P2PKH signatures.

Everything on this path calls bsv-sdk's native module directly (parse, BIP-143 preimages, hash256,
serialisation): building bsv `Transaction`/`Script` objects costs more than the work itself when a
batch of hundreds of transactions is signed in one call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bsv.native import NATIVE_MODULE
from bsv.utils import encode_pushdata

from proofline_kit.wire import output_bytes, txid_of
from services.signer_gateway.domain.models import SpentOutput

SIGHASH_ALL_FORKID = 0x41
MAX_TX_BYTES = 1_000_000
_P2PKH_PREFIX = b"\x76\xa9\x14"
_P2PKH_SUFFIX = b"\x88\xac"


@dataclass(frozen=True, slots=True)
class ParsedOutput:
    satoshis: int
    locking_script: bytes


class ParsedTransaction:
    """The fields of a raw transaction, as the native parser returns them."""

    __slots__ = ("inputs", "locktime", "outputs", "version")

    def __init__(self, fields: dict[str, Any]) -> None:
        self.version: int = fields["version"]
        self.locktime: int = fields["locktime"]
        self.inputs: list[dict[str, Any]] = fields["inputs"]
        self.outputs: list[dict[str, Any]] = fields["outputs"]

    def serialize(self) -> bytes:
        return bytes(NATIVE_MODULE.tx_to_bytes(self.version, self.inputs, self.outputs, self.locktime))


class UnsignedTransaction:
    """A parsed transaction plus the outputs it spends (one per input)."""

    def __init__(self, tx: ParsedTransaction, spent: tuple[SpentOutput, ...]) -> None:
        if len(spent) != len(tx.inputs):
            raise ValueError("one spent output per input")
        self._tx = tx
        self.spent = spent
        self._raw: bytes | None = None

    @property
    def input_count(self) -> int:
        return len(self._tx.inputs)

    @property
    def outputs(self) -> list[ParsedOutput]:
        return [ParsedOutput(int(o["satoshis"]), bytes(o["locking_script"])) for o in self._tx.outputs]

    def sighashes(self) -> list[bytes]:
        """All SIGHASH_ALL|FORKID digests in one pass."""
        tx = self._tx
        sighash = SIGHASH_ALL_FORKID
        inputs = [
            (i["source_txid"], i["source_output_index"], p.locking_script, p.satoshis, i["sequence"], sighash)
            for i, p in zip(tx.inputs, self.spent, strict=True)
        ]
        outputs = [output_bytes(o["satoshis"], o["locking_script"]) for o in tx.outputs]
        hash256 = NATIVE_MODULE.hash256
        return [bytes(hash256(p)) for p in NATIVE_MODULE.tx_preimages(tx.version, tx.locktime, inputs, outputs)]

    def apply_signature(self, input_index: int, signature_der: bytes, public_key: bytes) -> None:
        unlocking = encode_pushdata(signature_der + bytes([SIGHASH_ALL_FORKID])) + encode_pushdata(public_key)
        self._tx.inputs[input_index]["unlocking_script"] = unlocking
        self._raw = None

    def serialize(self) -> bytes:
        if self._raw is None:
            self._raw = self._tx.serialize()
        return self._raw

    def txid(self) -> str:
        return txid_of(self.serialize())


def parse_transaction(raw: bytes) -> ParsedTransaction | None:
    if not raw or len(raw) > MAX_TX_BYTES:
        return None
    try:
        fields = NATIVE_MODULE.tx_from_bytes(raw)
    except (ValueError, IndexError, TypeError, OverflowError):
        return None
    if fields["bytes_read"] != len(raw) or not fields["inputs"] or not fields["outputs"]:
        return None
    tx = ParsedTransaction(fields)
    # Non-minimal varints parse too; a transaction must round-trip exactly.
    if tx.serialize() != raw:
        return None
    return tx


def p2pkh_locking_script(pubkey_hash: bytes) -> bytes:
    return _P2PKH_PREFIX + pubkey_hash + _P2PKH_SUFFIX


def p2pkh_hash(locking_script: bytes) -> bytes | None:
    """The 20-byte hash a P2PKH script pays, or None for any other script."""
    if (
        len(locking_script) == 25
        and locking_script.startswith(_P2PKH_PREFIX)
        and locking_script.endswith(_P2PKH_SUFFIX)
    ):
        return locking_script[3:23]
    return None


def is_data_output(locking_script: bytes) -> bool:
    """OP_FALSE OP_RETURN (or bare OP_RETURN) data carrier."""
    return locking_script.startswith(b"\x00\x6a") or locking_script.startswith(b"\x6a")
