"""Unsigned transactions: parsing, FORKID sighashes, and applying P2PKH signatures."""

from __future__ import annotations

from dataclasses import dataclass

from bsv import Script, Transaction
from bsv.hash import hash256
from bsv.transaction_preimage import tx_preimages
from bsv.utils import encode_pushdata

from services.signer_gateway.domain.models import SpentOutput

SIGHASH_ALL_FORKID = 0x41
MAX_TX_BYTES = 1_000_000
_P2PKH_PREFIX = b"\x76\xa9\x14"
_P2PKH_SUFFIX = b"\x88\xac"


@dataclass(frozen=True, slots=True)
class ParsedOutput:
    satoshis: int
    locking_script: bytes


class UnsignedTransaction:
    """A parsed transaction plus the outputs it spends (one per input)."""

    def __init__(self, tx: Transaction, spent: tuple[SpentOutput, ...]) -> None:
        self._tx = tx
        self.spent = spent
        for tx_input, prevout in zip(tx.inputs, spent, strict=True):
            tx_input.satoshis = prevout.satoshis
            tx_input.locking_script = Script(prevout.locking_script)
            tx_input.sighash = SIGHASH_ALL_FORKID

    @property
    def input_count(self) -> int:
        return len(self._tx.inputs)

    @property
    def outputs(self) -> list[ParsedOutput]:
        return [ParsedOutput(int(o.satoshis), bytes(o.locking_script.serialize())) for o in self._tx.outputs]

    def sighashes(self) -> list[bytes]:
        """All SIGHASH_ALL|FORKID digests in one pass."""
        preimages = tx_preimages(self._tx.inputs, self._tx.outputs, self._tx.version, self._tx.locktime)
        return [bytes(hash256(p)) for p in preimages]

    def apply_signature(self, input_index: int, signature_der: bytes, public_key: bytes) -> None:
        unlocking = encode_pushdata(signature_der + bytes([SIGHASH_ALL_FORKID])) + encode_pushdata(public_key)
        self._tx.inputs[input_index].unlocking_script = Script(unlocking)

    def serialize(self) -> bytes:
        return bytes(self._tx.serialize())

    def txid(self) -> str:
        return bytes(hash256(self.serialize()))[::-1].hex()


def parse_transaction(raw: bytes) -> Transaction | None:
    if not raw or len(raw) > MAX_TX_BYTES:
        return None
    try:
        tx = Transaction.from_hex(raw)
    except (ValueError, IndexError, TypeError, AssertionError):
        return None
    if tx is None or not tx.inputs or not tx.outputs:
        return None
    # from_hex tolerates trailing bytes; a transaction must round-trip exactly.
    if bytes(tx.serialize()) != raw:
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
