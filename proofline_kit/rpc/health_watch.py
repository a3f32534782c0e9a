"""Flips a service's health to NOT_SERVING while a dependency it cannot work without is down."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from grpc_health.v1 import health, health_pb2

from proofline_kit.logging import get_logger


class DependencyWatch:
    """`check_dependency` is one round of the service's health loop: probe, and flip the health of
    every served name when the answer changed."""

    def __init__(
        self,
        servicer: health.aio.HealthServicer,
        service_names: Sequence[str],
        check: Callable[[], Awaitable[None]],
        timeout_s: float = 2.0,
    ) -> None:
        self._servicer = servicer
        self._names = ["", *service_names]
        self._check = check
        self._timeout_s = timeout_s
        self._serving = True
        self._log = get_logger("health")

    async def check_dependency(self) -> None:
        try:
            await asyncio.wait_for(self._check(), self._timeout_s)
            healthy = True
        except Exception as exc:  # any failure of the probe means "not serving"
            healthy = False
            if self._serving:
                self._log.warning("dependency.down", error=type(exc).__name__)
        if healthy != self._serving:
            status = health_pb2.HealthCheckResponse.SERVING if healthy else health_pb2.HealthCheckResponse.NOT_SERVING
            for name in self._names:
                await self._servicer.set(name, status)
            self._serving = healthy
