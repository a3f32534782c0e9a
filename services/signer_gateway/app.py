"""Composition root of the signing gateway: builds everything and owns its lifetime."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from prometheus_client import CollectorRegistry
from proofline.signer.v1 import signer_pb2, signer_pb2_grpc

from proofline_kit.auth import TokenDirectory
from proofline_kit.database import apply_migrations_async, create_pool
from proofline_kit.idempotency import expire_answers
from proofline_kit.logging import configure_logging, get_logger
from proofline_kit.rpc.health_watch import watch_dependency
from proofline_kit.rpc.server import GrpcServer, MetricsEndpoint, ServerOptions, ServiceBinding
from services.signer_gateway.backends.external_kms import HttpKmsBackend
from services.signer_gateway.backends.local_keystore import LocalKeystoreBackend
from services.signer_gateway.domain import ecdsa
from services.signer_gateway.domain.crypto_pool import CryptoPool
from services.signer_gateway.domain.gateway import SignerGateway
from services.signer_gateway.rpc.mappers import ERROR_DOMAIN
from services.signer_gateway.rpc.servicer import SignerServicer
from services.signer_gateway.settings import SignerSettings
from services.signer_gateway.store.signer_store import MIGRATIONS, SignerStore

SERVICE_NAME = signer_pb2.DESCRIPTOR.services_by_name["SignerService"].full_name


@dataclass
class RunningSigner:
    port: int
    gateway: SignerGateway
    stop: Callable[[], Awaitable[None]]


async def start_signer(settings: SignerSettings, *, configure_logs: bool = True) -> RunningSigner:
    service = settings.service
    if configure_logs:
        configure_logging(service.service_name, service.log_level)
    log = get_logger("signer.app")
    ecdsa.require_native()
    applied = await apply_migrations_async(service.database_url, service.database_schema, [MIGRATIONS])
    pool = await create_pool(service.database_url, service.database_schema, service.database_pool_size)
    http = httpx.AsyncClient(limits=httpx.Limits(max_connections=32, max_keepalive_connections=16))
    external = (
        HttpKmsBackend(
            http,
            settings.kms_sign_url,
            settings.kms_api_key,
            max_attempts=settings.kms_max_attempts,
            request_timeout_s=settings.kms_timeout_ms / 1000,
        )
        if settings.kms_sign_url
        else None
    )
    store = SignerStore(pool)
    crypto = CryptoPool(settings.crypto_workers)
    gateway = SignerGateway(
        store,
        settings.acl,
        LocalKeystoreBackend(settings.keyring, crypto),
        external,
        settings.default_backend,
        crypto,
    )
    resealed = await gateway.reseal_old_keys()
    registry = CollectorRegistry()
    server = GrpcServer(
        ServerOptions.for_service(service, ERROR_DOMAIN),
        [
            ServiceBinding(
                SERVICE_NAME,
                SignerServicer(gateway, settings.network, settings.default_deadline_ms / 1000),
                signer_pb2_grpc.add_SignerServiceServicer_to_server,
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
    log.info(
        "signer.started",
        port=port,
        metrics_port=service.metrics_port,
        migrations_applied=applied,
        keys_resealed=resealed,
        backend=settings.default_backend.value,
    )

    async def stop() -> None:
        await server.stop()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        metrics.stop()
        await http.aclose()
        await pool.close()
        crypto.close()
        log.info("signer.stopped")

    return RunningSigner(port, gateway, stop)
