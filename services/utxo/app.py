"""Composition root of the utxo service: builds everything and owns its lifetime."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
import httpx
from prometheus_client import CollectorRegistry
from proofline.common.v1 import common_pb2
from proofline.utxo.v1 import utxo_pb2, utxo_pb2_grpc

from proofline_kit.auth import TokenDirectory
from proofline_kit.cache import create_redis
from proofline_kit.chain import ArcClient, ArcConfig, Broadcaster, FeeRateCache, WocClient, WocConfig
from proofline_kit.database import apply_migrations_async, create_pool
from proofline_kit.idempotency import expire_answers
from proofline_kit.logging import configure_logging, get_logger
from proofline_kit.rpc.health_watch import watch_dependency
from proofline_kit.rpc.server import GrpcServer, MetricsEndpoint, ServerOptions, ServiceBinding
from services.utxo.adapters.chain import ChainAdapter, PolicyFeeRate
from services.utxo.adapters.redis_locks import MaintenanceHolder, RedisLocks
from services.utxo.adapters.signer_client import SignerClient
from services.utxo.domain.maintenance import (
    MAINTENANCE_LOCK,
    MaintenanceConfig,
    PoolChainComparer,
    PoolMaintenance,
)
from services.utxo.domain.pool import UtxoPool
from services.utxo.rpc.admin_servicer import UtxoAdminServicer
from services.utxo.rpc.servicer import UtxoServicer
from services.utxo.settings import Network, UtxoSettings
from services.utxo.store.utxo_store import MIGRATIONS, UtxoStore
from services.utxo.workers.maintenance_loop import maintain_forever, reap_forever
from services.utxo.workers.metrics import PoolMetrics, refresh_metrics

SERVICE_NAME = utxo_pb2.DESCRIPTOR.services_by_name["UtxoService"].full_name
ADMIN_SERVICE_NAME = utxo_pb2.DESCRIPTOR.services_by_name["UtxoAdminService"].full_name
_NETWORKS = {
    Network.MAINNET: common_pb2.NETWORK_MAINNET,
    Network.TESTNET: common_pb2.NETWORK_TESTNET,
    Network.REGTEST: common_pb2.NETWORK_REGTEST,
}


@dataclass
class RunningUtxo:
    port: int
    pool: UtxoPool
    maintenance: PoolMaintenance
    metrics_registry: CollectorRegistry
    stop: Callable[[], Awaitable[None]]


async def start_utxo(settings: UtxoSettings, *, configure_logs: bool = True) -> RunningUtxo:
    service = settings.service
    if configure_logs:
        configure_logging(service.service_name, service.log_level)
    log = get_logger("utxo.app")
    applied = await apply_migrations_async(service.database_url, service.database_schema, [MIGRATIONS])
    db = await create_pool(service.database_url, service.database_schema, service.database_pool_size)
    store = UtxoStore(db)
    redis = create_redis(service.redis_url)
    http = httpx.AsyncClient(limits=httpx.Limits(max_connections=32, max_keepalive_connections=16), trust_env=False)
    chain = settings.chain
    woc = (
        WocClient(
            http,
            WocConfig(
                chain.woc_url,
                network=chain.woc_network,
                api_key=chain.woc_api_key,
                attempt_timeout_s=chain.timeout_s,
                default_budget_s=2 * chain.timeout_s,
            ),
        )
        if chain.woc_url
        else None
    )
    arc = (
        ArcClient(
            http,
            ArcConfig(
                chain.arc_url,
                api_key=chain.arc_api_key,
                attempt_timeout_s=chain.timeout_s,
                default_budget_s=2 * chain.timeout_s,
            ),
        )
        if chain.arc_url
        else None
    )
    providers = [p for p in (arc, woc) if p is not None]
    chain_adapter = ChainAdapter(woc, Broadcaster(providers)) if woc is not None else None
    fee_rates = PolicyFeeRate(
        FeeRateCache(arc) if arc is not None else None,
        settings.fee_rate_satoshis_per_kb,
        settings.fallback_fee_rate_satoshis_per_kb,
    )
    signer_channel = grpc.aio.insecure_channel(settings.signer_target)
    signer = SignerClient(signer_channel, settings.signer_token, _NETWORKS[settings.network], settings.signer_timeout_s)
    locks = RedisLocks(
        redis, service.redis_key_prefix, f"{socket.gethostname()}/{os.getpid()}/{os.urandom(2).hex()}", store.next_fence
    )
    config = MaintenanceConfig(
        mainnet=settings.network is Network.MAINNET,
        min_confirmations=settings.min_confirmations,
        funding_key_id=settings.funding_key_id,
        change_key_id=settings.change_key_id,
        change_address=settings.change_address,
        split=settings.split,
        fee_buffer_satoshis=settings.fee_buffer_satoshis,
        sweep_max_inputs=settings.sweep_max_inputs,
        sweep_lock=settings.sweep_lock,
        broadcast_attempts=settings.broadcast_attempts,
        broadcast_retry_pause_s=settings.broadcast_retry_pause_s,
        invalid_after=settings.invalid_after,
        retention=settings.retention,
    )
    wake = asyncio.Event()

    async def wake_maintenance() -> None:
        wake.set()

    pool = UtxoPool(
        store,
        settings.pool,
        fee_rates,
        MaintenanceHolder(locks, MAINTENANCE_LOCK),
        chain=PoolChainComparer(store, config, signer, chain_adapter),
        on_dirty=wake_maintenance,
    )
    registry = CollectorRegistry()
    metrics = PoolMetrics(registry)
    maintenance = PoolMaintenance(
        store, pool, config, signer, signer, chain_adapter, chain_adapter, locks, fee_rates, metrics.pruned
    )
    server = GrpcServer(
        ServerOptions.for_service(service, "proofline.utxo"),
        [
            ServiceBinding(SERVICE_NAME, UtxoServicer(pool), utxo_pb2_grpc.add_UtxoServiceServicer_to_server),
            ServiceBinding(
                ADMIN_SERVICE_NAME,
                UtxoAdminServicer(maintenance),
                utxo_pb2_grpc.add_UtxoAdminServiceServicer_to_server,
            ),
        ],
        TokenDirectory.parse(service.auth_tokens),
        registry,
    )
    port = await server.start()
    metrics_endpoint = MetricsEndpoint(service.grpc_host, service.metrics_port, registry)
    metrics_endpoint.start()
    tasks = [
        asyncio.create_task(watch_dependency(server.health, [SERVICE_NAME, ADMIN_SERVICE_NAME], store.ping)),
        asyncio.create_task(refresh_metrics(pool, metrics, settings.metrics_refresh)),
        asyncio.create_task(expire_answers(db, service.idempotency_retention_ms)),
    ]
    if settings.maintenance_enabled:
        tasks.append(asyncio.create_task(reap_forever(pool, settings.reap_interval)))
        tasks.append(asyncio.create_task(maintain_forever(maintenance, settings.maintenance_interval, wake)))
    log.info(
        "utxo.started",
        port=port,
        metrics_port=service.metrics_port,
        migrations_applied=applied,
        chain=bool(chain_adapter),
        maintenance=settings.maintenance_enabled,
    )

    async def stop() -> None:
        await server.stop()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        metrics_endpoint.stop()
        await signer_channel.close()
        await http.aclose()
        await redis.aclose()
        await db.close()
        log.info("utxo.stopped")

    return RunningUtxo(port, pool, maintenance, registry, stop)
