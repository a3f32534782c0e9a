"""Background maintenance: the expired-lease reaper, and the leased maintenance pass on an interval
(woken early when a conflict is reported, so DIRTY outpoints get their chain check soon)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from proofline_kit.errors import DomainError
from proofline_kit.logging import get_logger
from services.utxo.domain.maintenance import PoolMaintenance
from services.utxo.domain.pool import UtxoPool
from services.utxo.workers import being_cancelled, pause


async def reap_forever(pool: UtxoPool, interval: timedelta) -> None:
    """Reaping needs no maintenance lease: every replica may run it (claims use SKIP LOCKED)."""
    log = get_logger("utxo.reaper")
    while True:
        try:
            await pool.reap_expired()
        except Exception as exc:  # the next round retries; the lease path also reaps lazily
            if being_cancelled():
                raise
            log.warning("reap.failed", error=type(exc).__name__)
        await pause(interval.total_seconds())


async def maintain_forever(maintenance: PoolMaintenance, interval: timedelta, wake: asyncio.Event) -> None:
    """One PASS per interval on whichever replica holds the maintenance lease."""
    log = get_logger("utxo.maintenance_loop")
    while True:
        try:
            results = await maintenance.background_pass()
            if results is not None:
                log.info("maintenance.pass", results=[f"{r.action.value}:{r.outcome.value}" for r in results])
        except DomainError as error:
            log.warning("maintenance.pass_failed", reason=error.reason, message=error.message)
        except Exception:  # a bug must not stop maintenance for good
            if being_cancelled():
                raise
            log.exception("maintenance.pass_crashed")
        if being_cancelled():
            raise asyncio.CancelledError
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), interval.total_seconds())
        wake.clear()
