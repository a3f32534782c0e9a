"""The process plumbing every service shares, so that a service's `app.py` is its composition root
and nothing else: logging, the database (migrations first), Redis, then the gRPC server with health,
reflection, auth and metrics, the kit's background loops (health watch, answer expiry), and on stop
the drain in the reverse order.

    runtime = await ServiceRuntime.open(settings.service, MIGRATIONS, redis=True)
    store = Store(runtime.db)                      # ... the service's own wiring ...
    runtime.on_stop(client.aclose)                 # closed after the server stopped, LIFO
    port = await runtime.serve(ERROR_DOMAIN, [binding], ready=store.ping)
    ...
    await runtime.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import asyncpg
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from proofline_kit.auth import SessionVerifier, TokenDirectory
from proofline_kit.cache import create_redis
from proofline_kit.database import apply_migrations_async, create_pool
from proofline_kit.idempotency import expire_answers, expiry_interval_s
from proofline_kit.logging import configure_logging, get_logger
from proofline_kit.loops import BackgroundLoops, Loop
from proofline_kit.rpc.health_watch import DependencyWatch
from proofline_kit.rpc.server import GrpcServer, MetricsEndpoint, ServerOptions, ServiceBinding, run_until_signalled
from proofline_kit.settings import ServiceSettings, SettingsError

# How often the server's health follows its database.
HEALTH_CHECK_INTERVAL_S = 5.0

Closer = Callable[[], Awaitable[object] | object]
S = TypeVar("S")


class ServiceRuntime:
    """What every service process holds, opened in order and closed in reverse."""

    def __init__(
        self,
        settings: ServiceSettings,
        db: asyncpg.Pool,
        redis: aioredis.Redis | None,
        migrations_applied: int,
        stack: contextlib.AsyncExitStack,
    ) -> None:
        self.settings = settings
        self.db = db
        self._redis = redis
        self.migrations_applied = migrations_applied
        self.registry = CollectorRegistry()
        self.loops = BackgroundLoops(f"{settings.service_name}.loops")
        self.server: GrpcServer | None = None
        self._stack = stack
        self._drains: list[Closer] = []
        self._log = get_logger(f"{settings.service_name}.runtime")

    @classmethod
    async def open(
        cls,
        settings: ServiceSettings,
        migrations: Path,
        *,
        redis: bool = False,
        configure_logs: bool = True,
    ) -> ServiceRuntime:
        if configure_logs:
            configure_logging(settings.service_name, settings.log_level)
        applied = await apply_migrations_async(settings.database_url, settings.database_schema, [migrations])
        stack = contextlib.AsyncExitStack()
        db = await create_pool(settings.database_url, settings.database_schema, settings.database_pool_size)
        stack.push_async_callback(db.close)
        client = create_redis(settings.redis_url) if redis else None
        if client is not None:
            stack.push_async_callback(client.aclose)
        return cls(settings, db, client, applied, stack)

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("this runtime was opened without Redis")
        return self._redis

    def on_stop(self, close: Closer) -> None:
        """`close` runs after the server stopped, the last one registered first."""
        self._stack.push_async_callback(_call, close)

    def on_drain(self, drain: Closer) -> None:
        """`drain` runs before the server stops, in the order registered (e.g. end watchers, let
        background batches finish)."""
        self._drains.append(drain)

    async def serve(
        self,
        error_domain: str,
        bindings: Sequence[ServiceBinding],
        *,
        ready: Callable[[], Awaitable[None]],
        session_verifier: SessionVerifier | None = None,
    ) -> int:
        """Starts the gRPC server (health, reflection, auth, metrics), the metrics endpoint and the
        kit's loops: health follows `ready` (NOT_SERVING while it fails), answers to `request_id`s
        expire after the retention. `session_verifier` accepts the service's own bearer tokens
        (proofline_kit.auth). Returns the bound port."""
        settings = self.settings
        self.server = GrpcServer(
            ServerOptions.for_service(settings, error_domain),
            bindings,
            TokenDirectory.parse(settings.auth_tokens),
            self.registry,
            session_verifier,
        )
        port = await self.server.start()
        metrics = MetricsEndpoint(settings.grpc_host, settings.metrics_port, self.registry)
        metrics.start()
        self.on_stop(metrics.stop)
        watch = DependencyWatch(self.server.health, [b.full_name for b in bindings], ready)
        self.loops.add(
            Loop(
                "health",
                watch.check_dependency,
                HEALTH_CHECK_INTERVAL_S,
                first_round_after_s=HEALTH_CHECK_INTERVAL_S,
            )
        )
        retention_ms = settings.idempotency_retention_ms
        if retention_ms > 0:
            interval_s = expiry_interval_s(retention_ms)

            async def expire() -> int:
                return await expire_answers(self.db, retention_ms)

            self.loops.add(Loop("idempotency-expiry", expire, interval_s, first_round_after_s=interval_s))
        self.loops.start()
        return port

    async def stop(self) -> None:
        for drain in self._drains:
            await _call(drain)
        if self.server is not None:
            await self.server.stop()
        await self.loops.stop(grace_s=0)
        await self._stack.aclose()
        self._log.info("service.stopped", service=self.settings.service_name)


async def _call(close: Closer) -> None:
    result = close()
    if inspect.isawaitable(result):
        await result


def run_service(
    name: str,
    read_settings: Callable[[], S],
    start: Callable[[S], Awaitable[Callable[[], Awaitable[None]]]],
) -> int:
    """The body of a service's `python -m`: read the settings (exit 2 naming the bad variable), start,
    run until SIGTERM/SIGINT, stop."""
    try:
        settings = read_settings()
    except SettingsError as exc:
        print(f"{name}: configuration error: {exc}", file=sys.stderr)
        return 2
    asyncio.run(run_until_signalled(lambda: start(settings)))
    return 0
