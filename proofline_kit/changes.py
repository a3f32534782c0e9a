"""The LISTEN side of change notifications: a service's trigger NOTIFYs the ids of changed rows on a
channel, and waiters and watchers of those ids wake up (PostgreSQL stays the truth: they re-read)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from proofline_kit.logging import get_logger


class _Subscription:
    def __init__(self, hub: ChangeHub) -> None:
        self._hub = hub
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    @property
    def draining(self) -> bool:
        return self._hub.draining

    async def wait(self, timeout_s: float) -> bool:
        if self._hub.draining:
            return True
        try:
            await asyncio.wait_for(self._event.wait(), max(0.0, timeout_s))
        except TimeoutError:
            return False
        self._event.clear()
        return True


class ChangeHub:
    """LISTENs on `channel` over one pooled connection and wakes the subscribers of the ids named
    (comma-separated payloads). Notifications are only wake-ups: subscribers re-read from PostgreSQL
    and also poll, so a lost notification or a dropped connection only delays them."""

    def __init__(self, pool: asyncpg.Pool, channel: str, log_name: str) -> None:
        self._pool = pool
        self._channel = channel
        self._subscribers: dict[str, set[_Subscription]] = {}
        self._conn: Any = None
        self._reconnect: asyncio.Task[None] | None = None
        self._closed = False
        self.draining = False
        self._log = get_logger(log_name)

    async def start(self) -> None:
        self._conn = await self._pool.acquire()
        await self._conn.add_listener(self._channel, self._on_notify)
        self._conn.add_termination_listener(self._on_terminated)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        for item_id in payload.split(","):
            for subscription in self._subscribers.get(item_id, ()):
                subscription.wake()

    def _on_terminated(self, _conn: Any) -> None:
        if self._closed:
            return
        self._log.warning("listener.lost")
        self._wake_all()
        self._reconnect = asyncio.get_running_loop().create_task(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        old, self._conn = self._conn, None
        with contextlib.suppress(Exception):
            await self._pool.release(old)
        delay = 0.1
        while not self._closed:
            try:
                await self.start()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self._log.info("listener.restored")
            self._wake_all()
            return

    def _wake_all(self) -> None:
        for subscriptions in self._subscribers.values():
            for subscription in subscriptions:
                subscription.wake()

    @asynccontextmanager
    async def subscribe(self, ids: Sequence[str]) -> AsyncIterator[_Subscription]:
        subscription = _Subscription(self)
        for item_id in ids:
            self._subscribers.setdefault(item_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            for item_id in ids:
                remaining = self._subscribers.get(item_id)
                if remaining is not None:
                    remaining.discard(subscription)
                    if not remaining:
                        del self._subscribers[item_id]

    def drain(self) -> None:
        """Shutting down: every subscriber wakes and sees `draining`."""
        self.draining = True
        self._wake_all()

    async def close(self) -> None:
        self._closed = True
        self.drain()
        if self._reconnect is not None:
            self._reconnect.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await conn.remove_listener(self._channel, self._on_notify)
            await self._pool.release(conn)
