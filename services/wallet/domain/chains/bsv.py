"""BSV: P2PKH base58check addresses, SIGHASH_ALL|FORKID, fees per 1000 bytes, 1-satoshi dust."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bsv.base58 import base58check_decode, base58check_encode

from proofline_kit.errors import DomainError, ErrorKind, FieldViolation
from proofline_kit.wire import Outpoint, Tx, TxInput, TxOutput, serialize
from services.wallet.domain.chains.rules import TxSizes
from services.wallet.domain.models import Network

_MAINNET_P2PKH = 0x00
_TESTNET_P2PKH = 0x6F  # testnet and regtest (chainsim)
_BASE58 = set("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz")
_MAX_ADDRESS_CHARS = 64
# P2PKH input: outpoint 36 + script length 1 + <73-byte DER+sighash push><33-byte key push> 107
# + sequence 4; P2PKH output: value 8 + length 1 + script 25; version + counts + locktime 10.
_P2PKH_SIZES = TxSizes(input=148, output=34, overhead=10)


def _prefix(network: Network) -> int:
    return _MAINNET_P2PKH if network is Network.MAINNET else _TESTNET_P2PKH


def p2pkh_script(pubkey_hash: bytes) -> bytes:
    return b"\x76\xa9\x14" + pubkey_hash + b"\x88\xac"


def _address_error(reason: str, description: str) -> DomainError:
    return DomainError(
        ErrorKind.INVALID_ARGUMENT,
        reason,
        f"to_address: {description}",
        metadata={"field": "to_address"},
        field_violations=(FieldViolation("to_address", description),),
    )


@dataclass(frozen=True, slots=True)
class BsvRules:
    name: str = "bsv"
    sizes: TxSizes = _P2PKH_SIZES
    sighash_flavour: str = "SIGHASH_ALL|FORKID"
    coinbase_maturity: int = 100
    default_deposit_confirmations: int = 6
    default_send_confirmations: int = 1
    # Since node 1.0.x BSV relays any output of at least 1 satoshi (no dust relay fee).
    dust_satoshis: int = 1

    def locking_script_for(self, address: str, network: Network) -> bytes:
        if not 26 <= len(address) <= _MAX_ADDRESS_CHARS or not set(address) <= _BASE58:
            raise _address_error("ADDRESS_INVALID", "not a base58check P2PKH address")
        try:
            payload = base58check_decode(address)
        except ValueError:
            raise _address_error("ADDRESS_INVALID", "the address checksum does not match") from None
        if len(payload) != 21 or payload[0] not in (_MAINNET_P2PKH, _TESTNET_P2PKH):
            raise _address_error("ADDRESS_INVALID", "not a P2PKH address")
        if payload[0] != _prefix(network):
            raise _address_error("ADDRESS_WRONG_NETWORK", f"a P2PKH address of another network than {network.value}")
        return p2pkh_script(payload[1:])

    def address_of(self, locking_script: bytes, network: Network) -> str | None:
        if len(locking_script) != 25 or locking_script[:3] != b"\x76\xa9\x14" or locking_script[23:] != b"\x88\xac":
            return None
        return str(base58check_encode(bytes([_prefix(network)]) + locking_script[3:23]))

    def dust_limit(self, locking_script: bytes) -> int:
        return self.dust_satoshis

    def fee(self, size_bytes: int, rate_satoshis_per_kb: int) -> int:
        return max(1, -(-size_bytes * rate_satoshis_per_kb // 1000))

    def unsigned_transaction(self, inputs: Sequence[Outpoint], outputs: Sequence[TxOutput]) -> bytes:
        return serialize(Tx(tuple(TxInput(o) for o in inputs), tuple(outputs)))


BSV = BsvRules()
