"""ARC-style callback delivery (arc-woc.md §2.8, §6.3.9).

Triggers: statuses >= REJECTED, or >= SEEN_IN_ORPHAN_MEMPOOL with X-FullStatusUpdates. One sender
task per receiver keeps deliveries ordered; non-2xx answers are retried, transport errors disable
the callback (ARC behaviour, switchable). Deduplicated on (url, txid, status, block hash).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from services.chainsim.arc.views import shown_block, tx_status
from services.chainsim.chain.clock import Clock
from services.chainsim.chain.state import CallbackTarget, ChainState, TxRecord
from services.chainsim.chain.status import CALLBACK_MIN_DEFAULT, CALLBACK_MIN_FULL, ArcStatus
from services.chainsim.settings import ChainsimSettings


@dataclass(slots=True)
class Delivery:
    id: int
    url: str
    token: str | None
    batch: bool
    txid: str
    status: str
    payload: dict[str, Any]
    created: float
    attempts: int = 0
    state: str = "pending"  # pending | delivered | failed | disabled
    responses: list[int | str] = field(default_factory=list)
    delivered_at: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "token": self.token,
            "batch": self.batch,
            "txid": self.txid,
            "txStatus": self.status,
            "payload": self.payload,
            "attempts": self.attempts,
            "state": self.state,
            "responses": self.responses,
            "created": self.created,
            "deliveredAt": self.delivered_at,
        }


class CallbackDispatcher:
    def __init__(self, state: ChainState, settings: ChainsimSettings, clock: Clock) -> None:
        self.state = state
        self.settings = settings
        self.clock = clock
        self._log: list[Delivery] = []
        self._seen: set[tuple[str, bytes, int, str]] = set()
        self._single: dict[str, deque[Delivery]] = {}
        self._batched: dict[tuple[str, str | None], list[Delivery]] = {}
        self._tasks: dict[object, asyncio.Task[None]] = {}
        self._client: httpx.AsyncClient | None = None
        self._running = False
        self._next_id = 0
        state.listeners.append(self.on_status)

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self.settings.callback_timeout_s, trust_env=False)
        self._running = True
        for url in list(self._single):
            self._wake_single(url)
        for key in list(self._batched):
            self._wake_batch(key)

    async def stop(self) -> None:
        self._running = False
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def reset(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()
        self._log.clear()
        self._seen.clear()
        self._single.clear()
        self._batched.clear()

    # ---- triggers ----------------------------------------------------------------------------

    def on_status(self, rec: TxRecord, _old: ArcStatus) -> None:
        targets = rec.callbacks
        if not targets:
            return
        threshold = CALLBACK_MIN_FULL if rec.full_updates else CALLBACK_MIN_DEFAULT
        if rec.status < threshold:
            return
        for target in targets:
            self.enqueue(target, rec)

    def registered(self, rec: TxRecord, target: CallbackTarget) -> None:
        """A callback was added to a known tx: send its current status if that is a trigger."""
        threshold = CALLBACK_MIN_FULL if rec.full_updates else CALLBACK_MIN_DEFAULT
        if rec.status >= threshold:
            self.enqueue(target, rec)

    def enqueue(self, target: CallbackTarget, rec: TxRecord) -> None:
        block = shown_block(rec)
        key = (target.url, rec.txid, int(rec.status), block.hash_hex if block is not None else "")
        if key in self._seen:
            return
        self._seen.add(key)
        payload = tx_status(rec, self.clock.rfc3339_nanos())
        self._next_id += 1
        delivery = Delivery(
            self._next_id,
            target.url,
            target.token,
            target.batch,
            payload["txid"],
            payload["txStatus"],
            payload,
            self.clock.now(),
        )
        self._log.append(delivery)
        if target.batch:
            bkey = (target.url, target.token)
            self._batched.setdefault(bkey, []).append(delivery)
            self._wake_batch(bkey)
        else:
            self._single.setdefault(target.url, deque()).append(delivery)
            self._wake_single(target.url)

    def log(self, txid: str | None = None) -> list[dict[str, Any]]:
        return [d.as_json() for d in self._log if txid is None or d.txid == txid]

    # ---- senders -----------------------------------------------------------------------------

    def _spawn(self, key: object, coro: Any) -> None:
        task = self._tasks.get(key)
        if task is not None and not task.done():
            coro.close()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            coro.close()
            return
        self._tasks[key] = loop.create_task(coro)

    def _wake_single(self, url: str) -> None:
        if self._running:
            self._spawn(("single", url), self._single_worker(url))

    def _wake_batch(self, key: tuple[str, str | None]) -> None:
        if self._running:
            self._spawn(("batch", key), self._batch_worker(key))

    async def _single_worker(self, url: str) -> None:
        queue = self._single[url]
        while queue and self._running:
            delivery = queue[0]
            await self._deliver([delivery], url, delivery.token, delivery.payload)
            queue.popleft()

    async def _batch_worker(self, key: tuple[str, str | None]) -> None:
        url, token = key
        while self._running and self._batched.get(key):
            await asyncio.sleep(self.settings.callback_batch_interval_ms / 1000)
            items = self._batched.get(key, [])[:500]
            if not items:
                break
            body = {"count": len(items), "callbacks": [d.payload for d in items]}
            await self._deliver(items, url, token, body)
            del self._batched[key][: len(items)]

    async def _deliver(self, items: list[Delivery], url: str, token: str | None, body: dict[str, Any]) -> None:
        headers = {"Content-Type": "application/json; charset=UTF-8"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        content = orjson.dumps(body)
        pause = self.settings.callback_retry_pause_ms / 1000
        while True:
            for d in items:
                d.attempts += 1
            client = self._client
            if client is None:
                return
            try:
                response = await client.post(url, content=content, headers=headers)
            except (httpx.TransportError, OSError) as exc:
                for d in items:
                    d.responses.append(f"transport error: {type(exc).__name__}")
                if self.settings.callback_disable_on_transport_error:
                    for d in items:
                        d.state = "disabled"
                    return
            else:
                for d in items:
                    d.responses.append(response.status_code)
                if 200 <= response.status_code < 300:
                    now = self.clock.now()
                    for d in items:
                        d.state = "delivered"
                        d.delivered_at = now
                    return
            if items[0].attempts > self.settings.callback_max_retries:
                for d in items:
                    d.state = "failed"
                return
            await asyncio.sleep(pause)
