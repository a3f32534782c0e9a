"""What the publisher works with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum


class IdentityStatus(Enum):
    ACTIVE = "active"
    REVOKED = "revoked"


class JobStatus(Enum):
    QUEUED = "queued"
    PROCESSING = "processing"
    SIGNED = "signed"
    SENT = "sent"
    CONFIRMED = "confirmed"
    FAILED = "failed"


# Order for `wait_for` / `until`; FAILED ends every wait and is not in the order.
_PROGRESS = {
    JobStatus.QUEUED: 1,
    JobStatus.PROCESSING: 2,
    JobStatus.SIGNED: 3,
    JobStatus.SENT: 4,
    JobStatus.CONFIRMED: 5,
}

# The job state machine (publisher.proto, JobStatus). The migration's job_transitions table holds
# the same edges and the database refuses any other move.
TRANSITIONS: frozenset[tuple[JobStatus, JobStatus]] = frozenset(
    {
        (JobStatus.QUEUED, JobStatus.PROCESSING),
        (JobStatus.QUEUED, JobStatus.FAILED),
        (JobStatus.PROCESSING, JobStatus.QUEUED),
        (JobStatus.PROCESSING, JobStatus.SIGNED),
        (JobStatus.PROCESSING, JobStatus.FAILED),
        (JobStatus.SIGNED, JobStatus.SENT),
        (JobStatus.SIGNED, JobStatus.PROCESSING),
        (JobStatus.SIGNED, JobStatus.FAILED),
        (JobStatus.SENT, JobStatus.CONFIRMED),
        (JobStatus.SENT, JobStatus.PROCESSING),
        (JobStatus.SENT, JobStatus.FAILED),
        (JobStatus.CONFIRMED, JobStatus.SENT),
    }
)


def can_move(source: JobStatus, target: JobStatus) -> bool:
    return (source, target) in TRANSITIONS


def has_reached(status: JobStatus, target: JobStatus) -> bool:
    """True when a wait for `target` is over: the job got there (or further), or FAILED."""
    if status is JobStatus.FAILED:
        return True
    return _PROGRESS[status] >= _PROGRESS[target]


@dataclass(frozen=True, slots=True)
class Identity:
    pubkey: bytes
    label: str
    owner_ref: str
    status: IdentityStatus
    registered_by: str
    created_at: datetime
    revoked_at: datetime | None
    revoke_reason: str


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


@dataclass(frozen=True, slots=True)
class NewJob:
    """An intent that passed every check and is about to be queued."""

    job_id: str
    intent: SignedIntent
    digest: bytes
    envelope: Envelope


@dataclass(frozen=True, slots=True)
class Job:
    job_id: str
    intent_digest: bytes
    identity_pubkey: bytes
    nonce: str
    status: JobStatus
    txid: str
    fee_satoshis: int
    block_hash: str
    block_height: int
    merkle_bump: bytes
    error_reason: str
    error_detail: str
    attempts: int
    batch_id: str
    intent_expires_at: datetime
    created_at: datetime
    updated_at: datetime
    signed_at: datetime | None
    sent_at: datetime | None
    confirmed_at: datetime | None
    # Only in the full view.
    raw_tx: bytes = b""
    intent: SignedIntent | None = None


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One audit row of a job."""

    at: datetime
    from_status: str
    to_status: str
    txid: str
    actor: str
    reason: str
    detail: str
    request_id: str


@dataclass(frozen=True, slots=True)
class IdentityPage:
    identities: tuple[Identity, ...]
    next_page_token: str = ""


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: tuple[Job, ...]
    next_page_token: str = ""


@dataclass(frozen=True, slots=True)
class JobFilter:
    statuses: tuple[JobStatus, ...] = ()
    identity_pubkey: bytes = b""
    start_time: datetime | None = None
    end_time: datetime | None = None
    txid: str = ""
    batch_id: str = ""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who caused a change, for the audit."""

    caller_id: str
    request_id: str
