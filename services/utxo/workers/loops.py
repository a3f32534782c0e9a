"""The utxo service's background loops: the expired-lease reaper, the leased maintenance pass on an
interval (woken early when a conflict is reported, so DIRTY outpoints get their chain check soon)
and the refresh of the pool's gauges."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from proofline_kit.errors import DomainError
from proofline_kit.logging import get_logger
from proofline_kit.loops import Loop
from services.utxo.domain.maintenance import PoolMaintenance
from services.utxo.domain.pool import UtxoPool
from services.utxo.workers.metrics import PoolMetrics


def reaper_loop(pool: UtxoPool, interval: timedelta) -> Loop:
    """Reaping needs no maintenance lease: every replica may run it (claims use SKIP LOCKED); the
    lease path also reaps lazily, so a failed round costs nothing."""

    async def reap() -> None:
        await pool.reap_expired()

    return Loop("reap", reap, interval.total_seconds())


def maintenance_loop(maintenance: PoolMaintenance, interval: timedelta, wake: asyncio.Event) -> Loop:
    """One PASS per interval on whichever replica holds the maintenance lease."""
    log = get_logger("utxo.maintenance_loop")

    async def run_pass() -> None:
        try:
            results = await maintenance.background_pass()
        except DomainError as error:
            log.warning("maintenance.pass_failed", reason=error.reason, message=error.message)
            return
        if results is not None:
            log.info("maintenance.pass", results=[f"{r.action.value}:{r.outcome.value}" for r in results])

    return Loop("maintenance", run_pass, interval.total_seconds(), wake=wake)


def metrics_loop(pool: UtxoPool, metrics: PoolMetrics, interval: timedelta) -> Loop:
    """A failed refresh keeps the last figures; the next one retries."""

    async def refresh() -> None:
        metrics.update(await pool.snapshot())

    return Loop("metrics", refresh, interval.total_seconds())
