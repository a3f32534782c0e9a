"""The publisher's intake use cases: identity keys, signed intents to jobs, job reads and waits.
Knows nothing of gRPC."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from proofline_kit.auth import Caller
from proofline_kit.errors import DomainError, ErrorKind, invalid_argument
from proofline_kit.idempotency import check_request_id
from proofline_kit.intents import checks as intents
from proofline_kit.intents import signatures
from proofline_kit.intents.checks import IntakePolicy
from proofline_kit.intents.models import Envelope, SignedIntent
from proofline_kit.logging import get_logger
from proofline_kit.pagination import decode_page_token, encode_page_token, page_size
from services.publisher.domain.intake_outcomes import (
    Outcome,
    check_identity,
    check_nonces,
    explain_skipped,
    outcomes_to_json,
    rate_limit,
    replay_answer,
)
from services.publisher.domain.models import (
    Actor,
    Identity,
    IdentityPage,
    IdentityStatus,
    Job,
    JobFilter,
    JobPage,
    JobStatus,
    NewJob,
    has_reached,
)
from services.publisher.domain.ports import JobChanges, NonceCache, RateLimiter, Store, UnitOfWork

ROLE_REGISTRAR = "registrar"
ROLE_PUBLISH = "publish"
MAX_BATCH_INTENTS = 1000
MAX_LABEL_CHARS = 128
MAX_OWNER_REF_CHARS = 128
MAX_REVOKE_REASON_CHARS = 512
MAX_JOB_ID_CHARS = 64


@dataclass(frozen=True, slots=True)
class IntakeLimits:
    max_queued_jobs: int = 100_000
    default_wait_s: float = 30.0
    max_wait_s: float = 300.0
    # How often a waiter re-reads even without a notification (lost NOTIFY, listener reconnecting).
    poll_s: float = 5.0
    # The queued-jobs count is cached this long unless the queue is near its limit.
    queue_count_ttl_s: float = 1.0


class _QueueGauge:
    """Approximate count of QUEUED jobs: exact when close to the limit, cached otherwise."""

    def __init__(self, limits: IntakeLimits) -> None:
        self._limits = limits
        self._count = 0
        self._read_at = -1e9

    async def room(self, uow: UnitOfWork, wanted: int) -> int:
        now = time.monotonic()
        stale = now - self._read_at > self._limits.queue_count_ttl_s
        near = self._count + wanted >= self._limits.max_queued_jobs * 0.9
        if stale or near:
            self._count = await uow.count_queued()
            self._read_at = now
        return max(0, self._limits.max_queued_jobs - self._count)

    def added(self, count: int) -> None:
        self._count += count


class Publisher:
    def __init__(
        self,
        store: Store,
        changes: JobChanges,
        nonces: NonceCache,
        rate_limiter: RateLimiter | None,
        policy: IntakePolicy,
        limits: IntakeLimits,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        observe: Callable[[str, str], None] | None = None,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._changes = changes
        self._nonces = nonces
        self._rate = rate_limiter
        self._policy = policy
        self._limits = limits
        self._clock = clock
        self._observe = observe or (lambda outcome, reason: None)
        # Wakes this process's idle workers when jobs were queued (other replicas poll).
        self._on_queued = on_queued or (lambda: None)
        self._queue = _QueueGauge(limits)
        self._log = get_logger("publisher")

    # --- identities ------------------------------------------------------------------------------

    async def register_identity(
        self, caller: Caller, request_id: str, pubkey: bytes, label: str, owner_ref: str
    ) -> Identity:
        _require_role(caller, ROLE_REGISTRAR)
        check_request_id(request_id)
        _check_pubkey(pubkey)
        if not 1 <= len(label) <= MAX_LABEL_CHARS:
            raise invalid_argument("LABEL_INVALID", "label", f"1-{MAX_LABEL_CHARS} characters")
        if len(owner_ref) > MAX_OWNER_REF_CHARS:
            raise invalid_argument("OWNER_REF_INVALID", "owner_ref", f"at most {MAX_OWNER_REF_CHARS} characters")
        fingerprint = _fingerprint("RegisterIdentity", pubkey, label.encode(), owner_ref.encode())
        actor = Actor(caller.caller_id, request_id)
        async with self._store.unit_of_work() as uow:
            if await uow.find_answer(caller.caller_id, "RegisterIdentity", request_id, fingerprint) is not None:
                existing = await uow.identity(pubkey)
                assert existing is not None
                return existing
            created = await uow.insert_identity(pubkey, label, owner_ref, actor)
            if created is None:
                existing = await uow.identity(pubkey)
                if existing is not None and existing.status is IdentityStatus.REVOKED:
                    raise DomainError(
                        ErrorKind.FAILED_PRECONDITION,
                        "IDENTITY_PREVIOUSLY_REVOKED",
                        "this key was revoked and can never be registered again; register a new key",
                        metadata={"pubkey": pubkey.hex()},
                    )
                raise DomainError(
                    ErrorKind.ALREADY_EXISTS,
                    "IDENTITY_ALREADY_REGISTERED",
                    "this key is already registered",
                    metadata={"pubkey": pubkey.hex()},
                )
            await uow.record_answer(caller.caller_id, "RegisterIdentity", request_id, fingerprint, b"{}")
        self._log.info("identity.registered", pubkey=pubkey.hex(), owner_ref=owner_ref)
        return created

    async def revoke_identity(
        self, caller: Caller, request_id: str, pubkey: bytes, reason: str, cancel_queued_jobs: bool
    ) -> tuple[Identity, int]:
        _require_role(caller, ROLE_REGISTRAR)
        check_request_id(request_id)
        if len(pubkey) != signatures.PUBKEY_BYTES:
            raise invalid_argument("PUBKEY_INVALID", "pubkey", "must be a 33-byte compressed public key")
        if len(reason) > MAX_REVOKE_REASON_CHARS:
            raise invalid_argument("REASON_INVALID", "reason", f"at most {MAX_REVOKE_REASON_CHARS} characters")
        method = "RevokeIdentity"
        fingerprint = _fingerprint(method, pubkey, reason.encode(), b"1" if cancel_queued_jobs else b"0")
        actor = Actor(caller.caller_id, request_id)
        async with self._store.unit_of_work() as uow:
            replay = await uow.find_answer(caller.caller_id, method, request_id, fingerprint)
            if replay is not None:
                identity = await uow.identity(pubkey)
                assert identity is not None
                return identity, int(orjson.loads(replay)["cancelled"])
            identity = await uow.identity(pubkey, for_update=True)
            if identity is None:
                raise DomainError(
                    ErrorKind.NOT_FOUND,
                    "IDENTITY_NOT_FOUND",
                    "no identity with this key was ever registered",
                    metadata={"pubkey": pubkey.hex()},
                )
            if identity.status is IdentityStatus.ACTIVE:
                identity = await uow.revoke_identity(pubkey, reason, actor)
            cancelled = await uow.cancel_queued_jobs(pubkey, reason, actor) if cancel_queued_jobs else 0
            await uow.append_identity_event(pubkey, "revoked", actor, reason, cancelled)
            await uow.record_answer(
                caller.caller_id, method, request_id, fingerprint, orjson.dumps({"cancelled": cancelled})
            )
        self._log.info("identity.revoked", pubkey=pubkey.hex(), cancelled_jobs=cancelled)
        return identity, cancelled

    async def list_identities(
        self, caller: Caller, status: IdentityStatus | None, owner_ref: str, requested_size: int, token: str
    ) -> IdentityPage:
        _require_role(caller, ROLE_REGISTRAR)
        size = page_size(requested_size)
        filters = _filter_hash("identities", status.value if status else "", owner_ref)
        cursor = _cursor(token, filters)
        after = int(cursor.get("after", 0))
        async with self._store.reader() as uow:
            rows = await uow.list_identities(status, owner_ref, after, size + 1)
        page = rows[:size]
        next_token = encode_page_token({"after": page[-1][0], "f": filters}) if len(rows) > size else ""
        return IdentityPage(tuple(identity for _, identity in page), next_token)

    # --- intake ----------------------------------------------------------------------------------

    async def publish(
        self,
        caller: Caller,
        request_id: str,
        intent: SignedIntent,
        wait_for: JobStatus | None,
        wait_timeout_s: float | None,
        deadline_left_s: float | None,
    ) -> tuple[Job, bool]:
        _require_role(caller, ROLE_PUBLISH)
        check_request_id(request_id)
        target = _wait_target(wait_for, "wait_for", "WAIT_FOR_INVALID")
        wait_until = asyncio.get_running_loop().time() + self._wait_seconds(wait_timeout_s, deadline_left_s)
        [outcome] = await self._intake(caller, request_id, "Publish", [intent], is_batch=False)
        if outcome.error is not None:
            raise outcome.error
        assert outcome.job is not None
        job = outcome.job
        if target is not None and not has_reached(job.status, target):
            job = (await self._wait([job.job_id], target, wait_until))[job.job_id]
        return job, outcome.deduplicated

    async def publish_batch(
        self,
        caller: Caller,
        request_id: str,
        batch: Sequence[SignedIntent],
        wait_for: JobStatus | None,
        wait_timeout_s: float | None,
        deadline_left_s: float | None,
    ) -> list[Outcome]:
        _require_role(caller, ROLE_PUBLISH)
        check_request_id(request_id)
        if not batch:
            raise invalid_argument("BATCH_EMPTY", "intents", "at least one intent is required")
        if len(batch) > MAX_BATCH_INTENTS:
            raise invalid_argument("BATCH_TOO_LARGE", "intents", f"at most {MAX_BATCH_INTENTS} intents per call")
        target = _wait_target(wait_for, "wait_for", "WAIT_FOR_INVALID")
        wait_until = asyncio.get_running_loop().time() + self._wait_seconds(wait_timeout_s, deadline_left_s)
        outcomes = await self._intake(caller, request_id, "PublishBatch", batch, is_batch=True)
        if target is None:
            return outcomes
        waiting = sorted(
            {o.job.job_id for o in outcomes if o.job is not None and not has_reached(o.job.status, target)}
        )
        if not waiting:
            return outcomes
        latest = await self._wait(waiting, target, wait_until)
        return [Outcome(latest.get(o.job.job_id, o.job), o.deduplicated) if o.job is not None else o for o in outcomes]

    async def _intake(
        self, caller: Caller, request_id: str, method: str, batch: Sequence[SignedIntent], *, is_batch: bool
    ) -> list[Outcome]:
        """Checks every intent in the contract's order and queues the ones that pass, in one
        transaction with the idempotency record. A refused intent stores nothing."""
        fingerprint = _intents_fingerprint(method, batch)
        now = self._clock()
        outcomes: list[Outcome | None] = [None] * len(batch)
        digests = [b""] * len(batch)
        for i, intent in enumerate(batch):
            try:
                intents.check_form(intent, self._policy)
                digests[i] = intents.digest_of(intent)
                intents.check_signature(intent, digests[i])
            except DomainError as error:
                outcomes[i] = Outcome(error=error)
        # An intent repeated within the batch gets its first copy's answer, marked deduplicated.
        first_copy: dict[bytes, int] = {}
        copies: dict[int, int] = {}
        for i, intent in enumerate(batch):
            if outcomes[i] is None:
                copies.setdefault(i, first_copy.setdefault(intent.pubkey + digests[i], i))
        copies = {i: first for i, first in copies.items() if i != first}
        pending = list(first_copy.values())

        async with self._store.reader() as uow:
            replay = await uow.find_answer(caller.caller_id, method, request_id, fingerprint)
            if replay is not None:
                return await replay_answer(uow, replay)
            existing = await uow.jobs_by_intent([(batch[i].pubkey, digests[i]) for i in pending])
            statuses = await uow.identity_statuses({batch[i].pubkey for i in pending})
        envelopes: dict[int, Envelope] = {}
        for i in pending:
            found = existing.get(batch[i].pubkey + digests[i])
            if found is not None:
                outcomes[i] = Outcome(found, deduplicated=True)
                continue
            try:
                check_identity(statuses.get(batch[i].pubkey))
                envelope = intents.read_envelope(batch[i].signed_payload, self._policy)
                intents.check_window(envelope, self._policy, now)
                envelopes[i] = envelope
            except DomainError as error:
                outcomes[i] = Outcome(error=error)

        fresh = await check_nonces(self._nonces, batch, digests, envelopes, outcomes)
        fresh = await rate_limit(self._rate, batch, fresh, outcomes)
        if not is_batch and outcomes[0] is not None and outcomes[0].error is not None:
            self._observe_all([outcomes[0]])
            raise outcomes[0].error

        actor = Actor(caller.caller_id, request_id)
        new_jobs = {i: NewJob(_new_job_id(), batch[i], digests[i], envelopes[i]) for i in fresh}
        async with self._store.unit_of_work() as uow:
            room = await self._queue.room(uow, len(new_jobs))
            if len(new_jobs) > room:
                raise DomainError(
                    ErrorKind.RESOURCE_EXHAUSTED,
                    "QUEUE_FULL",
                    f"the publish queue has room for {room} more jobs; retry later",
                    metadata={"room": str(room), "maxQueuedJobs": str(self._limits.max_queued_jobs)},
                    retry_after_ms=1000,
                )
            inserted = await uow.insert_jobs(list(new_jobs.values()), actor)
            skipped = [i for i, job in new_jobs.items() if job.job_id not in inserted]
            for i, job in new_jobs.items():
                if job.job_id in inserted:
                    outcomes[i] = Outcome(inserted[job.job_id])
            if skipped:
                await explain_skipped(uow, batch, digests, envelopes, skipped, outcomes)
            for i, first in copies.items():
                answer = outcomes[first]
                assert answer is not None
                outcomes[i] = Outcome(answer.job, True) if answer.job is not None else answer
            final = [o for o in outcomes if o is not None]
            assert len(final) == len(batch)
            if not is_batch and final[0].error is not None:
                self._observe_all(final)
                raise final[0].error
            await uow.record_answer(caller.caller_id, method, request_id, fingerprint, outcomes_to_json(final))
        self._queue.added(len(inserted))
        if inserted:
            self._on_queued()
        await self._nonces.remember(
            {(batch[i].pubkey, envelopes[i].nonce): digests[i] for i, job in new_jobs.items() if job.job_id in inserted}
        )
        self._observe_all(final)
        return final

    def _observe_all(self, outcomes: Sequence[Outcome]) -> None:
        for outcome in outcomes:
            if outcome.error is not None:
                self._observe("refused", outcome.error.reason)
            else:
                self._observe("deduplicated" if outcome.deduplicated else "accepted", "")

    # --- jobs ------------------------------------------------------------------------------------

    async def get_job(self, caller: Caller, job_id: str, full: bool) -> Job:
        _require_any_role(caller, ROLE_PUBLISH, ROLE_REGISTRAR)
        _check_job_id(job_id)
        return await self._one(job_id, full)

    async def list_jobs(self, caller: Caller, where: JobFilter, full: bool, requested_size: int, token: str) -> JobPage:
        _require_any_role(caller, ROLE_PUBLISH, ROLE_REGISTRAR)
        if where.identity_pubkey and len(where.identity_pubkey) != signatures.PUBKEY_BYTES:
            raise invalid_argument("PUBKEY_INVALID", "identity_pubkey", "must be a 33-byte compressed public key")
        if where.txid and not _is_txid(where.txid):
            raise invalid_argument("TXID_INVALID", "txid", "64 lowercase hex characters")
        size = page_size(requested_size)
        filters = _filter_hash(
            "jobs",
            ",".join(sorted(s.value for s in where.statuses)),
            where.identity_pubkey.hex(),
            where.start_time.isoformat() if where.start_time else "",
            where.end_time.isoformat() if where.end_time else "",
            where.txid,
            where.batch_id,
        )
        cursor = _cursor(token, filters)
        after: tuple[datetime, str] | None = None
        if cursor:
            try:
                after = (datetime.fromisoformat(str(cursor["t"])), str(cursor["j"]))
            except (KeyError, ValueError):
                raise _bad_token() from None
        async with self._store.reader() as uow:
            rows = await uow.list_jobs(where, after, size + 1, full=full)
        page = rows[:size]
        next_token = ""
        if len(rows) > size:
            next_token = encode_page_token({"t": page[-1].created_at.isoformat(), "j": page[-1].job_id, "f": filters})
        return JobPage(tuple(page), next_token)

    async def watch_job(
        self, caller: Caller, job_id: str, full: bool, until: JobStatus | None
    ) -> AsyncGenerator[Job, None]:
        """The job now, then a new snapshot after each change of status, txid or block, until it
        reaches `until` (CONFIRMED by default) or FAILED."""
        _require_any_role(caller, ROLE_PUBLISH, ROLE_REGISTRAR)
        _check_job_id(job_id)
        target = JobStatus.CONFIRMED if until is None else _wait_target(until, "until", "UNTIL_INVALID") or until
        async with self._changes.subscribe([job_id]) as subscription:
            job = await self._one(job_id, full)
            yield job
            seen = _watch_key(job)
            while not has_reached(job.status, target):
                await subscription.wait(self._limits.poll_s)
                if subscription.draining:
                    raise DomainError(
                        ErrorKind.UNAVAILABLE,
                        "SERVER_DRAINING",
                        "the server is shutting down; call WatchJob again to resume",
                        retry_after_ms=100,
                    )
                job = await self._one(job_id, full)
                if _watch_key(job) != seen:
                    seen = _watch_key(job)
                    yield job

    async def _one(self, job_id: str, full: bool) -> Job:
        async with self._store.reader() as uow:
            found = await uow.jobs([job_id], full=full)
        if job_id not in found:
            raise DomainError(ErrorKind.NOT_FOUND, "JOB_NOT_FOUND", f"no job {job_id}", metadata={"jobId": job_id})
        return found[job_id]

    async def _wait(self, job_ids: Sequence[str], target: JobStatus, deadline: float) -> dict[str, Job]:
        """Until every job has reached `target` (or FAILED), or the loop clock passed `deadline`:
        the latest state."""
        loop = asyncio.get_running_loop()
        async with self._changes.subscribe(job_ids) as subscription:
            while True:
                async with self._store.reader() as uow:
                    jobs = await uow.jobs(job_ids)
                remaining = deadline - loop.time()
                done = all(has_reached(job.status, target) for job in jobs.values())
                if done or remaining <= 0 or subscription.draining:
                    return jobs
                await subscription.wait(min(remaining, self._limits.poll_s))

    def _wait_seconds(self, requested_s: float | None, deadline_left_s: float | None) -> float:
        """How long a `wait_for` may wait: wait_timeout (0 = default, capped), and a little less
        than what is left of the call's deadline, so the answer still reaches the caller."""
        if requested_s is not None and requested_s < 0:
            raise invalid_argument("WAIT_TIMEOUT_INVALID", "wait_timeout", "must not be negative")
        wait = self._limits.default_wait_s if not requested_s else min(requested_s, self._limits.max_wait_s)
        if deadline_left_s is not None:
            wait = min(wait, deadline_left_s - min(0.5, deadline_left_s * 0.1))
        return max(0.0, wait)


