"""Key policies: what a transaction may do before a key signs it (no blind signing)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bsv.utils import decode_address

from proofline_kit.errors import DomainError, ErrorKind, FieldViolation, invalid_argument
from proofline_kit.wire import MAX_SATOSHIS
from services.signer_gateway.domain.amounts import WITHIN_SUPPLY
from services.signer_gateway.domain.models import KeyPolicy, shown_key_id
from services.signer_gateway.domain.transactions import ParsedOutput, is_data_output, p2pkh_hash

MAX_DESTINATIONS = 1000
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


def summarize_spend(outputs: Iterable[ParsedOutput], fee_satoshis: int, own_pubkey_hashes: set[bytes]) -> SpendSummary:
    """`fee_satoshis` is the transaction's checked fee (amounts.checked_fee)."""
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


def destination_hashes(addresses: Iterable[str]) -> set[bytes]:
    return {bytes(decode_address(a)[0]) for a in addresses}


def validate_policy(policy: KeyPolicy) -> KeyPolicy:
    """Reject limits outside 0..MAX_SATOSHIS and destinations that are not P2PKH addresses.

    A refused destination is described by its position and length, never repeated."""
    for name in ("max_amount_per_tx_satoshis", "max_amount_per_day_satoshis", "max_fee_satoshis"):
        if not 0 <= getattr(policy, name) <= MAX_SATOSHIS:
            raise invalid_argument("POLICY_INVALID", f"policy.{name}", f"{WITHIN_SUPPLY} (0 = no limit)")
    if len(policy.allowed_destinations) > MAX_DESTINATIONS:
        raise invalid_argument("POLICY_INVALID", "policy.allowed_destinations", f"at most {MAX_DESTINATIONS} addresses")
    bad = [i for i, address in enumerate(policy.allowed_destinations) if not _is_p2pkh_address(address)]
    if bad:
        shown = bad[:MAX_VIOLATIONS_SHOWN]
        first_field = f"policy.allowed_destinations[{shown[0]}]"
        raise DomainError(
            ErrorKind.INVALID_ARGUMENT,
            "POLICY_INVALID",
            f"{len(bad)} of allowed_destinations are not P2PKH addresses",
            metadata={"field": first_field, "invalidCount": str(len(bad))},
            field_violations=tuple(
                FieldViolation(
                    f"policy.allowed_destinations[{i}]",
                    f"not a P2PKH address (length {len(policy.allowed_destinations[i])})",
                )
                for i in shown
            ),
        )
    return policy


def _is_p2pkh_address(address: str) -> bool:
    if len(address) > MAX_ADDRESS_CHARS:
        return False
    try:
        decode_address(address)
    except (ValueError, TypeError, AssertionError):
        return False
    return True


def check_transaction_policy(
    key_id: str, policy: KeyPolicy, summary: SpendSummary, sent_last_24h_satoshis: int
) -> None:
    """Raise POLICY_DENIED naming the first rule the transaction breaks."""
    if policy.allowed_destinations:
        allowed = destination_hashes(policy.allowed_destinations)
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
