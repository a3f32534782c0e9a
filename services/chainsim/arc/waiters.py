"""ARC wait semantics (X-WaitFor / X-MaxTimeout) and the optional staged status progression."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from services.chainsim.chain.state import ChainState, NodeState, TxRecord
from services.chainsim.chain.status import STAGES, ArcStatus

_NODE_REPORTED = frozenset({ArcStatus.REJECTED, ArcStatus.SEEN_IN_ORPHAN_MEMPOOL, ArcStatus.DOUBLE_SPEND_ATTEMPTED})


def reached(rec: TxRecord, target: ArcStatus) -> bool:
    """ARC returns once the status code is >= the target, or as soon as the node reported a problem
    (rejection, missing inputs, double spend) - those come with an error and end the wait."""
    return rec.status >= target or rec.status in _NODE_REPORTED


class StatusWaiters:
    """Futures resolved by state status notifications."""

    def __init__(self, state: ChainState) -> None:
        self.state = state
        self._waiting: dict[bytes, list[tuple[ArcStatus, asyncio.Future[None]]]] = {}
        state.listeners.append(self.on_status)

    def on_status(self, rec: TxRecord, _old: ArcStatus) -> None:
        if not self._waiting:
            return
        entries = self._waiting.get(rec.txid)
        if not entries:
            return
        keep: list[tuple[ArcStatus, asyncio.Future[None]]] = []
        for target, fut in entries:
            if fut.done():
                continue
            if reached(rec, target):
                fut.set_result(None)
            else:
                keep.append((target, fut))
        if keep:
            self._waiting[rec.txid] = keep
        else:
            del self._waiting[rec.txid]

    async def wait_all(self, records: Sequence[TxRecord], target: ArcStatus, timeout_s: float) -> None:
        """Wait until every record reached ``target`` or ``timeout_s`` passed (never raises on timeout)."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = []
        for rec in records:
            if reached(rec, target):
                continue
            fut: asyncio.Future[None] = loop.create_future()
            self._waiting.setdefault(rec.txid, []).append((target, fut))
            futures.append(fut)
        if not futures:
            return
        try:
            await asyncio.wait(futures, timeout=timeout_s)
        finally:
            for fut in futures:
                if not fut.done():
                    fut.cancel()
            self._prune()

    def _prune(self) -> None:
        for txid in [t for t, entries in self._waiting.items() if all(f.done() for _, f in entries)]:
            del self._waiting[txid]


class StagedProgression:
    """STORED -> ANNOUNCED_TO_NETWORK -> SENT_TO_NETWORK -> ACCEPTED_BY_NETWORK -> SEEN_ON_NETWORK."""

    def __init__(self, state: ChainState, delay_s: float) -> None:
        self.state = state
        self.delay_s = delay_s
        self._handles: set[asyncio.TimerHandle] = set()
        state.listeners.append(self.on_status)

    def on_status(self, rec: TxRecord, old: ArcStatus) -> None:
        if rec.status == ArcStatus.STORED and old < ArcStatus.STORED:
            self._schedule(rec.txid, 1)

    def _schedule(self, txid: bytes, stage: int) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            if handle is not None:
                self._handles.discard(handle)
            self._advance(txid, stage)

        handle = loop.call_later(self.delay_s, fire)
        self._handles.add(handle)

    def _advance(self, txid: bytes, stage: int) -> None:
        rec = self.state.txs.get(txid)
        if rec is None or rec.node != NodeState.MEMPOOL or stage >= len(STAGES):
            return
        if rec.status >= STAGES[stage]:
            return
        self.state.set_status(rec, STAGES[stage])
        if stage + 1 < len(STAGES):
            self._schedule(txid, stage + 1)

    def cancel(self) -> None:
        for handle in self._handles:
            handle.cancel()
        self._handles.clear()
