"""The background tasks of one publisher process: N publishing workers, the confirmation poller and
the reorg checker. Safe with several replicas: every job a task works on is claimed in PostgreSQL
(FOR UPDATE SKIP LOCKED, a lease with a fencing token); a replica that dies leaves leases that
expire, and any worker of any replica takes the jobs over."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from proofline_kit.logging import get_logger
from proofline_kit.rpc.interceptors import current_request_id
from services.publisher.domain.confirmations import ConfirmationFollower
from services.publisher.domain.models import Actor
from services.publisher.domain.pipeline import PublishPipeline
from services.publisher.workers.metrics import PipelineMetrics


@dataclass(frozen=True, slots=True)
class LoopConfig:
    workers: int
    idle_poll_s: float
    stuck_check_s: float
    confirm_tick_s: float
    reorg_check_s: float
    error_pause_s: float = 1.0


def worker_identity() -> str:
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:4]}"


def _new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:20]}"


class BackgroundWorkers:
    def __init__(
        self,
        pipeline: PublishPipeline,
        follower: ConfirmationFollower,
        config: LoopConfig,
        metrics: PipelineMetrics,
        identity: str | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._follower = follower
        self._config = config
        self._metrics = metrics
        self.identity = identity or worker_identity()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._log = get_logger("publisher.workers")

    def start(self) -> None:
        for index in range(self._config.workers):
            self._tasks.append(asyncio.create_task(self._publish_loop(f"{self.identity}/w{index}")))
        self._tasks.append(asyncio.create_task(self._every("confirm", self._config.confirm_tick_s, self._confirm)))
        self._tasks.append(asyncio.create_task(self._every("reorg", self._config.reorg_check_s, self._reorgs)))

    def wake(self) -> None:
        """New QUEUED jobs in this process: idle workers look now instead of at their next poll."""
        self._wake.set()

    async def stop(self, grace_s: float = 5.0) -> None:
        """Lets the batches in flight finish (up to `grace_s`), then cancels. A batch cut short
        leaves leased jobs that are taken over once their lease expires."""
        self._stopping.set()
        self._wake.set()
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._tasks.clear()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _publish_loop(self, owner: str) -> None:
        next_stuck = 0.0
        while not self._stopping.is_set():
            handled = 0
            try:
                take_stuck = time.monotonic() >= next_stuck
                if take_stuck:
                    next_stuck = time.monotonic() + self._config.stuck_check_s
                handled += await self._run(self._pipeline.resume_signed(owner, _new_id("r")), "r")
                batch_id = _new_id("b")
                handled += await self._run(
                    self._pipeline.publish_queued(owner, batch_id, take_stuck=take_stuck), batch_id
                )
            except Exception:
                self._metrics.loop_errors.labels("publish").inc()
                self._log.exception("worker.error", owner=owner)
                await self._pause(self._config.error_pause_s)
                continue
            if handled == 0 and not self._stopping.is_set():
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._config.idle_poll_s)

    @staticmethod
    async def _run(work: Awaitable[int], request_id: str) -> int:
        # The batch id travels as x-request-id on the calls to the pool and the signer.
        token = current_request_id.set(request_id)
        try:
            return await work
        finally:
            current_request_id.reset(token)

    async def _every(self, name: str, interval_s: float, step: Callable[[], Awaitable[int]]) -> None:
        while not self._stopping.is_set():
            try:
                busy = await step()
            except Exception:
                self._metrics.loop_errors.labels(name).inc()
                self._log.exception("worker.error", loop=name)
                busy = 0
            if not busy:
                await self._pause(interval_s)

    async def _confirm(self) -> int:
        # One page per tick, however many are due: polling is the backup of callbacks and must never
        # crowd out publishing (a page is one bulk lookup plus ARC lookups for mined/unknown ones).
        request_id = _new_id("c")
        await self._run(self._follower.poll_sent(Actor(f"{self.identity}/confirm", request_id)), request_id)
        return 0

    async def _reorgs(self) -> int:
        await self._follower.check_reorgs(Actor(f"{self.identity}/reorg", _new_id("g")))
        return 0