def _watch_key(job: Job) -> tuple[JobStatus, str, str]:
    return job.status, job.txid, job.block_hash


def _wait_target(status: JobStatus | None, field_name: str, reason: str) -> JobStatus | None:
    if status is JobStatus.FAILED:
        raise invalid_argument(reason, field_name, "FAILED is not a status to wait for; every wait ends at FAILED")
    if status is JobStatus.QUEUED:
        return None
    return status


def _require_role(caller: Caller, role: str) -> None:
    if not caller.has_role(role):
        raise _role_required(caller, role)


def _require_any_role(caller: Caller, *roles: str) -> None:
    if not any(caller.has_role(role) for role in roles):
        raise _role_required(caller, "|".join(roles))


def _role_required(caller: Caller, role: str) -> DomainError:
    return DomainError(
        ErrorKind.PERMISSION_DENIED,
        "ROLE_REQUIRED",
        f"this operation needs the role {role}",
        metadata={"role": role, "callerId": caller.caller_id},
    )


def _check_pubkey(pubkey: bytes) -> None:
    if not signatures.is_compressed_pubkey(pubkey):
        raise invalid_argument("PUBKEY_INVALID", "pubkey", "must be a 33-byte compressed secp256k1 public key")


def _check_job_id(job_id: str) -> None:
    if not job_id or len(job_id) > MAX_JOB_ID_CHARS:
        raise invalid_argument("JOB_ID_INVALID", "job_id", f"1-{MAX_JOB_ID_CHARS} characters")


def _is_txid(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _new_job_id() -> str:
    return f"job_{uuid.uuid4().hex}"


def _fingerprint(*parts: bytes | str) -> bytes:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(4, "big"))
        digest.update(data)
    return digest.digest()


def _intents_fingerprint(method: str, batch: Sequence[SignedIntent]) -> bytes:
    # wait_for and wait_timeout change how long the answer takes, not what it is.
    return _fingerprint(method, *(part for i in batch for part in (i.signed_payload, i.signature, i.pubkey)))


def _filter_hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def _cursor(token: str, filters: str) -> dict[str, Any]:
    cursor = decode_page_token(token)
    if cursor and cursor.get("f") != filters:
        raise _bad_token()
    return cursor


def _bad_token() -> DomainError:
    return invalid_argument("PAGE_TOKEN_INVALID", "page_token", "not a token of this list with these filters")
