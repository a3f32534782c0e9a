"""Builds the publishing pipeline of one process from its settings and owns its lifetime: the channels
to the utxo service and the signer, the chain clients, the ARC callback endpoint and the loops."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from prometheus_client import CollectorRegistry

from proofline_kit.chain import (
    ArcSubmitOptions,
    ArcTxStatus,
    Broadcaster,
    BroadcastProvider,
    ChainClients,
    RetryPolicy,
    open_chain_clients,
)
from proofline_kit.chain.callback_server import CallbackServer
from proofline_kit.logging import get_logger
from services.publisher.adapters.chain import ChainAdapter
from services.publisher.adapters.signer_client import SignerClient
from services.publisher.adapters.utxo_client import UtxoPoolClient
from services.publisher.domain.confirmations import ConfirmationFollower
from services.publisher.domain.models import Actor
from services.publisher.domain.pipeline import PublishPipeline
from services.publisher.settings import WorkerSettings
from services.publisher.store import PublisherStore
from services.publisher.workers.loops import LoopConfig, PipelineLoops, worker_identity
from services.publisher.workers.metrics import PipelineMetrics


@dataclass
class PipelineRuntime:
    pipeline: PublishPipeline
    follower: ConfirmationFollower
    workers: PipelineLoops
    callback_url: str | None
    _channels: tuple[grpc.aio.Channel, ...]
    _chain: ChainClients
    _callbacks: CallbackServer | None

    def wake(self) -> None:
        self.workers.wake()

    async def stop(self, grace_s: float) -> None:
        await self.workers.stop(grace_s)
        if self._callbacks is not None:
            await self._callbacks.stop()
        for channel in self._channels:
            await channel.close()
        await self._chain.aclose()


async def start_pipeline(
    settings: WorkerSettings, store: PublisherStore, registry: CollectorRegistry
) -> PipelineRuntime:
    chain_settings = settings.chain
    assert chain_settings is not None, "settings guarantee a chain when workers run"
    log = get_logger("publisher.pipeline")
    metrics = PipelineMetrics(registry)
    identity = worker_identity()
    utxo_channel = grpc.aio.insecure_channel(settings.utxo_addr)
    signer_channel = grpc.aio.insecure_channel(settings.signer_addr)
    callbacks: CallbackServer | None = None
    callback_url: str | None = None
    cb = settings.callbacks
    if cb.enabled:
        callbacks = CallbackServer(cb.host, cb.port, cb.token, logger_name="publisher.callbacks")
        await callbacks.start()
        callback_url = callbacks.url(cb.public_url)
    timeout_s = chain_settings.timeout_s
    clients = open_chain_clients(
        chain_settings,
        max_connections=64,
        retry=RetryPolicy(max_attempts=3, base_delay_s=0.2, max_delay_s=2.0),
        arc_submit=ArcSubmitOptions(
            callback_url=callback_url,
            callback_token=cb.token if callback_url else None,
            callback_batch=cb.batch and callback_url is not None,
        ),
    )
    arc, woc = clients.arc, clients.woc
    assert arc is not None and woc is not None, "settings guarantee ARC and WhatsOnChain when workers run"
    providers: list[BroadcastProvider] = [arc, woc] if settings.broadcast.woc_fallback else [arc]
    chain = ChainAdapter(
        arc,
        woc,
        Broadcaster(providers, default_budget_s=3 * timeout_s),
        fixed_rate=settings.broadcast.fee_rate,
        fee_ttl_s=settings.broadcast.fee_ttl_s,
        timeout_s=timeout_s,
    )
    pool = UtxoPoolClient(utxo_channel, settings.utxo_token, settings.rpc_timeout_s)
    signer = SignerClient(signer_channel, settings.signer_token, settings.rpc_timeout_s)
    pipeline = PublishPipeline(store, pool, signer, chain, settings.pipeline, metrics)
    follower = ConfirmationFollower(store, chain, pipeline, settings.follow, metrics)
    if callbacks is not None:

        async def on_callback(statuses: Sequence[ArcTxStatus], request_id: str) -> int:
            metrics.callbacks.labels("received").inc(len(statuses))
            return await follower.on_statuses(statuses, Actor(f"{identity}/arc-callback", request_id))

        callbacks.attach(on_callback)
    workers = PipelineLoops(
        pipeline,
        follower,
        LoopConfig(
            workers=settings.workers,
            idle_poll_s=settings.idle_poll_s,
            stuck_check_s=settings.stuck_check_s,
            confirm_tick_s=max(0.05, min(1.0, settings.follow.recheck_s / 4)),
            reorg_check_s=settings.reorg_check_s,
        ),
        metrics,
        identity,
    )
    workers.start()
    log.info(
        "pipeline.started",
        workers=settings.workers,
        identity=identity,
        utxo=settings.utxo_addr,
        signer=settings.signer_addr,
        arc=chain_settings.arc_url,
        callback_url=callback_url,
    )
    return PipelineRuntime(
        pipeline, follower, workers, callback_url, (utxo_channel, signer_channel), clients, callbacks
    )
