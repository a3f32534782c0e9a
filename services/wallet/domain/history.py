"""Reading wallet transactions: one, a page of an account's history, waits and watches."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from proofline_kit.auth import Caller
from proofline_kit.errors import DomainError, ErrorKind, invalid_argument
from proofline_kit.pagination import decode_page_token, encode_page_token, page_size
from services.wallet.domain.access import may_see, require_account_access, require_reader
from services.wallet.domain.accounts import require_account
from services.wallet.domain.models import Page, TxFilter, TxStatus, WalletTx, has_reached
from services.wallet.domain.ports import ChangeFeed, Store


@dataclass(frozen=True, slots=True)
class WaitLimits:
    default_wait_s: float = 30.0
    max_wait_s: float = 300.0
    # How often a waiter re-reads even without a notification.
    poll_s: float = 2.0


_TXID = re.compile(r"^[0-9a-f]{64}$")


def transaction_not_found(transaction_id: str) -> DomainError:
    return DomainError(
        ErrorKind.NOT_FOUND,
        "TRANSACTION_NOT_FOUND",
        "no such transaction",
        metadata={"transactionId": transaction_id[:64]},
    )


def _filter_key(where: TxFilter) -> list[object]:
    return [
        where.account_id,
        where.direction.value if where.direction else "",
        sorted(s.value for s in where.statuses),
        where.txid,
        where.start_time.isoformat() if where.start_time else "",
        where.end_time.isoformat() if where.end_time else "",
    ]


class TransactionReader:
    def __init__(self, store: Store, changes: ChangeFeed, limits: WaitLimits) -> None:
        self._store = store
        self._changes = changes
        self._limits = limits

    async def get(self, caller: Caller, transaction_id: str, full: bool) -> WalletTx:
        require_reader(caller)
        return await self._one(transaction_id, full, caller)

    async def _one(self, transaction_id: str, full: bool, caller: Caller | None = None) -> WalletTx:
        """The transaction, NOT_FOUND also when it is not the caller's to see (a session's); no
        caller: a read of the wallet's own (after a send it just recorded)."""
        if not transaction_id:
            raise invalid_argument("TRANSACTION_ID_INVALID", "transaction_id", "required")
        async with self._store.reader() as uow:
            found = await uow.transactions([transaction_id], full=full) if len(transaction_id) <= 64 else {}
        if transaction_id not in found or (
            caller is not None and not may_see(caller, found[transaction_id].account_id)
        ):
            raise transaction_not_found(transaction_id)
        return found[transaction_id]

    async def list(self, caller: Caller, where: TxFilter, full: bool, size: int, token: str) -> Page[WalletTx]:
        require_account_access(caller, where.account_id)
        limit = page_size(size)
        if where.start_time and where.end_time and where.start_time >= where.end_time:
            raise invalid_argument("TIME_RANGE_INVALID", "end_time", "must be after start_time")
        if where.txid and not _TXID.match(where.txid):
            raise invalid_argument("TXID_INVALID", "txid", "64 lowercase hex characters")
        cursor = decode_page_token(token)
        before: int | None = None
        if cursor:
            if cursor.get("f") != _filter_key(where) or type(cursor.get("s")) is not int:
                raise invalid_argument("PAGE_TOKEN_INVALID", "page_token", "the filters changed since this token")
            before = cursor["s"]
        async with self._store.reader() as uow:
            await require_account(uow, where.account_id)
            rows = await uow.list_transactions(where, before, limit + 1, full=full)
        more = len(rows) > limit
        rows = rows[:limit]
        next_token = ""
        if more and rows:
            next_token = encode_page_token({"s": rows[-1][0], "f": _filter_key(where)})
        return Page([tx for _, tx in rows], next_token)

    def wait_budget(self, wait_for: TxStatus | None, requested_s: float | None, time_left_s: float | None) -> float:
        """How long a Send may wait for `wait_for` (0 when it does not wait)."""
        if wait_for in (TxStatus.REORGING, TxStatus.FAILED):
            raise invalid_argument("WAIT_FOR_INVALID", "wait_for", "REORGING and FAILED are not statuses to wait for")
        if requested_s is not None and (requested_s < 0 or requested_s > self._limits.max_wait_s):
            raise invalid_argument("WAIT_TIMEOUT_INVALID", "wait_timeout", f"0 to {self._limits.max_wait_s:g} seconds")
        if wait_for in (None, TxStatus.PENDING):
            return 0.0
        wait = requested_s or self._limits.default_wait_s
        if time_left_s is not None:
            wait = min(wait, time_left_s - min(0.5, time_left_s * 0.1))
        return max(0.0, wait)

    async def settle(self, transaction_id: str, wait_for: TxStatus | None, wait_s: float) -> WalletTx:
        """The transaction once it reached `wait_for` (or FAILED), or as it is when the wait ends."""
        if wait_for is None or wait_s <= 0:
            return await self._one(transaction_id, False)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        async with self._changes.subscribe([transaction_id]) as subscription:
            while True:
                tx = await self._one(transaction_id, False)
                remaining = deadline - loop.time()
                if has_reached(tx.status, wait_for) or remaining <= 0 or subscription.draining:
                    return tx
                await subscription.wait(min(remaining, self._limits.poll_s))

    async def watch(
        self, caller: Caller, transaction_id: str, full: bool, until_confirmations: int
    ) -> AsyncGenerator[WalletTx, None]:
        """The transaction now, then a snapshot after every change of status or confirmations; ends
        once FAILED, or CONFIRMED with at least `until_confirmations` (0 = its required depth)."""
        require_reader(caller)
        async with self._changes.subscribe([transaction_id]) as subscription:
            tx = await self._one(transaction_id, full, caller)
            yield tx
            seen = _watch_key(tx)
            while not _watch_over(tx, until_confirmations):
                await subscription.wait(self._limits.poll_s)
                if subscription.draining:
                    raise DomainError(
                        ErrorKind.UNAVAILABLE,
                        "SERVER_DRAINING",
                        "the server is shutting down; call WatchTransaction again to resume",
                        retry_after_ms=100,
                    )
                tx = await self._one(transaction_id, full, caller)
                if _watch_key(tx) != seen:
                    seen = _watch_key(tx)
                    yield tx


def _watch_key(tx: WalletTx) -> tuple[TxStatus, str, str, int, str]:
    return tx.status, tx.txid, tx.block_hash, tx.confirmations, tx.failure_reason


def _watch_over(tx: WalletTx, until_confirmations: int) -> bool:
    if tx.status is TxStatus.FAILED:
        return True
    wanted = until_confirmations or tx.required_confirmations
    return tx.status is TxStatus.CONFIRMED and tx.confirmations >= wanted
