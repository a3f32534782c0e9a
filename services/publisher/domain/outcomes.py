"""What a broadcast outcome (or a later chain status) means for a job, and the job moves that follow.
Pure: the pipeline and the confirmation follower gather the evidence and apply the moves."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from proofline_kit.chain import ArcStatus, BroadcastOutcome, OutcomeKind
from proofline_kit.wire import Outpoint
from services.publisher.domain.models import InFlightJob, JobMove, JobStatus, LeaseChange
from services.publisher.domain.ports import ConflictKind, ConflictReport

# Job.error_reason values (docs/api.md lists them).
DOUBLE_SPEND = "DOUBLE_SPEND"
MISSING_INPUTS = "MISSING_INPUTS"
FEE_TOO_LOW = "FEE_TOO_LOW"
BROADCAST_REJECTED = "BROADCAST_REJECTED"
CHAIN_UNAVAILABLE = "CHAIN_UNAVAILABLE"
POOL_EXHAUSTED = "POOL_EXHAUSTED"
POOL_UNAVAILABLE = "POOL_UNAVAILABLE"
SIGNER_UNAVAILABLE = "SIGNER_UNAVAILABLE"
SIGNING_FAILED = "SIGNING_FAILED"
RETRIES_EXHAUSTED = "RETRIES_EXHAUSTED"

# The job's input was already reported to the pool under these reasons (it is DIRTY there).
_REPORTED = frozenset({DOUBLE_SPEND, MISSING_INPUTS})
_MAX_DETAIL = 1000


class Verdict(Enum):
    SENT = "sent"  # the network accepted the transaction
    WAIT = "wait"  # a conflict, but the transaction is not proven dead: keep it, look again later
    DEAD = "dead"  # proven dead: another transaction is built (a bounded number of times)
    REJECTED = "rejected"  # proven dead for a reason another transaction would not fix: FAILED
    UNAVAILABLE = "unavailable"  # no verdict: keep the signed bytes, back off, broadcast them again


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    reason: str = ""
    detail: str = ""
    competing: tuple[str, ...] = ()
    # What the pool should learn about the input (None: nothing).
    conflict: ConflictKind | None = None
    # Already mined (e.g. re-sent after a crash): look for the proof now, not after the poll delay.
    mined: bool = False


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_builds: int = 3
    max_attempts: int = 30
    base_s: float = 1.0
    max_s: float = 60.0
    # After SENT, the first confirmation poll (callbacks usually come first).
    confirm_poll_s: float = 60.0

    def backoff(self, attempt: int) -> float:
        """Delay before attempt `attempt + 1` (1-based attempts: 1 → base, doubling, capped)."""
        return float(min(self.max_s, self.base_s * 2 ** max(0, min(attempt - 1, 30))))


def judge(outcome: BroadcastOutcome) -> Judgement:
    detail = outcome.reason[:_MAX_DETAIL]
    kind = outcome.kind
    # A REJECTED status is ARC's final word: the transaction will never be mined.
    rejected = outcome.status is ArcStatus.REJECTED
    if kind is OutcomeKind.ACCEPTED:
        return Judgement(Verdict.SENT, mined=outcome.status is ArcStatus.MINED)
    if kind is OutcomeKind.DOUBLE_SPEND:
        return Judgement(
            Verdict.DEAD if rejected else Verdict.WAIT,
            DOUBLE_SPEND,
            detail or "double spend attempted",
            outcome.competing_txids,
            ConflictKind.DOUBLE_SPEND,
        )
    if kind is OutcomeKind.MISSING_INPUTS:
        return Judgement(
            Verdict.DEAD if rejected else Verdict.WAIT,
            MISSING_INPUTS,
            detail or "missing inputs",
            conflict=ConflictKind.MISSING_INPUTS,
        )
    if kind is OutcomeKind.FEE_TOO_LOW:
        return Judgement(Verdict.DEAD, FEE_TOO_LOW, detail or "fee too low", conflict=ConflictKind.REJECTED)
    if kind is OutcomeKind.INVALID:
        return Judgement(Verdict.REJECTED, BROADCAST_REJECTED, detail or "rejected", conflict=ConflictKind.REJECTED)
    return Judgement(Verdict.UNAVAILABLE, CHAIN_UNAVAILABLE, detail or "no provider answered")


def conflict_report(job: InFlightJob, judgement: Judgement, *, failing: bool = False) -> ConflictReport | None:
    """What to tell the pool, once per input: a repeat of an already reported conflict is skipped.
    A job that fails for good always reports its input (REJECTED unless known better), so the pool
    puts it back on chain evidence instead of keeping it spent by a transaction that never was."""
    kind = judgement.conflict
    if failing and kind is None:
        kind = ConflictKind.REJECTED
    if kind is None or job.error_reason in _REPORTED:
        return None
    tx = job.tx
    return ConflictReport(
        funding=Outpoint(tx.funding_txid, tx.funding_vout),
        kind=kind,
        spending_txid=tx.txid,
        competing_txids=tuple(t for t in judgement.competing if t != tx.txid),
        detail=judgement.detail,
        lease_id="" if job.spend_committed else tx.utxo_lease_id,
        fencing_token=0 if job.spend_committed else tx.utxo_fencing_token,
    )


@dataclass(frozen=True, slots=True)
class Moves:
    """Moves applied in one transaction: `first`, then `then` (a dead transaction's job goes
    SIGNED/SENT → PROCESSING → QUEUED, two audited steps of the documented state machine)."""

    first: tuple[JobMove, ...] = ()
    then: tuple[JobMove, ...] = ()


def moves_for(
    job: InFlightJob,
    judgement: Judgement,
    policy: RetryPolicy,
    *,
    guard: int | None,
    attempted: bool,
    committed: bool = True,
) -> Moves:
    """The moves for a job whose transaction got `judgement`. `attempted`: this was a broadcast
    (it counts towards the attempts bound); `guard`: the fencing token the job must still carry."""
    source = job.status
    attempts = job.attempts + (1 if attempted else 0)
    increment = 1 if attempted else 0
    verdict = judgement.verdict
    competing = judgement.competing or None

    def failed(reason: str, detail: str) -> Moves:
        move = JobMove(
            job.job_id,
            source,
            JobStatus.FAILED,
            reason,
            lease_token=guard,
            error_reason=reason,
            error_detail=detail[:_MAX_DETAIL],
            attempts_increment=increment,
            spend_committed=committed,
        )
        return Moves((move,))

    if verdict is Verdict.SENT:
        if source is not JobStatus.SIGNED:
            return Moves()
        return Moves(
            (
                JobMove(
                    job.job_id,
                    source,
                    JobStatus.SENT,
                    "ACCEPTED",
                    lease_token=guard,
                    error_reason="",
                    error_detail="",
                    attempts_increment=increment,
                    delay_s=0.0 if judgement.mined else policy.confirm_poll_s,
                    spend_committed=committed,
                    competing_txids=(),
                ),
            )
        )
    if verdict is Verdict.REJECTED:
        return failed(judgement.reason, judgement.detail)
    if verdict is Verdict.DEAD:
        if job.builds >= policy.max_builds:
            return failed(RETRIES_EXHAUSTED, f"{judgement.reason} after {job.builds} transactions: {judgement.detail}")
        dead = JobMove(
            job.job_id,
            source,
            JobStatus.PROCESSING,
            judgement.reason,
            lease_token=guard,
            lease=LeaseChange.CLAIM,
            error_reason=judgement.reason,
            error_detail=f"transaction {job.tx.txid} is dead: {judgement.detail}"[:_MAX_DETAIL],
            attempts_increment=increment,
            competing_txids=competing,
        )
        requeue = JobMove(
            job.job_id,
            JobStatus.PROCESSING,
            JobStatus.QUEUED,
            "REBUILD",
            clear_tx=True,
            delay_s=policy.base_s,
        )
        return Moves((dead,), (requeue,))
    # WAIT and UNAVAILABLE: the signed bytes stay; they are looked at (and sent) again later.
    if source is not JobStatus.SIGNED:
        return Moves()
    if attempts >= policy.max_attempts:
        return failed(RETRIES_EXHAUSTED, f"{judgement.reason} after {attempts} attempts: {judgement.detail}")
    return Moves(
        (
            JobMove(
                job.job_id,
                source,
                JobStatus.SIGNED,
                judgement.reason,
                lease_token=guard,
                error_reason=judgement.reason,
                error_detail=judgement.detail[:_MAX_DETAIL],
                attempts_increment=increment,
                delay_s=policy.backoff(attempts),
                spend_committed=committed,
                competing_txids=competing,
            ),
        )
    )
