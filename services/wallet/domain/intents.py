"""Signed intents forwarded to the publisher, and reads of the jobs they became.

The intake is cheap by construction: a batch costs one query (which of its keys are the account's;
the account itself is read only when none is) and one PublishBatch; the publisher's answers are
handed back as it gave them. A job is the account's when its identity key is linked to the account;
any other job is JOB_NOT_FOUND exactly as the publisher says it for an unknown id, so a caller
cannot tell another account's job ids from ids that do not exist."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing

from proofline_kit.auth import Caller
from proofline_kit.errors import DomainError, ErrorKind, invalid_argument
from proofline_kit.idempotency import check_request_id
from proofline_kit.intents.models import SignedIntent
from services.wallet.domain.access import require_account_access
from services.wallet.domain.accounts import require_account
from services.wallet.domain.models import ForwardedJob, ForwardedResult
from services.wallet.domain.ports import Publisher, Store, UnitOfWork

MAX_BATCH = 1000
PUBLISHER_DOMAIN = "proofline.publisher"


def not_in_account(pubkey: bytes) -> DomainError:
    return DomainError(
        ErrorKind.PERMISSION_DENIED,
        "IDENTITY_NOT_IN_ACCOUNT",
        "the intent's key is not linked to the account",
        metadata={"pubkey": pubkey.hex()[:66]},
    )


def job_not_found(job_id: str) -> DomainError:
    """The publisher's own answer for an unknown job, word for word (publisher.domain.publisher)."""
    return DomainError(
        ErrorKind.NOT_FOUND, "JOB_NOT_FOUND", f"no job {job_id}", metadata={"jobId": job_id}, domain=PUBLISHER_DOMAIN
    )


class IntentForwarding:
    def __init__(self, store: Store, publisher: Publisher) -> None:
        self._store = store
        self._publisher = publisher

    async def _linked(self, account_id: str, pubkeys: Sequence[bytes]) -> set[bytes]:
        """The account's keys among `pubkeys`; ACCOUNT_NOT_FOUND when the account does not exist."""
        if not account_id:
            raise invalid_argument("ACCOUNT_ID_INVALID", "account_id", "required")
        async with self._store.reader() as uow:
            linked = await uow.linked_keys(account_id, pubkeys) if len(account_id) <= 64 else set()
            if not linked:
                await require_account(uow, account_id)
        return linked

    async def submit(
        self,
        caller: Caller,
        request_id: str,
        account_id: str,
        intent: SignedIntent,
        wait_for: int,
        wait_timeout_s: float | None,
        deadline_left_s: float | None,
    ) -> tuple[ForwardedJob, bool]:
        require_account_access(caller, account_id)
        check_request_id(request_id)
        if intent.pubkey not in await self._linked(account_id, [intent.pubkey]):
            raise not_in_account(intent.pubkey)
        return await self._publisher.publish(request_id, intent, wait_for, wait_timeout_s, deadline_left_s)

    async def submit_batch(
        self,
        caller: Caller,
        request_id: str,
        account_id: str,
        intents: Sequence[SignedIntent],
        wait_for: int,
        wait_timeout_s: float | None,
        deadline_left_s: float | None,
    ) -> list[ForwardedResult | DomainError]:
        """One result per intent in request order: the publisher's, or IDENTITY_NOT_IN_ACCOUNT for
        an intent whose key is not the account's (not forwarded)."""
        require_account_access(caller, account_id)
        check_request_id(request_id)
        if not intents:
            raise invalid_argument("BATCH_EMPTY", "intents", "at least one intent is required")
        if len(intents) > MAX_BATCH:
            raise invalid_argument("BATCH_TOO_LARGE", "intents", f"at most {MAX_BATCH} intents per call")
        linked = await self._linked(account_id, [i.pubkey for i in intents])
        forwarded = [i for i in intents if i.pubkey in linked]
        answers = iter(
            await self._publisher.publish_batch(request_id, forwarded, wait_for, wait_timeout_s, deadline_left_s)
            if forwarded
            else []
        )
        return [next(answers) if i.pubkey in linked else not_in_account(i.pubkey) for i in intents]

    async def _require_own(self, uow: UnitOfWork, account_id: str, job: ForwardedJob) -> None:
        if job.identity_pubkey not in await uow.linked_keys(account_id, [job.identity_pubkey]):
            raise job_not_found(job.job_id)

    async def get_job(self, caller: Caller, account_id: str, job_id: str, full: bool) -> ForwardedJob:
        require_account_access(caller, account_id)
        async with self._store.reader() as uow:
            await require_account(uow, account_id)
        job = await self._publisher.get_job(job_id, full)
        async with self._store.reader() as uow:
            await self._require_own(uow, account_id, job)
        return job

    async def watch_job(
        self, caller: Caller, account_id: str, job_id: str, full: bool, until: int
    ) -> AsyncGenerator[ForwardedJob, None]:
        """The publisher's WatchJob, once its first snapshot shows the job is the account's (a job's
        key never changes)."""
        require_account_access(caller, account_id)
        async with self._store.reader() as uow:
            await require_account(uow, account_id)
        first = True
        async with aclosing(self._publisher.watch_job(job_id, full, until)) as snapshots:
            async for job in snapshots:
                if first:
                    async with self._store.reader() as uow:
                        await self._require_own(uow, account_id, job)
                    first = False
                yield job
