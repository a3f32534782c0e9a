"""What the publisher works with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from proofline_kit.intents.models import Envelope, SignedIntent


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


# --- the publishing pipeline's view of jobs ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job a worker holds: fencing token and what it needs to build the transaction."""

    job: Job
    lease_token: int
    record: bytes
    # Transactions built for the job so far.
    builds: int = 0


@dataclass(frozen=True, slots=True)
class JobUpdate:
    """Fields a status change may set besides the status (None = unchanged)."""

    txid: str | None = None
    raw_tx: bytes | None = None
    fee_satoshis: int | None = None
    block_hash: str | None = None
    block_height: int | None = None
    merkle_bump: bytes | None = None
    error_reason: str | None = None
    error_detail: str | None = None
    funding_txid: str | None = None
    funding_vout: int | None = None
    utxo_lease_id: str | None = None
    batch_id: str | None = None
    attempts_increment: int = 0
    next_attempt_delay_s: float | None = None


@dataclass(frozen=True, slots=True)
class BuiltTx:
    """A job's signed transaction and what pays for it (stored before the first broadcast)."""

    txid: str
    raw_tx: bytes
    fee_satoshis: int
    funding_txid: str
    funding_vout: int
    funding_satoshis: int
    funding_script: bytes
    change_key_id: str
    utxo_lease_id: str
    utxo_fencing_token: int


@dataclass(frozen=True, slots=True)
class BlockProof:
    block_hash: str
    block_height: int
    merkle_bump: bytes


class LeaseChange(Enum):
    KEEP = "keep"  # the worker goes on holding the job
    CLEAR = "clear"  # nobody holds it (required for QUEUED, SENT, CONFIRMED, FAILED)
    CLAIM = "claim"  # a new lease (and fencing token) for the caller of apply_moves


@dataclass(frozen=True, slots=True)
class JobMove:
    """One guarded change of a job for `apply_moves` (the target may equal the source: an audited
    change without a status move). None means "unchanged"."""

    job_id: str
    source: JobStatus
    target: JobStatus
    reason: str
    # Guard: applies only while the job still carries this fencing token.
    lease_token: int | None = None
    lease: LeaseChange = LeaseChange.CLEAR
    error_reason: str | None = None
    error_detail: str | None = None
    attempts_increment: int = 0
    # next_attempt_at = now() + delay.
    delay_s: float | None = None
    tx: BuiltTx | None = None
    # Forget the current transaction (it is dead; a new one will be built).
    clear_tx: bool = False
    block: BlockProof | None = None
    clear_block: bool = False
    spend_committed: bool | None = None
    competing_txids: tuple[str, ...] | None = None
    batch_id: str | None = None


@dataclass(frozen=True, slots=True)
class InFlightJob:
    """A job that has a signed transaction (SIGNED, SENT or CONFIRMED), as the pipeline needs it."""

    job_id: str
    status: JobStatus
    lease_token: int | None
    tx: BuiltTx
    attempts: int
    builds: int
    error_reason: str
    competing_txids: tuple[str, ...]
    spend_committed: bool
    block_hash: str
    block_height: int
