"""Composition root of the wallet: builds everything and owns its lifetime."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc
from prometheus_client import CollectorRegistry, Counter
from proofline.common.v1 import common_pb2
from proofline.wallet.v1 import wallet_pb2, wallet_pb2_grpc

from proofline_kit.chain import ArcSubmitOptions, ArcTxStatus, Broadcaster, CallbackSettings, open_chain_clients
from proofline_kit.chain.callback_server import CallbackServer
from proofline_kit.changes import ChangeHub
from proofline_kit.intents.checks import IntakePolicy
from proofline_kit.logging import get_logger
from proofline_kit.rpc.server import ServiceBinding
from proofline_kit.runtime import ServiceRuntime
from services.wallet.adapters.backup_sealer import AesGcmSealer
from services.wallet.adapters.chain import ChainAdapter
from services.wallet.adapters.coin_window import CachedCoinWindow
from services.wallet.adapters.pool_client import PoolClient
from services.wallet.adapters.publisher_client import PublisherClient
from services.wallet.adapters.redis_logins import RedisChallenges
from services.wallet.adapters.redis_rate import RedisRateLimit
from services.wallet.adapters.redis_signups import RedisCodes
from services.wallet.adapters.signer_client import SignerClient
from services.wallet.adapters.smtp_mailer import SmtpMailer
from services.wallet.adapters.woc_deposit_source import WocDepositSource
from services.wallet.domain.accounts import Accounts
from services.wallet.domain.backup import BackupShares
from services.wallet.domain.callbacks import CallbackHints
from services.wallet.domain.chains import BSV
from services.wallet.domain.deposits import DepositFollower
from services.wallet.domain.history import TransactionReader
from services.wallet.domain.identities import Identities
from services.wallet.domain.intents import IntentForwarding
from services.wallet.domain.login import Logins
from services.wallet.domain.models import Network
from services.wallet.domain.otp import OneTimeCodes
from services.wallet.domain.ports import KeyLimits
from services.wallet.domain.reconciliation import Reconciler
from services.wallet.domain.send_intake import SendIntake
from services.wallet.domain.send_pipeline import SendPipeline
from services.wallet.domain.sends import Sends
from services.wallet.domain.sessions import SessionTokens
from services.wallet.domain.signup import SignUps
from services.wallet.rpc.mappers import ERROR_DOMAIN
from services.wallet.rpc.servicer import WalletAdminServicer, WalletServicer
from services.wallet.settings import WalletSettings
from services.wallet.store import MIGRATIONS, WalletStore
from services.wallet.workers import wallet_loops

SERVICE_NAME = wallet_pb2.DESCRIPTOR.services_by_name["WalletService"].full_name
ADMIN_SERVICE_NAME = wallet_pb2.DESCRIPTOR.services_by_name["WalletAdminService"].full_name
_NETWORKS = {
    Network.MAINNET: common_pb2.NETWORK_MAINNET,
    Network.TESTNET: common_pb2.NETWORK_TESTNET,
    Network.REGTEST: common_pb2.NETWORK_REGTEST,
}


@dataclass
class RunningWallet:
    port: int
    store: WalletStore
    pipeline: SendPipeline
    follower: DepositFollower
    registry: CollectorRegistry
    stop: Callable[[], Awaitable[None]]
    # The ARC callback endpoint and the URL ARC is given (None: callbacks off, or no workers).
    callbacks: CallbackServer | None = None
    callback_url: str | None = None


async def start_wallet(settings: WalletSettings, *, configure_logs: bool = True) -> RunningWallet:
    service = settings.service
    runtime = await ServiceRuntime.open(service, MIGRATIONS, redis=True, configure_logs=configure_logs)
    store = WalletStore(runtime.db)
    changes = ChangeHub(runtime.db, f"{service.database_schema}_tx_changes", "wallet.changes")
    await changes.start()
    runtime.on_stop(changes.close)
    runtime.on_drain(changes.drain)
    # Bound before the chain clients are built: ARC is told the URL with every broadcast.
    callbacks = await _start_callbacks(settings.callbacks) if settings.workers and settings.callbacks.enabled else None
    if callbacks is not None:
        runtime.on_stop(callbacks.stop)
    callback_url = callbacks.url(settings.callbacks.public_url) if callbacks is not None else None
    clients = open_chain_clients(
        settings.chain,
        max_connections=32,
        arc_submit=ArcSubmitOptions(
            callback_url=callback_url,
            callback_token=settings.callbacks.token if callback_url else None,
            callback_batch=settings.callbacks.batch and callback_url is not None,
        ),
    )
    runtime.on_stop(clients.aclose)
    assert clients.woc is not None
    providers = [p for p in (clients.arc, clients.woc if settings.woc_fallback else None) if p is not None]
    gateway = ChainAdapter(
        clients.arc,
        clients.woc,
        Broadcaster(providers),
        settings.fixed_fee_rate,
        settings.fee_ttl_s,
        settings.chain.timeout_s,
    )
    signer_channel = grpc.aio.insecure_channel(settings.signer_addr)
    runtime.on_stop(signer_channel.close)
    signer = SignerClient(signer_channel, settings.signer_token, _NETWORKS[settings.network], settings.rpc_timeout_s)
    utxo_channel = grpc.aio.insecure_channel(settings.utxo_addr)
    runtime.on_stop(utxo_channel.close)
    pool = PoolClient(utxo_channel, settings.utxo_token, settings.rpc_timeout_s)
    change_key = await signer.create_key(
        f"wallet-create-{settings.change_key_id}"[:64],
        settings.change_key_id,
        KeyLimits(settings.limits.max_send_satoshis, settings.key_max_per_day_satoshis, ""),
    )
    key_limits = KeyLimits(settings.limits.max_send_satoshis, settings.key_max_per_day_satoshis, change_key.address)
    reader = TransactionReader(store, changes, settings.waits)
    follower = DepositFollower(store, WocDepositSource(clients.woc), pool, gateway, settings.follow)
    broadcast_wake, recheck_wake, follow_wake = asyncio.Event(), asyncio.Event(), asyncio.Event()
    window = CachedCoinWindow(pool, settings.candidate_ttl_s, settings.pipeline.max_unconfirmed_depth)
    pipeline = SendPipeline(
        store, BSV, pool, window, signer, gateway, change_key, settings.pipeline, settings.worker_id
    )
    loops = wallet_loops(
        pipeline,
        follower,
        settings.poll_s,
        settings.follow_poll_s,
        broadcast_wake,
        recheck_wake=recheck_wake,
        follow_wake=follow_wake,
        build_workers=settings.build_workers,
    )
    if callbacks is not None:

        def wake_sends() -> None:
            broadcast_wake.set()
            recheck_wake.set()

        _attach_hints(callbacks, CallbackHints(store, wake_sends=wake_sends, wake_follower=follow_wake.set), runtime)

    def wake_builders() -> None:
        for loop in loops[: settings.build_workers]:
            loop.wake.set()

    sends = Sends(
        store,
        BSV,
        settings.network,
        window,
        gateway,
        settings.limits,
        reader,
        SendIntake(
            store,
            RedisRateLimit(runtime.redis, service.redis_key_prefix, settings.sends_per_minute)
            if settings.sends_per_minute
            else None,
            settings.limits.daily_limit_satoshis,
            settings.pipeline.batch,
            on_recorded=wake_builders,
        ),
        user_sends=settings.user_sends,
    )
    accounts = Accounts(store, signer, settings.network, key_limits)
    prefix = service.redis_key_prefix
    mailer = SmtpMailer(settings.smtp)
    signups = SignUps(
        accounts,
        OneTimeCodes(
            "signup", RedisCodes(runtime.redis, prefix, "signup"), mailer, settings.otp_secret, settings.signup.codes
        ),
        RedisRateLimit(runtime.redis, prefix, settings.signups_per_address, name="signup-address", window_s=3600),
        RedisRateLimit(runtime.redis, prefix, settings.signups_per_caller, name="signup-caller", window_s=60),
    )
    backups = BackupShares(
        store,
        AesGcmSealer(settings.backup_kek),
        OneTimeCodes(
            "recovery",
            RedisCodes(runtime.redis, prefix, "recovery"),
            mailer,
            settings.otp_secret,
            settings.recovery.codes,
        ),
        RedisRateLimit(
            runtime.redis, prefix, settings.recoveries_per_account, name="recovery-account", window_s=86_400
        ),
        RedisRateLimit(runtime.redis, prefix, settings.recoveries_per_key, name="recovery-key", window_s=86_400),
    )
    publisher_channel = grpc.aio.insecure_channel(settings.publisher_addr)
    runtime.on_stop(publisher_channel.close)
    publisher = PublisherClient(publisher_channel, settings.publisher_token, settings.rpc_timeout_s)
    # The consent proof is checked with the publisher's default intent policy (64 KiB, 60 s of
    # clock skew, 1 h TTL, no `aud`): the proof is the wallet's, not a publish intent.
    identities = Identities(store, publisher, IntakePolicy())
    intents = IntentForwarding(store, publisher)
    sessions = SessionTokens(store, settings.session_secret, settings.session_ttl_s)
    logins = Logins(
        store,
        RedisChallenges(runtime.redis, prefix),
        RedisRateLimit(runtime.redis, prefix, settings.logins_per_key, name="login-key", window_s=60),
        RedisRateLimit(runtime.redis, prefix, settings.logins_per_caller, name="login-caller", window_s=60),
        sessions,
        settings.login,
    )
    port = await runtime.serve(
        ERROR_DOMAIN,
        [
            ServiceBinding(
                SERVICE_NAME,
                WalletServicer(
                    accounts,
                    sends,
                    reader,
                    settings.follow.min_confirmations,
                    identities,
                    intents,
                    signups,
                    backups,
                    logins,
                ),
                wallet_pb2_grpc.add_WalletServiceServicer_to_server,
            ),
            ServiceBinding(
                ADMIN_SERVICE_NAME,
                WalletAdminServicer(Reconciler(store, pool)),
                wallet_pb2_grpc.add_WalletAdminServiceServicer_to_server,
            ),
        ],
        ready=store.ping,
        session_verifier=sessions.verify,
    )
    if settings.workers:
        for loop in loops:
            runtime.loops.add(loop)
    get_logger("wallet.app").info(
        "wallet.started",
        port=port,
        metrics_port=service.metrics_port,
        migrations_applied=runtime.migrations_applied,
        callback_url=callback_url,
    )
    return RunningWallet(port, store, pipeline, follower, runtime.registry, runtime.stop, callbacks, callback_url)


async def _start_callbacks(settings: CallbackSettings) -> CallbackServer:
    server = CallbackServer(settings.host, settings.port, settings.token, logger_name="wallet.callbacks")
    await server.start()
    return server


def _attach_hints(server: CallbackServer, hints: CallbackHints, runtime: ServiceRuntime) -> None:
    """Callbacks go to the hints; counted by status received and by send nudged."""
    received = Counter(
        "wallet_arc_callback_statuses_total", "Transaction statuses ARC called back with", registry=runtime.registry
    )
    nudged = Counter(
        "wallet_arc_callback_nudges_total",
        "Sends an ARC callback made due for their round (a hint: the rounds decide on the chain's word)",
        registry=runtime.registry,
    )

    async def on_callback(statuses: Sequence[ArcTxStatus], _request_id: str) -> int:
        received.inc(len(statuses))
        sends = await hints.on_statuses(statuses)
        nudged.inc(sends)
        return sends

    server.attach(on_callback)
