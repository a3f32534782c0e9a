"""Composition root of the publisher: builds everything and owns its lifetime."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter
from proofline.publisher.v1 import publisher_pb2, publisher_pb2_grpc

from proofline_kit.auth import TokenDirectory
from proofline_kit.cache import create_redis
from proofline_kit.database import apply_migrations_async, create_pool
from proofline_kit.idempotency import expire_answers
from proofline_kit.logging import configure_logging, get_logger
from proofline_kit.rpc.health_watch import watch_dependency
from proofline_kit.rpc.server import GrpcServer, MetricsEndpoint, ServerOptions, ServiceBinding
from services.publisher.adapters.redis_cache import RedisNonceCache, RedisRateLimiter
from services.publisher.domain import signatures
from services.publisher.domain.publisher import Publisher
from services.publisher.rpc.mappers import ERROR_DOMAIN
from services.publisher.rpc.servicer import PublisherServicer
from services.publisher.settings import PublisherSettings
from services.publisher.store import MIGRATIONS, JobChangeHub, PublisherStore
from services.publisher.workers.runtime import PipelineRuntime, start_pipeline

SERVICE_NAME = publisher_pb2.DESCRIPTOR.services_by_name["PublisherService"].full_name


@dataclass
class RunningPublisher:
    port: int
    publisher: Publisher
    store: PublisherStore
    registry: CollectorRegistry
    stop: Callable[[], Awaitable[None]]
    # None when PUBLISHER_WORKERS=0 (intake only).
    pipeline: PipelineRuntime | None = None


def _intake_counter(registry: CollectorRegistry) -> Callable[[str, str], None]:
    intents = Counter(
        "publisher_intents_total",
        "Signed intents by outcome (accepted, deduplicated, refused) and refusal reason.",
        ["outcome", "reason"],
        registry=registry,
    )

    def observe(outcome: str, reason: str) -> None:
        intents.labels(outcome, reason).inc()

    return observe


async def start_publisher(settings: PublisherSettings, *, configure_logs: bool = True) -> RunningPublisher:
    service = settings.service
    if configure_logs:
        configure_logging(service.service_name, service.log_level)
    log = get_logger("publisher.app")
    signatures.require_native()
    applied = await apply_migrations_async(service.database_url, service.database_schema, [MIGRATIONS])
    pool = await create_pool(service.database_url, service.database_schema, service.database_pool_size)
    redis = create_redis(service.redis_url)
    store = PublisherStore(pool)
    changes = JobChangeHub(pool, service.database_schema)
    await changes.start()
    registry = CollectorRegistry()
    pipeline: PipelineRuntime | None = None
    if settings.workers.workers:
        pipeline = await start_pipeline(settings.workers, store, registry)
    publisher = Publisher(
        store,
        changes,
        RedisNonceCache(redis, service.redis_key_prefix, settings.nonce_cache_ttl_s),
        RedisRateLimiter(redis, service.redis_key_prefix, settings.rate_limit_per_key)
        if settings.rate_limit_per_key
        else None,
        settings.policy,
        settings.limits,
        observe=_intake_counter(registry),
        on_queued=pipeline.wake if pipeline is not None else None,
    )
    server = GrpcServer(
        ServerOptions.for_service(service, ERROR_DOMAIN),
        [
            ServiceBinding(
                SERVICE_NAME, PublisherServicer(publisher), publisher_pb2_grpc.add_PublisherServiceServicer_to_server
            )
        ],
        TokenDirectory.parse(service.auth_tokens),
        registry,
    )
    port = await server.start()
    metrics = MetricsEndpoint(service.grpc_host, service.metrics_port, registry)
    metrics.start()
    tasks = [
        asyncio.create_task(watch_dependency(server.health, [SERVICE_NAME], store.ping)),
        asyncio.create_task(expire_answers(pool, service.idempotency_retention_ms)),
    ]
    log.info("publisher.started", port=port, metrics_port=service.metrics_port, migrations_applied=applied)

    async def stop() -> None:
        # Watchers and waiters end first (UNAVAILABLE / current state), so draining does not wait
        # for streams that would otherwise run until the grace period.
        changes.drain()
        if pipeline is not None:
            await pipeline.stop(service.shutdown_grace_ms / 1000)
        await server.stop()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        metrics.stop()
        await changes.close()
        await redis.aclose()
        await pool.close()
        log.info("publisher.stopped")

    return RunningPublisher(port, publisher, store, registry, stop, pipeline)
