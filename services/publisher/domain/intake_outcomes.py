"""What each intent of a Publish or PublishBatch call gets: the checks that refuse an intent beside
the database's (nonces, rate limit, identity), why the insert skipped a job, and the recorded answer
an identical request replays."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from proofline_kit.errors import DomainError, ErrorKind, FieldViolation
from proofline_kit.intents import checks as intents
from proofline_kit.intents.models import Envelope, SignedIntent
from services.publisher.domain.models import IdentityStatus, Job
from services.publisher.domain.ports import NonceCache, RateLimiter, UnitOfWork


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer for one intent: a job (maybe deduplicated) or the error Publish would raise."""

    job: Job | None = None
    deduplicated: bool = False
    error: DomainError | None = None


async def check_nonces(
    nonces: NonceCache,
    batch: Sequence[SignedIntent],
    digests: Sequence[bytes],
    envelopes: dict[int, Envelope],
    outcomes: list[Outcome | None],
) -> list[int]:
    """Step 7 before the database: a nonce used twice within the batch, or remembered by the
    fast path for another payload. The insert's unique constraint catches the rest."""
    used: set[tuple[bytes, str]] = set()
    fresh: list[int] = []
    for i, envelope in envelopes.items():
        key = (batch[i].pubkey, envelope.nonce)
        if key in used:
            outcomes[i] = Outcome(error=intents.nonce_replayed(envelope.nonce))
        else:
            used.add(key)
            fresh.append(i)
    remembered = await nonces.digests([(batch[i].pubkey, envelopes[i].nonce) for i in fresh])
    kept: list[int] = []
    for i, digest in zip(fresh, remembered, strict=True):
        if digest is not None and digest != digests[i]:
            outcomes[i] = Outcome(error=intents.nonce_replayed(envelopes[i].nonce))
        else:
            kept.append(i)
    return kept


async def rate_limit(
    rate: RateLimiter | None, batch: Sequence[SignedIntent], fresh: list[int], outcomes: list[Outcome | None]
) -> list[int]:
    if rate is None or not fresh:
        return fresh
    wanted = Counter(batch[i].pubkey for i in fresh)
    granted: dict[bytes, int] = {}
    retry_ms: dict[bytes, int] = {}
    for pubkey, count in wanted.items():
        granted[pubkey], retry_ms[pubkey] = await rate.take(pubkey, count)
    kept: list[int] = []
    for i in fresh:
        pubkey = batch[i].pubkey
        if granted[pubkey] > 0:
            granted[pubkey] -= 1
            kept.append(i)
        else:
            outcomes[i] = Outcome(
                error=DomainError(
                    ErrorKind.RESOURCE_EXHAUSTED,
                    "RATE_LIMITED",
                    "too many intents from this identity key; retry later",
                    metadata={"pubkey": pubkey.hex()},
                    retry_after_ms=retry_ms[pubkey],
                )
            )
    return kept


def check_identity(status: IdentityStatus | None) -> None:
    """Step 4."""
    if status is None:
        raise DomainError(ErrorKind.PERMISSION_DENIED, "IDENTITY_UNKNOWN", "the intent's key is not registered")
    if status is IdentityStatus.REVOKED:
        raise DomainError(ErrorKind.PERMISSION_DENIED, "IDENTITY_REVOKED", "the intent's key was revoked")


async def explain_skipped(
    uow: UnitOfWork,
    batch: Sequence[SignedIntent],
    digests: Sequence[bytes],
    envelopes: dict[int, Envelope],
    skipped: Sequence[int],
    outcomes: list[Outcome | None],
) -> None:
    """Why the insert skipped a job that passed every check: a concurrent request queued the same
    intent (deduplicated) or used its nonce (NONCE_REPLAYED), or the key was revoked meanwhile."""
    existing = await uow.jobs_by_intent([(batch[i].pubkey, digests[i]) for i in skipped])
    by_nonce = await uow.digests_by_nonce([(batch[i].pubkey, envelopes[i].nonce) for i in skipped])
    statuses = await uow.identity_statuses({batch[i].pubkey for i in skipped})
    for i in skipped:
        found = existing.get(batch[i].pubkey + digests[i])
        if found is not None:
            outcomes[i] = Outcome(found, deduplicated=True)
        elif (batch[i].pubkey, envelopes[i].nonce) in by_nonce:
            outcomes[i] = Outcome(error=intents.nonce_replayed(envelopes[i].nonce))
        else:
            try:
                check_identity(statuses.get(batch[i].pubkey))
            except DomainError as error:
                outcomes[i] = Outcome(error=error)
                continue
            raise RuntimeError("job insert skipped without a conflicting job or a revoked key")


async def replay_answer(uow: UnitOfWork, answer: bytes) -> list[Outcome]:
    """The recorded outcomes of an earlier identical request, with the jobs as they are now."""
    items: list[dict[str, Any]] = orjson.loads(answer)
    jobs = await uow.jobs([item["job"] for item in items if "job" in item])
    return [
        Outcome(jobs[item["job"]], bool(item["dedup"])) if "job" in item else Outcome(error=_error_from_json(item))
        for item in items
    ]


def outcomes_to_json(outcomes: Sequence[Outcome]) -> bytes:
    items: list[dict[str, Any]] = []
    for outcome in outcomes:
        if outcome.job is not None:
            items.append({"job": outcome.job.job_id, "dedup": outcome.deduplicated})
        else:
            error = outcome.error
            assert error is not None
            items.append(
                {
                    "kind": error.kind.value,
                    "reason": error.reason,
                    "message": error.message,
                    "metadata": dict(error.metadata),
                    "violations": [[v.field, v.description] for v in error.field_violations],
                    "retry": error.retry_after_ms,
                }
            )
    return orjson.dumps(items)


def _error_from_json(item: dict[str, Any]) -> DomainError:
    return DomainError(
        ErrorKind(item["kind"]),
        item["reason"],
        item["message"],
        metadata=dict(item["metadata"]),
        field_violations=tuple(FieldViolation(f, d) for f, d in item["violations"]),
        retry_after_ms=item["retry"],
    )
