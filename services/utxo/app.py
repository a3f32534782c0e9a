"""Composition root of the utxo service: builds everything and owns its lifetime."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
from prometheus_client import CollectorRegistry
from proofline.common.v1 import common_pb2
from proofline.utxo.v1 import utxo_pb2, utxo_pb2_grpc

from proofline_kit.chain import Broadcaster, FeeRateCache, open_chain_clients
from proofline_kit.logging import get_logger
from proofline_kit.rpc.server import ServiceBinding
from proofline_kit.runtime import ServiceRuntime
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
from services.utxo.rpc.mappers import ERROR_DOMAIN
from services.utxo.rpc.servicer import UtxoServicer
from services.utxo.settings import Network, UtxoSettings
from services.utxo.store import MIGRATIONS, UtxoStore
from services.utxo.workers import PoolMetrics, maintenance_loop, metrics_loop, reaper_loop

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
    runtime = await ServiceRuntime.open(settings.service, MIGRATIONS, redis=True, configure_logs=configure_logs)
    store = UtxoStore(runtime.db)
    clients = open_chain_clients(settings.chain, max_connections=32)
    runtime.on_stop(clients.aclose)
    arc, woc = clients.arc, clients.woc
    providers = [p for p in (arc, woc) if p is not None]
    chain_adapter = ChainAdapter(woc, Broadcaster(providers)) if woc is not None else None
    fee_rates = PolicyFeeRate(
        FeeRateCache(arc) if arc is not None else None,
        settings.fee_rate_satoshis_per_kb,
        settings.fallback_fee_rate_satoshis_per_kb,
    )
    signer_channel = grpc.aio.insecure_channel(settings.signer_addr)
    runtime.on_stop(signer_channel.close)
    signer = SignerClient(signer_channel, settings.signer_token, _NETWORKS[settings.network], settings.rpc_timeout_s)
    locks = RedisLocks(
        runtime.redis,
        settings.service.redis_key_prefix,
        f"{socket.gethostname()}/{os.getpid()}/{os.urandom(2).hex()}",
        store.next_fence,
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
    metrics = PoolMetrics(runtime.registry)
    maintenance = PoolMaintenance(
        store, pool, config, signer, signer, chain_adapter, chain_adapter, locks, fee_rates, metrics.pruned
    )
    port = await runtime.serve(
        ERROR_DOMAIN,
        [
            ServiceBinding(SERVICE_NAME, UtxoServicer(pool), utxo_pb2_grpc.add_UtxoServiceServicer_to_server),
            ServiceBinding(
                ADMIN_SERVICE_NAME,
                UtxoAdminServicer(maintenance),
                utxo_pb2_grpc.add_UtxoAdminServiceServicer_to_server,
            ),
        ],
        ready=store.ping,
    )
    runtime.loops.add(metrics_loop(pool, metrics, settings.metrics_refresh))
    if settings.maintenance_enabled:
        runtime.loops.add(reaper_loop(pool, settings.reap_interval))
        runtime.loops.add(maintenance_loop(maintenance, settings.maintenance_interval, wake))
    get_logger("utxo.app").info(
        "utxo.started",
        port=port,
        metrics_port=settings.service.metrics_port,
        migrations_applied=runtime.migrations_applied,
        chain=bool(chain_adapter),
        maintenance=settings.maintenance_enabled,
    )
    return RunningUtxo(port, pool, maintenance, runtime.registry, runtime.stop)
