"""Composition root of the publisher: builds everything and owns its lifetime."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter
from proofline.publisher.v1 import publisher_pb2, publisher_pb2_grpc

from proofline_kit.intents import signatures
from proofline_kit.logging import get_logger
from proofline_kit.rpc.server import ServiceBinding
from proofline_kit.runtime import ServiceRuntime
from services.publisher.adapters.redis_cache import RedisNonceCache, RedisRateLimiter
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
    signatures.require_native()
    runtime = await ServiceRuntime.open(service, MIGRATIONS, redis=True, configure_logs=configure_logs)
    store = PublisherStore(runtime.db)
    changes = JobChangeHub(runtime.db, service.database_schema)
    await changes.start()
    runtime.on_stop(changes.close)
    # Watchers and waiters end first (UNAVAILABLE / current state), so draining does not wait for
    # streams that would otherwise run until the grace period; then the batches in flight finish.
    runtime.on_drain(changes.drain)
    pipeline: PipelineRuntime | None = None
    if settings.workers.workers:
        pipeline = await start_pipeline(settings.workers, store, runtime.registry)
        runtime.on_drain(functools.partial(pipeline.stop, service.shutdown_grace_ms / 1000))
    redis = runtime.redis
    publisher = Publisher(
        store,
        changes,
        RedisNonceCache(redis, service.redis_key_prefix, settings.nonce_cache_ttl_s),
        RedisRateLimiter(redis, service.redis_key_prefix, settings.rate_limit_per_key)
        if settings.rate_limit_per_key
        else None,
        settings.policy,
        settings.limits,
        observe=_intake_counter(runtime.registry),
        on_queued=pipeline.wake if pipeline is not None else None,
    )
    port = await runtime.serve(
        ERROR_DOMAIN,
        [
            ServiceBinding(
                SERVICE_NAME, PublisherServicer(publisher), publisher_pb2_grpc.add_PublisherServiceServicer_to_server
            )
        ],
        ready=store.ping,
    )
    get_logger("publisher.app").info(
        "publisher.started", port=port, metrics_port=service.metrics_port, migrations_applied=runtime.migrations_applied
    )
    return RunningPublisher(port, publisher, store, runtime.registry, runtime.stop, pipeline)
