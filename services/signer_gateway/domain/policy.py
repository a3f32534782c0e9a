"""Key policies: what a transaction may do before a key signs it (no blind signing)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bsv.utils import decode_address

from proofline_kit.errors import DomainError, ErrorKind, FieldViolation, invalid_argument
from services.signer_gateway.domain.models import KeyPolicy, SpentOutput
from services.signer_gateway.domain.transactions import ParsedOutput, is_data_output, p2pkh_hash

MAX_DESTINATIONS = 1000


@dataclass(frozen=True, slots=True)
class SpendSummary:
    """How a transaction moves money, seen from the keys that sign it."""

    fee_satoshis: int
    sent_satoshis: int
    # Locking scripts of outputs that pay neither the signing keys nor a 0-sat data carrier.
    external_scripts: tuple[bytes, ...]


def summarize_spend(
    outputs: Iterable[ParsedOutput], spent: Iterable[SpentOutput], own_pubkey_hashes: set[bytes]
) -> SpendSummary:
    outputs = list(outputs)
    total_in = sum(p.satoshis for p in spent)
    total_out = sum(o.satoshis for o in outputs)
    fee = total_in - total_out
    if fee < 0:
        raise DomainError(
            ErrorKind.INVALID_ARGUMENT,
            "NEGATIVE_FEE",
            f"outputs ({total_out} sat) exceed the spent outputs ({total_in} sat)",
            metadata={"inputSatoshis": str(total_in), "outputSatoshis": str(total_out)},
        )
    external: list[bytes] = []
    sent = 0
    for output in outputs:
        if output.satoshis == 0 and is_data_output(output.locking_script):
            continue
        if p2pkh_hash(output.locking_script) in own_pubkey_hashes:
            continue
        external.append(output.locking_script)
        sent += output.satoshis
    return SpendSummary(fee, sent, tuple(external))


def destination_hashes(addresses: Iterable[str]) -> set[bytes]:
    return {bytes(decode_address(a)[0]) for a in addresses}


def validate_policy(policy: KeyPolicy) -> KeyPolicy:
    """Reject limits below zero and destinations that are not P2PKH addresses."""
    for name in ("max_amount_per_tx_satoshis", "max_amount_per_day_satoshis", "max_fee_satoshis"):
        if getattr(policy, name) < 0:
            raise invalid_argument("POLICY_INVALID", f"policy.{name}", "must be >= 0 (0 = no limit)")
    if len(policy.allowed_destinations) > MAX_DESTINATIONS:
        raise invalid_argument("POLICY_INVALID", "policy.allowed_destinations", f"at most {MAX_DESTINATIONS} addresses")
    bad = []
    for address in policy.allowed_destinations:
        try:
            decode_address(address)
        except (ValueError, TypeError, AssertionError):
            bad.append(address)
    if bad:
        raise DomainError(
            ErrorKind.INVALID_ARGUMENT,
            "POLICY_INVALID",
            "allowed_destinations holds values that are not P2PKH addresses",
            metadata={"invalid": ",".join(bad[:5])},
            field_violations=tuple(
                FieldViolation("policy.allowed_destinations", f"not a P2PKH address: {a}") for a in bad[:5]
            ),
        )
    return policy


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
        f"key {key_id}: {message}",
        metadata={"keyId": key_id, "rule": rule},
    )


def policy_mode_required(key_id: str) -> DomainError:
    return _denied(key_id, "require_policy_mode", "this key signs only whole transactions (SignTransaction)")
