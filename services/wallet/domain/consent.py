"""The consent proof of RegisterIdentity: an intent signed by the key being registered whose record
is {"accountId": <account>, "type": "proofline.identity.register"}. Checked with the publisher's own
intent checks (proofline_kit.intents: strict DER, low-S, canonical JCS, record schema, time window);
its nonce is not consumed. Pure: no I/O."""

from __future__ import annotations

from datetime import datetime

from proofline_kit.errors import DomainError, ErrorKind, FieldViolation, invalid_argument
from proofline_kit.intents import canonical, checks
from proofline_kit.intents.checks import IntakePolicy
from proofline_kit.intents.models import SignedIntent

REGISTER_TYPE = "proofline.identity.register"


def expected_record(account_id: str) -> bytes:
    return canonical.canonicalize({"accountId": account_id, "type": REGISTER_TYPE})


def check_proof(
    proof: SignedIntent | None, pubkey: bytes, account_id: str, policy: IntakePolicy, now: datetime
) -> None:
    """Raises the first failure: PROOF_INVALID (missing), the intent reasons of publisher.proto
    (PUBKEY_INVALID ... INTENT_EXPIRED), PROOF_KEY_MISMATCH, PROOF_RECORD_MISMATCH."""
    if proof is None:
        raise invalid_argument("PROOF_INVALID", "proof", "required: an intent signed by pubkey")
    checks.check_form(proof, policy)
    if proof.pubkey != pubkey:
        raise DomainError(
            ErrorKind.INVALID_ARGUMENT,
            "PROOF_KEY_MISMATCH",
            "the proof is not signed by the key being registered",
            metadata={"field": "proof.pubkey"},
            field_violations=(FieldViolation("proof.pubkey", "must equal pubkey"),),
        )
    checks.check_signature(proof, checks.digest_of(proof))
    envelope = checks.read_envelope(proof.signed_payload, policy)
    if envelope.record != expected_record(account_id):
        raise DomainError(
            ErrorKind.INVALID_ARGUMENT,
            "PROOF_RECORD_MISMATCH",
            f'the proof\'s record must be {{"accountId":"<account_id>","type":"{REGISTER_TYPE}"}} for this account',
            metadata={"field": "proof.signed_payload"},
            field_violations=(FieldViolation("proof.signed_payload", "record is not this account's consent"),),
        )
    checks.check_window(envelope, policy, now)
