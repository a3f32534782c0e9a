"""Key policies: what a transaction may do before a key signs it (no blind signing)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from bsv.utils import decode_address

from proofline_kit.errors import DomainError, ErrorKind, FieldViolation, invalid_argument
from proofline_kit.wire import MAX_SATOSHIS
from services.signer_gateway.domain.amounts import WITHIN_SUPPLY
from services.signer_gateway.domain.models import KeyPolicy, shown_key_id
from services.signer_gateway.domain.transactions import ParsedOutput, is_data_output, p2pkh_hash

MAX_DESTINATIONS = 1000
MAX_CHANGE_ADDRESSES = 1000
PUBKEY_HASH_BYTES = 20
MAX_VIOLATIONS_SHOWN = 5
# A Base58Check P2PKH address is 25 bytes: at most 34 characters. Longer strings are not decoded.
MAX_ADDRESS_CHARS = 64


@dataclass(frozen=True, slots=True)
class SpendSummary:
    """How a transaction moves money, seen from the keys that sign it."""

    fee_satoshis: int
    sent_satoshis: int
    # Locking scripts of outputs that pay neither the signing keys nor a 0-sat data carrier.
    external_scripts: tuple[bytes, ...]

    def __post_init__(self) -> None:
        # A summary is made before anything is signed and the answer carries its amounts: one that
        # could not be answered must fail here, never after a signature exists.
        if not (0 <= self.fee_satoshis <= MAX_SATOSHIS and 0 <= self.sent_satoshis <= MAX_SATOSHIS):
            raise ValueError("spend summary amounts outside 0..MAX_SATOSHIS")


def summarize_spend(
    outputs: Iterable[ParsedOutput], fee_satoshis: int, own_pubkey_hashes: AbstractSet[bytes]
) -> SpendSummary:
    """`fee_satoshis` is the transaction's checked fee (amounts.checked_fee); outputs paying one of
    `own_pubkey_hashes` (P2PKH) are not sent away."""
    external: list[bytes] = []
    sent = 0
    for output in outputs:
        if output.satoshis == 0 and is_data_output(output.locking_script):
            continue
        if p2pkh_hash(output.locking_script) in own_pubkey_hashes:
            continue
        external.append(output.locking_script)
        sent += output.satoshis
    return SpendSummary(fee_satoshis, sent, tuple(external))


@dataclass(frozen=True, slots=True)
class SpendSummaries:
    """A transaction's spend as its answer reports it and as each signing key's policy judges it."""

    # Own: the signing keys' addresses and the change addresses of any of their policies.
    transaction: SpendSummary
    # Own for one key: the signing keys' addresses and that key's change addresses only.
    per_key: Mapping[str, SpendSummary]


_NO_CHANGE: frozenset[bytes] = frozenset()


def summarize_for_keys(
    outputs: Sequence[ParsedOutput],
    fee_satoshis: int,
    signing_hashes: Mapping[str, bytes],
    change_hashes: Mapping[str, frozenset[bytes]],
) -> SpendSummaries:
    """`signing_hashes`: the pubkey hash of every key that signs the transaction; `change_hashes`:
    the pubkey hashes of a key's change_addresses (keys without any may be missing).

    A key's change addresses count for its own limits only: a caller choosing which keys sign must
    not widen one key's limits with another key's policy."""
    signing = frozenset(signing_hashes.values())
    changes = {k: change_hashes.get(k, _NO_CHANGE) for k in signing_hashes}
    own = signing.union(*changes.values())
    answer = summarize_spend(outputs, fee_satoshis, own)
    by_own = {own: answer}
    per_key: dict[str, SpendSummary] = {}
    for key_id, change in changes.items():
        key_own = signing | change
        summary = by_own.get(key_own)
        if summary is None:
            summary = by_own[key_own] = summarize_spend(outputs, fee_satoshis, key_own)
        per_key[key_id] = summary
    return SpendSummaries(answer, per_key)


def address_hashes(addresses: Iterable[str]) -> frozenset[bytes]:
    """The pubkey hashes of P2PKH addresses that validate_policy accepted."""
    return frozenset(bytes(decode_address(a)[0]) for a in addresses)


def validate_policy(policy: KeyPolicy) -> KeyPolicy:
    """Reject limits outside 0..MAX_SATOSHIS, and destinations or change addresses that are not
    P2PKH addresses or too many.

    A refused address is described by its position and length, never repeated."""
    for name in ("max_amount_per_tx_satoshis", "max_amount_per_day_satoshis", "max_fee_satoshis"):
        if not 0 <= getattr(policy, name) <= MAX_SATOSHIS:
            raise invalid_argument("POLICY_INVALID", f"policy.{name}", f"{WITHIN_SUPPLY} (0 = no limit)")
    _check_addresses("allowed_destinations", policy.allowed_destinations, MAX_DESTINATIONS)
    _check_addresses("change_addresses", policy.change_addresses, MAX_CHANGE_ADDRESSES)
    return policy


def _check_addresses(name: str, addresses: Sequence[str], most: int) -> None:
    if len(addresses) > most:
        raise invalid_argument("POLICY_INVALID", f"policy.{name}", f"at most {most} addresses")
    bad = [i for i, address in enumerate(addresses) if not _is_p2pkh_address(address)]
    if bad:
        shown = bad[:MAX_VIOLATIONS_SHOWN]
        raise DomainError(
            ErrorKind.INVALID_ARGUMENT,
            "POLICY_INVALID",
            f"{len(bad)} of {name} are not P2PKH addresses",
            metadata={"field": f"policy.{name}[{shown[0]}]", "invalidCount": str(len(bad))},
            field_violations=tuple(
                FieldViolation(f"policy.{name}[{i}]", f"not a P2PKH address (length {len(addresses[i])})")
                for i in shown
            ),
        )


def _is_p2pkh_address(address: str) -> bool:
    if len(address) > MAX_ADDRESS_CHARS:
        return False
    try:
        pubkey_hash, network = decode_address(address)
    except (ValueError, TypeError, AssertionError):
        return False
    # decode_address checks the shape and the checksum only: a shorter payload, or a version byte
    # other than mainnet's or testnet's P2PKH one, decodes too but is no P2PKH address.
    return network is not None and len(pubkey_hash) == PUBKEY_HASH_BYTES


def check_transaction_policy(
    key_id: str, policy: KeyPolicy, summary: SpendSummary, sent_last_24h_satoshis: int
) -> None:
    """Raise POLICY_DENIED naming the first rule the transaction breaks. `summary` is the
    transaction as this key judges it (SpendSummaries.per_key: its change addresses are own)."""
    if policy.allowed_destinations:
        allowed = address_hashes(policy.allowed_destinations)
        for script in summary.external_scripts:
            if p2pkh_hash(script) not in allowed:
                raise _denied(key_id, "destination_not_allowed", "an output pays a destination outside the allow-list")
    if policy.max_amount_per_tx_satoshis and summary.sent_satoshis > policy.max_amount_per_tx_satoshis:
        raise _denied(
            key_id,
            "max_amount_per_tx",
            f"sends {summary.sent_satoshis} sat, above the per-transaction limit {policy.max_amount_per_tx_satoshis}",
        )
    if policy.max_fee_satoshis and summary.fee_satoshis > policy.max_fee_satoshis:
        raise _denied(
            key_id,
            "max_fee",
            f"fee {summary.fee_satoshis} sat is above the ceiling {policy.max_fee_satoshis}",
        )
    daily = policy.max_amount_per_day_satoshis
    if daily and sent_last_24h_satoshis + summary.sent_satoshis > daily:
        raise _denied(
            key_id,
            "max_amount_per_day",
            f"would bring 24-hour spending to {sent_last_24h_satoshis + summary.sent_satoshis} sat, "
            f"above the daily limit {daily}",
        )


def _denied(key_id: str, rule: str, message: str) -> DomainError:
    return DomainError(
        ErrorKind.PERMISSION_DENIED,
        "POLICY_DENIED",
        f"key {shown_key_id(key_id)}: {message}",
        metadata={"keyId": key_id, "rule": rule},
    )


def policy_mode_required(key_id: str) -> DomainError:
    return _denied(key_id, "require_policy_mode", "this key signs only whole transactions (SignTransaction)")
