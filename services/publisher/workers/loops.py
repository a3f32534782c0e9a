"""The background tasks of one publisher process: N publishing workers, the confirmation poller and
the reorg checker. Safe with several replicas: every job a task works on is claimed in PostgreSQL
(FOR UPDATE SKIP LOCKED, a lease with a fencing token); a replica that dies leaves leases that
expire, and any worker of any replica takes the jobs over."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from proofline_kit.loops import BackgroundLoops, Loop
from proofline_kit.rpc.interceptors import current_request_id
from services.publisher.domain.confirmations import ConfirmationFollower
from services.publisher.domain.models import Actor
from services.publisher.domain.pipeline import PublishPipeline
from services.publisher.workers.metrics import PipelineMetrics

T = TypeVar("T")


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


class PipelineLoops:
    """N publishing loops, the confirmation poller and the reorg checker, on the kit's loop shape."""

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
        self.identity = identity or worker_identity()
        # One wake-up for every publishing loop of this process.
        self._wake = asyncio.Event()
        self._loops = BackgroundLoops("publisher.workers", lambda name: metrics.loop_errors.labels(name).inc())
        for index in range(config.workers):
            self._loops.add(
                Loop(
                    "publish",
                    _PublishRound(pipeline, f"{self.identity}/w{index}", config.stuck_check_s).run,
                    config.idle_poll_s,
                    wake=self._wake,
                    error_pause_s=config.error_pause_s,
                )
            )
        self._loops.add(Loop("confirm", self._confirm, config.confirm_tick_s))
        self._loops.add(Loop("reorg", self._reorgs, config.reorg_check_s))

    def start(self) -> None:
        self._loops.start()

    def wake(self) -> None:
        """New QUEUED jobs in this process: idle workers look now instead of at their next poll."""
        self._wake.set()

    async def stop(self, grace_s: float = 5.0) -> None:
        """Lets the batches in flight finish (up to `grace_s`), then cancels. A batch cut short
        leaves leased jobs that are taken over once their lease expires."""
        await self._loops.stop(grace_s)

    async def _confirm(self) -> None:
        # One page per tick, however many are due: polling is the backup of callbacks and must never
        # crowd out publishing (a page is one bulk lookup plus ARC lookups for mined/unknown ones).
        request_id = _new_id("c")
        await _with_request_id(self._follower.poll_sent(Actor(f"{self.identity}/confirm", request_id)), request_id)

    async def _reorgs(self) -> None:
        await self._follower.check_reorgs(Actor(f"{self.identity}/reorg", _new_id("g")))


class _PublishRound:
    """One publishing loop's round: resume what this owner signed, then publish a batch of queued
    jobs (taking over stuck ones every `stuck_check_s`). Returns how many jobs it handled."""

    def __init__(self, pipeline: PublishPipeline, owner: str, stuck_check_s: float) -> None:
        self._pipeline = pipeline
        self._owner = owner
        self._stuck_check_s = stuck_check_s
        self._next_stuck = 0.0

    async def run(self) -> int:
        take_stuck = time.monotonic() >= self._next_stuck
        if take_stuck:
            self._next_stuck = time.monotonic() + self._stuck_check_s
        handled = await _with_request_id(self._pipeline.resume_signed(self._owner, _new_id("r")), "r")
        batch_id = _new_id("b")
        return handled + await _with_request_id(
            self._pipeline.publish_queued(self._owner, batch_id, take_stuck=take_stuck), batch_id
        )


async def _with_request_id(work: Awaitable[T], request_id: str) -> T:
    # The batch id travels as x-request-id on the calls to the pool and the signer.
    token = current_request_id.set(request_id)
    try:
        return await work
    finally:
        current_request_id.reset(token)
