"""What the signing gateway works with."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import NamedTuple

from proofline_kit.errors import DomainError
from services.signer_gateway.domain.keystore import SealedSecret

KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_SHOWN_KEY_ID_CHARS = 64


def shown_key_id(key_id: str) -> str:
    """A key id as an error message names it: at most 64 characters (metadata keeps the whole
    id, which KEY_ID_PATTERN bounds, for callers to match on)."""
    if len(key_id) <= _SHOWN_KEY_ID_CHARS:
        return key_id
    return key_id[: _SHOWN_KEY_ID_CHARS - 1] + "…"


class Backend(Enum):
    LOCAL = "local"
    EXTERNAL_KMS = "external_kms"


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    require_policy_mode: bool = False
    allowed_destinations: tuple[str, ...] = ()
    max_amount_per_tx_satoshis: int = 0
    max_amount_per_day_satoshis: int = 0
    max_fee_satoshis: int = 0
    # P2PKH addresses whose outputs count as this key's own (change) for its limits.
    change_addresses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: str
    backend: Backend
    public_key: bytes
    policy: KeyPolicy
    sealed_secret: SealedSecret | None
    created_at: datetime
    updated_at: datetime


# The per-item values of a batch are named tuples: hundreds are made per call, and a tuple is
# made several times faster than a frozen dataclass (audit entries go to COPY as they are).
class DigestToSign(NamedTuple):
    key_id: str
    digest: bytes


class SignatureResult(NamedTuple):
    key_id: str
    signature_der: bytes
    public_key: bytes


@dataclass(frozen=True, slots=True)
class SignedTransaction:
    raw_tx: bytes
    txid: str
    fee_satoshis: int
    sent_satoshis: int
    signatures: tuple[SignatureResult, ...]


@dataclass(frozen=True, slots=True)
class KeySpend:
    """An amount a key's signature sent away, counted against its daily limit."""

    key_id: str
    txid: str
    satoshis: int
    signed_at: datetime


class AuditEntry(NamedTuple):
    """One row of the signing audit, in the table's column order."""

    caller_id: str
    request_id: str
    key_id: str
    digest: bytes | None
    txid: str | None
    outcome: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Page:
    keys: tuple[KeyRecord, ...]
    next_page_token: str = ""


@dataclass(frozen=True, slots=True)
class InputKey:
    input_index: int
    key_id: str


@dataclass(frozen=True, slots=True)
class SpentOutput:
    satoshis: int
    locking_script: bytes


@dataclass(frozen=True, slots=True)
class TransactionToSign:
    unsigned_tx: bytes
    spent_outputs: tuple[SpentOutput, ...]
    input_keys: tuple[InputKey, ...] = field(default_factory=tuple)


# The answer for one transaction of a batch: the signed transaction, or the error that refused it.
TransactionOutcome = SignedTransaction | DomainError
