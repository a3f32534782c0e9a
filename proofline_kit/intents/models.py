"""The types of an intent: as submitted, and its checked envelope."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SignedIntent:
    signed_payload: bytes
    signature: bytes
    pubkey: bytes


@dataclass(frozen=True, slots=True)
class Envelope:
    """The parsed, checked members of a signed payload."""

    nonce: str
    issued_at: int
    expires_at: int
    record: bytes
    audience: str | None
