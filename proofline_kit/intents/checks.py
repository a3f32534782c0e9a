"""The checks an intent passes before it becomes a job, as pure functions.

Each raises a DomainError with the stable reason of publisher.proto; the use case runs them in the
order the contract fixes (form, signature, deduplication, identity, payload, time, nonce, capacity).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from proofline_kit.errors import DomainError, ErrorKind, FieldViolation, invalid_argument
from proofline_kit.intents import canonical, signatures
from proofline_kit.intents.models import Envelope, SignedIntent
from proofline_kit.intents.records import RecordSchema

NONCE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_REQUIRED_MEMBERS = frozenset({"nonce", "iat", "exp", "record"})
_ALLOWED_MEMBERS = _REQUIRED_MEMBERS | {"aud"}


@dataclass(frozen=True, slots=True)
class IntakePolicy:
    max_payload_bytes: int = 64 * 1024
    clock_skew_s: int = 60
    max_ttl_s: int = 3600
    # When empty, intents that carry an `aud` are refused: they are bound to another deployment.
    audience: str = ""
    record_schema: RecordSchema = field(default_factory=RecordSchema)


def digest_of(intent: SignedIntent) -> bytes:
    """SHA-256 of the signed bytes: what the signature covers and, with the key, the intent's id."""
    return hashlib.sha256(intent.signed_payload).digest()


def check_form(intent: SignedIntent, policy: IntakePolicy) -> None:
    """Step 1: PUBKEY_INVALID, SIGNATURE_MALFORMED, SIGNATURE_HIGH_S, PAYLOAD_TOO_LARGE."""
    if not signatures.is_compressed_pubkey(intent.pubkey):
        raise invalid_argument("PUBKEY_INVALID", "pubkey", "must be a 33-byte compressed secp256k1 public key")
    try:
        _, s = signatures.parse_der(intent.signature)
    except signatures.MalformedSignature as exc:
        raise invalid_argument("SIGNATURE_MALFORMED", "signature", f"not a strict DER signature: {exc}") from None
    if not signatures.is_low_s(s):
        raise invalid_argument("SIGNATURE_HIGH_S", "signature", "S must be at most n/2 (low-S)")
    if len(intent.signed_payload) > policy.max_payload_bytes:
        error = invalid_argument("PAYLOAD_TOO_LARGE", "signed_payload", f"larger than {policy.max_payload_bytes} bytes")
        raise DomainError(
            error.kind,
            error.reason,
            error.message,
            metadata={**error.metadata, "maxBytes": str(policy.max_payload_bytes)},
            field_violations=error.field_violations,
        )


def check_signature(intent: SignedIntent, digest: bytes) -> None:
    """Step 2: SIGNATURE_INVALID."""
    if not signatures.verify(intent.pubkey, intent.signature, digest):
        raise invalid_argument(
            "SIGNATURE_INVALID", "signature", "does not verify over SHA-256(signed_payload) with pubkey"
        )


