"""Flips a service's health to NOT_SERVING while a dependency it cannot work without is down."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from grpc_health.v1 import health, health_pb2

from proofline_kit.logging import get_logger


async def watch_dependency(
    servicer: health.aio.HealthServicer,
    service_names: Sequence[str],
    check: Callable[[], Awaitable[None]],
    interval_s: float = 5.0,
    timeout_s: float = 2.0,
) -> None:
    log = get_logger("health")
    serving = True
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.wait_for(check(), timeout_s)
            healthy = True
        except Exception as exc:  # any failure of the probe means "not serving"
            healthy = False
            if serving:
                log.warning("dependency.down", error=type(exc).__name__)
        if healthy != serving:
            status = health_pb2.HealthCheckResponse.SERVING if healthy else health_pb2.HealthCheckResponse.NOT_SERVING
            for name in ["", *service_names]:
                await servicer.set(name, status)
            serving = healthy
