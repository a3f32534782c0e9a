"""Background loops: the one shape every service's background work takes.

A loop runs one round after another until its owner stops it: at once after a round that reports it
found work (a truthy result), otherwise after its interval or as soon as its wake event is set. A
round that fails is logged and counted, and the loop carries on after a pause. Stopping sets one
stop event: rounds in flight may finish within a grace period, then whatever is left is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from proofline_kit.logging import get_logger


@dataclass(frozen=True, slots=True)
class Loop:
    name: str
    round: Callable[[], Awaitable[object]]
    interval_s: float
    # Set by whoever has work for the loop: the next round starts without waiting out the interval.
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # Pause after a failed round; None = the interval.
    error_pause_s: float | None = None
    # Wait this long before the first round (a probe that just passed at start need not run again).
    first_round_after_s: float = 0.0


class BackgroundLoops:
    """The loops of one component; `on_failure(name)` is told of every failed round (a metric)."""

    def __init__(self, log_name: str, on_failure: Callable[[str], None] | None = None) -> None:
        self._loops: list[Loop] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False
        self._stopping = asyncio.Event()
        self._on_failure = on_failure
        self._log = get_logger(log_name)

    def add(self, loop: Loop) -> None:
        """Adds a loop; it starts at once if the loops are already running."""
        self._loops.append(loop)
        if self._running:
            self._tasks.append(asyncio.create_task(self._run(loop), name=loop.name))

    def start(self) -> None:
        self._running = True
        self._tasks = [asyncio.create_task(self._run(loop), name=loop.name) for loop in self._loops]

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def stop(self, grace_s: float = 5.0) -> None:
        """Lets the rounds in flight finish (up to `grace_s`), then cancels the rest."""
        self._stopping.set()
        self._running = False
        for loop in self._loops:
            loop.wake.set()
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(self._tasks, timeout=grace_s)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _run(self, loop: Loop) -> None:
        if loop.first_round_after_s:
            await self._pause(loop, loop.first_round_after_s)
        while not self._stopping.is_set():
            # Cleared before the round, so a wake-up that arrives during it starts the next one.
            loop.wake.clear()
            try:
                busy = await loop.round()
            except Exception:
                if _being_cancelled():
                    raise asyncio.CancelledError from None
                if self._on_failure is not None:
                    self._on_failure(loop.name)
                self._log.exception("loop.round_failed", loop=loop.name)
                await self._pause(loop, loop.interval_s if loop.error_pause_s is None else loop.error_pause_s)
                continue
            if not busy:
                await self._pause(loop, loop.interval_s)

    async def _pause(self, loop: Loop, seconds: float) -> None:
        if self._stopping.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(loop.wake.wait(), seconds)


def _being_cancelled() -> bool:
    """A cancel that lands inside a driver call can surface as another exception (a failed
    rollback); the loop must end then, not log it and carry on."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
