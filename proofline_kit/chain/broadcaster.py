"""Broadcast through providers in order (ARC, then WhatsOnChain): the next one is asked only when
the previous gave no verdict, and every answer is kept so callers can see who said what."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from proofline_kit.outbound.deadline import Clock, Deadline

from .outcomes import Attempt, BroadcastOutcome, BroadcastReport, Provider
from .txbytes import PreparedTx


class BroadcastProvider(Protocol):
    provider: Provider

    async def broadcast(self, tx: PreparedTx, *, deadline: Deadline | None = None) -> BroadcastOutcome: ...


@runtime_checkable
class BatchBroadcastProvider(Protocol):
    provider: Provider

    async def broadcast(self, tx: PreparedTx, *, deadline: Deadline | None = None) -> BroadcastOutcome: ...

    async def broadcast_many(
        self, txs: Sequence[PreparedTx], *, deadline: Deadline | None = None
    ) -> dict[str, BroadcastOutcome]: ...


class Broadcaster:
    """Fallback broadcaster. A definitive answer (accepted, double spend, missing inputs, fee too
    low, invalid) ends the chain; UNAVAILABLE moves on. Each provider but the last may use only its
    even share of the time left, so a hanging ARC still leaves WhatsOnChain time to answer."""

    def __init__(
        self,
        providers: Sequence[BroadcastProvider],
        *,
        default_budget_s: float = 30.0,
        fallback_concurrency: int = 3,
        clock: Clock = time.monotonic,
    ) -> None:
        if not providers:
            raise ValueError("a broadcaster needs at least one provider")
        self._providers = tuple(providers)
        self._default_budget_s = default_budget_s
        self._fallback_concurrency = max(1, fallback_concurrency)
        self._clock = clock

    def _budget(self, deadline: Deadline | None) -> Deadline:
        return deadline if deadline is not None else Deadline.after(self._default_budget_s, self._clock)

    async def broadcast(self, tx: PreparedTx, *, deadline: Deadline | None = None) -> BroadcastReport:
        budget = self._budget(deadline)
        attempts: list[Attempt] = []
        outcome: BroadcastOutcome | None = None
        for index, provider in enumerate(self._providers):
            share = budget.share(len(self._providers) - index)
            outcome = await provider.broadcast(tx, deadline=share)
            attempts.append(Attempt(provider.provider, outcome))
            if outcome.definitive:
                break
        assert outcome is not None
        return BroadcastReport(outcome, tuple(attempts))

    async def broadcast_many(
        self, txs: Sequence[PreparedTx], *, deadline: Deadline | None = None
    ) -> dict[str, BroadcastReport]:
        """Reports keyed by txid in request order. A provider with a batch endpoint gets one call
        for all pending txs; others get one call per tx (a few at a time, parents first)."""
        budget = self._budget(deadline)
        unique = list({tx.txid: tx for tx in txs}.values())
        attempts: dict[str, list[Attempt]] = {tx.txid: [] for tx in unique}
        final: dict[str, BroadcastOutcome] = {}
        pending = unique
        for index, provider in enumerate(self._providers):
            if not pending:
                break
            share = budget.share(len(self._providers) - index)
            outcomes = await self._send(provider, pending, share)
            for tx in pending:
                outcome = outcomes[tx.txid]
                attempts[tx.txid].append(Attempt(provider.provider, outcome))
                final[tx.txid] = outcome
            pending = [tx for tx in pending if not final[tx.txid].definitive]
        return {tx.txid: BroadcastReport(final[tx.txid], tuple(attempts[tx.txid])) for tx in unique}

    async def _send(
        self, provider: BroadcastProvider, txs: list[PreparedTx], deadline: Deadline
    ) -> dict[str, BroadcastOutcome]:
        if isinstance(provider, BatchBroadcastProvider):
            return await provider.broadcast_many(txs, deadline=deadline)
        # One at a time would be slow; all at once could send a child before its parent. So send in
        # waves: a tx goes once every parent of it in this batch has been answered.
        gate = asyncio.Semaphore(self._fallback_concurrency)

        async def one(tx: PreparedTx) -> BroadcastOutcome:
            async with gate:
                return await provider.broadcast(tx, deadline=deadline)

        results: dict[str, BroadcastOutcome] = {}
        waiting = list(txs)
        in_batch = {tx.txid for tx in txs}
        while waiting:
            ready = [tx for tx in waiting if not (tx.parent_txids & in_batch) - results.keys()]
            if not ready:  # a cycle cannot happen in valid txs; send the rest rather than stall
                ready = waiting
            answers = await asyncio.gather(*(one(tx) for tx in ready))
            results.update((tx.txid, outcome) for tx, outcome in zip(ready, answers, strict=True))
            waiting = [tx for tx in waiting if tx.txid not in results]
        return results
