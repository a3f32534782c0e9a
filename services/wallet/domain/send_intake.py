"""Recording priced sends: the reservation decided under the accounts' book locks, the send PENDING,
its reserve entry and its answer, all in one database transaction.

Sends arriving together are recorded together (group commit): one transaction and a handful of
statements for a group instead of seven round trips per send. Within a group each send is decided
in arrival order against what the sends before it reserved, so a group can never overdraw an
account either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import orjson

from proofline_kit.errors import DomainError, ErrorKind
from proofline_kit.group_commit import GroupCommit
from proofline_kit.idempotency import answer_for
from services.wallet.domain import ledger
from services.wallet.domain.accounts import account_not_found
from services.wallet.domain.models import Actor, WalletTx
from services.wallet.domain.ports import NewSend, RateLimiter, Store, UnitOfWork

METHOD = "Send"


@dataclass(frozen=True, slots=True)
class SendToRecord:
    send: NewSend
    fingerprint: bytes

    @property
    def key(self) -> tuple[str, str]:
        return self.send.caller_id, self.send.request_id


@dataclass(frozen=True, slots=True)
class Replayed:
    """The request was recorded before: the transaction its answer names."""

    transaction_id: str

    @classmethod
    def from_answer(cls, answer: bytes) -> Replayed:
        return cls(orjson.loads(answer)["transactionId"])


def send_answer(transaction_id: str) -> bytes:
    """What a recorded Send answers a retry with (read back by `Replayed.from_answer`)."""
    return orjson.dumps({"transactionId": transaction_id})


def insufficient_funds(available: int, required: int) -> DomainError:
    return DomainError(
        ErrorKind.FAILED_PRECONDITION,
        "INSUFFICIENT_FUNDS",
        f"available {available} sat does not cover {required} sat",
        metadata={"availableSatoshis": str(available), "requiredSatoshis": str(required)},
    )


def rate_limited(account_id: str) -> DomainError:
    return DomainError(
        ErrorKind.RESOURCE_EXHAUSTED,
        "RATE_LIMITED",
        "too many sends from this account; retry later",
        metadata={"accountId": account_id},
        retry_after_ms=1000,
    )


class SendIntake:
    def __init__(
        self,
        store: Store,
        rate_limiter: RateLimiter | None,
        daily_limit_satoshis: int,
        max_group: int,
        on_recorded: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._rate_limiter = rate_limiter
        self._daily_limit = daily_limit_satoshis
        self._on_recorded = on_recorded
        self._groups: GroupCommit[SendToRecord, WalletTx | Replayed] = GroupCommit(self._record_group, max_group)

    async def record(self, request: SendToRecord) -> WalletTx | Replayed:
        """The send recorded PENDING, or the earlier answer to the same request; a DomainError with
        the reason when it is refused (nothing is then stored)."""
        return await self._groups.submit(request)

    async def _record_group(self, requests: Sequence[SendToRecord]) -> list[WalletTx | Replayed | BaseException]:
        outcomes: dict[int, WalletTx | Replayed | BaseException] = {}
        # A request_id twice in one group: the later one is decided after the first is recorded.
        pending = list(enumerate(requests))
        while pending:
            keys: set[tuple[str, str]] = set()
            now: list[tuple[int, SendToRecord]] = []
            later: list[tuple[int, SendToRecord]] = []
            for position, request in pending:
                (later if request.key in keys else now).append((position, request))
                keys.add(request.key)
            decided = await self._record_distinct([r for _, r in now])
            outcomes.update((position, outcome) for (position, _), outcome in zip(now, decided, strict=True))
            pending = later
        return [outcomes[i] for i in range(len(requests))]

    async def _record_distinct(self, requests: Sequence[SendToRecord]) -> list[WalletTx | Replayed | BaseException]:
        allowed = (
            await self._rate_limiter.allow([r.send.account_id for r in requests])
            if self._rate_limiter is not None
            else [True] * len(requests)
        )
        try:
            return await self._decide_and_record(requests, allowed)
        except DomainError as error:
            if len(requests) == 1 or error.reason != "REQUEST_IN_PROGRESS":
                raise
        # Another replica recorded one of these request_ids meanwhile: one at a time, so that only
        # that one is told to retry.
        outcomes: list[WalletTx | Replayed | BaseException] = []
        for request, ok in zip(requests, allowed, strict=True):
            try:
                outcomes.extend(await self._decide_and_record([request], [ok]))
            except DomainError as error:
                outcomes.append(error)
        return outcomes

    async def _decide_and_record(
        self, requests: Sequence[SendToRecord], allowed: Sequence[bool]
    ) -> list[WalletTx | Replayed | BaseException]:
        # None: accepted, its recorded row filled in below.
        outcomes: list[WalletTx | Replayed | BaseException | None] = []
        accepted: list[SendToRecord] = []
        recorded_txs: dict[str, WalletTx] = {}
        accounts = [r.send.account_id for r in requests]
        async with self._store.unit_of_work() as uow:
            # The books first: a concurrent attempt of the same request_id holding them has
            # committed its answer by the time the answers are read.
            books = await uow.lock_accounts(accounts)
            answers = await uow.find_answers(METHOD, [r.key for r in requests])
            debited = await self._debited_today(uow, accounts)
            for request, ok in zip(requests, allowed, strict=True):
                send = request.send
                try:
                    if send.account_id not in books:
                        raise account_not_found(send.account_id)
                    recorded = answers.get(request.key)
                    if recorded is not None:
                        answer = answer_for(recorded, send.request_id, request.fingerprint)
                        outcomes.append(Replayed.from_answer(answer))
                        continue
                    if not ok:
                        raise rate_limited(send.account_id)
                    available, deficit = books[send.account_id]
                    self._check(send, available, deficit, debited.get(send.account_id, 0))
                except DomainError as error:
                    outcomes.append(error)
                    continue
                books[send.account_id] = (available - send.debit_satoshis, deficit)
                debited[send.account_id] = debited.get(send.account_id, 0) + send.debit_satoshis
                accepted.append(request)
                outcomes.append(None)
            if accepted:
                recorded_txs = {t.transaction_id: t for t in await uow.insert_sends([r.send for r in accepted])}
                by_caller: dict[str, list[ledger.Entry]] = {}
                for r in accepted:
                    by_caller.setdefault(r.send.caller_id, []).append(
                        ledger.reserve(r.send.transaction_id, r.send.account_id, r.send.debit_satoshis)
                    )
                for caller_id, entries in by_caller.items():
                    await uow.post_many(entries, Actor(caller_id, ""))
                await uow.record_answers(
                    METHOD,
                    [(*r.key, r.fingerprint, send_answer(r.send.transaction_id)) for r in accepted],
                )
        if accepted and self._on_recorded is not None:
            self._on_recorded()
        return [
            recorded_txs[r.send.transaction_id] if outcome is None else outcome
            for r, outcome in zip(requests, outcomes, strict=True)
        ]

    async def _debited_today(self, uow: UnitOfWork, accounts: Sequence[str]) -> dict[str, int]:
        if not self._daily_limit:
            return {}
        return await uow.debited_since(accounts, await uow.now() - timedelta(hours=24))

    def _check(self, send: NewSend, available: int, deficit: int, debited: int) -> None:
        if deficit:
            raise DomainError(
                ErrorKind.FAILED_PRECONDITION,
                "ACCOUNT_IN_DEFICIT",
                f"the account owes {deficit} sat after a reversed deposit; sends resume once covered",
                metadata={"deficitSatoshis": str(deficit)},
            )
        limit = self._daily_limit
        if limit and debited + send.debit_satoshis > limit:
            raise DomainError(
                ErrorKind.RESOURCE_EXHAUSTED,
                "DAILY_LIMIT_EXCEEDED",
                f"this send would bring the last 24 hours to {debited + send.debit_satoshis} sat, above the limit"
                f" {limit}",
                metadata={"limitSatoshis": str(limit), "usedSatoshis": str(debited)},
            )
        if available < send.debit_satoshis:
            raise insufficient_funds(available, send.debit_satoshis)