def read_envelope(payload: bytes, policy: IntakePolicy) -> Envelope:
    """Step 5: PAYLOAD_MALFORMED, PAYLOAD_NOT_CANONICAL, RECORD_INVALID, AUDIENCE_MISMATCH."""
    try:
        value = canonical.parse(payload)
    except canonical.JsonError as exc:
        raise _malformed(f"not UTF-8 I-JSON: {exc}") from None
    if not isinstance(value, dict):
        raise _malformed("must be a JSON object")
    extra = sorted(set(value) - _ALLOWED_MEMBERS)
    if extra:
        raise _malformed(f"unknown member {extra[0]!r}", member=extra[0])
    missing = sorted(_REQUIRED_MEMBERS - set(value))
    if missing:
        raise _malformed(f"missing member {missing[0]!r}", member=missing[0])
    nonce, iat, exp, record, aud = value["nonce"], value["iat"], value["exp"], value["record"], value.get("aud")
    if not isinstance(nonce, str) or not NONCE_PATTERN.match(nonce):
        raise _malformed("nonce must be a string of 16-64 characters of [A-Za-z0-9_-]", member="nonce")
    iat, exp = _integer_value(iat), _integer_value(exp)
    if iat is None:
        raise _malformed("iat must be an integer (Unix seconds)", member="iat")
    if exp is None:
        raise _malformed("exp must be an integer (Unix seconds)", member="exp")
    if exp <= iat:
        raise _malformed("exp must be after iat", member="exp")
    if not isinstance(record, dict):
        raise _malformed("record must be a JSON object", member="record")
    if "aud" in value and not isinstance(aud, str):
        raise _malformed("aud must be a string", member="aud")
    try:
        canonical_bytes = canonical.canonicalize(value)
    except canonical.JsonError as exc:
        raise _malformed(f"has no JCS form: {exc}") from None
    if canonical_bytes != payload:
        raise DomainError(
            ErrorKind.INVALID_ARGUMENT,
            "PAYLOAD_NOT_CANONICAL",
            "signed_payload differs from its RFC 8785 (JCS) canonical form; sign the canonical bytes",
            metadata={"field": "signed_payload", "offset": str(_first_difference(payload, canonical_bytes))},
            field_violations=(FieldViolation("signed_payload", "not in JCS canonical form"),),
        )
    policy.record_schema.check(record)
    if aud is not None and aud != policy.audience:
        raise DomainError(
            ErrorKind.INVALID_ARGUMENT,
            "AUDIENCE_MISMATCH",
            "the intent's aud is not this publisher",
            metadata={"field": "signed_payload", "expected": policy.audience},
            field_violations=(FieldViolation("signed_payload", "aud does not name this publisher"),),
        )
    return Envelope(
        nonce=nonce,
        issued_at=iat,
        expires_at=exp,
        record=canonical.canonicalize(record),
        audience=aud,
    )


def check_window(envelope: Envelope, policy: IntakePolicy, now: datetime) -> None:
    """Step 6: INTENT_TTL_TOO_LONG, INTENT_NOT_YET_VALID, INTENT_EXPIRED."""
    if envelope.expires_at - envelope.issued_at > policy.max_ttl_s:
        raise DomainError(
            ErrorKind.INVALID_ARGUMENT,
            "INTENT_TTL_TOO_LONG",
            f"exp - iat is {envelope.expires_at - envelope.issued_at} s, above the maximum {policy.max_ttl_s} s",
            metadata={"field": "signed_payload", "maxTtlSeconds": str(policy.max_ttl_s)},
            field_violations=(FieldViolation("signed_payload", f"exp - iat must be at most {policy.max_ttl_s} s"),),
        )
    seconds = now.timestamp()
    if envelope.issued_at > seconds + policy.clock_skew_s:
        raise DomainError(
            ErrorKind.FAILED_PRECONDITION,
            "INTENT_NOT_YET_VALID",
            "iat is in the future beyond the allowed clock skew",
            metadata={"notBefore": _iso(envelope.issued_at - policy.clock_skew_s)},
        )
    if envelope.expires_at <= seconds - policy.clock_skew_s:
        raise DomainError(
            ErrorKind.FAILED_PRECONDITION,
            "INTENT_EXPIRED",
            "the intent's exp has passed; sign a new intent",
            metadata={"expiredAt": _iso(envelope.expires_at)},
        )


def nonce_replayed(nonce: str) -> DomainError:
    """Step 7."""
    return DomainError(
        ErrorKind.ALREADY_EXISTS,
        "NONCE_REPLAYED",
        "this key already used the nonce for a different payload",
        metadata={"nonce": nonce},
    )


def _integer_value(value: Any) -> int | None:
    """JSON has one number type: 1767225600.0 is the integer 1767225600 written non-canonically,
    which the byte comparison reports; 1.5 is not an integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _malformed(description: str, member: str = "") -> DomainError:
    metadata = {"field": "signed_payload"}
    if member:
        metadata["member"] = member
    return DomainError(
        ErrorKind.INVALID_ARGUMENT,
        "PAYLOAD_MALFORMED",
        f"signed_payload: {description}",
        metadata=metadata,
        field_violations=(FieldViolation("signed_payload", description),),
    )


def _first_difference(a: bytes, b: bytes) -> int:
    for index, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return index
    return min(len(a), len(b))


def _iso(seconds: int) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return str(seconds)
