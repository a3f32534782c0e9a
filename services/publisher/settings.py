"""publisher configuration, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass, field

from proofline_kit.chain import CallbackSettings, ChainSettings, FeeRate, read_callback_settings, read_chain_settings
from proofline_kit.intents.checks import IntakePolicy
from proofline_kit.intents.records import RecordSchema
from proofline_kit.settings import EnvReader, RunMode, ServiceSettings, SettingsError, read_service_settings
from services.publisher.domain.confirmations import FollowConfig
from services.publisher.domain.outcomes import RetryPolicy
from services.publisher.domain.pipeline import PipelineConfig, SignMode
from services.publisher.domain.publisher import IntakeLimits
from services.publisher.domain.txbuild import (
    DataFormat,
    DataMode,
)

# The utxo service's and the signer's gRPC ports as `make run` hands them to every service.
_UTXO_PORT_ENV, _UTXO_PORT = "UTXO_GRPC_PORT", 50052
_SIGNER_PORT_ENV, _SIGNER_PORT = "SIGNER_GRPC_PORT", 50051
_KEY_ID_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")


@dataclass(frozen=True, slots=True)
class BroadcastSettings:
    # Also try WhatsOnChain for the transactions ARC gave no verdict on.
    woc_fallback: bool
    # Fixed fee rate; None = ARC's policy rate, cached `fee_ttl_s`.
    fee_rate: FeeRate | None
    fee_ttl_s: float


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """The publishing pipeline (issue 5 "Publishing"). `workers` = 0: intake only, nothing is published."""

    workers: int
    utxo_addr: str
    utxo_token: str | None = field(repr=False)
    signer_addr: str
    signer_token: str | None = field(repr=False)
    rpc_timeout_s: float
    chain: ChainSettings | None
    broadcast: BroadcastSettings
    callbacks: CallbackSettings
    pipeline: PipelineConfig
    follow: FollowConfig
    idle_poll_s: float
    stuck_check_s: float
    reorg_check_s: float


@dataclass(frozen=True, slots=True)
class PublisherSettings:
    service: ServiceSettings
    policy: IntakePolicy
    limits: IntakeLimits
    # Per identity key and second; 0 = no limit.
    rate_limit_per_key: int
    nonce_cache_ttl_s: int
    workers: WorkerSettings


def read_publisher_settings(env: EnvReader | None = None) -> PublisherSettings:
    env = env or EnvReader()
    service = read_service_settings(
        env,
        service_name="publisher",
        env_prefix="PUBLISHER",
        default_grpc_port=50053,
        default_metrics_port=9103,
        default_schema="publisher",
    )
    clock_skew_s = env.integer("PUBLISHER_CLOCK_SKEW_S", 60, minimum=0, maximum=3600)
    max_ttl_s = env.integer("PUBLISHER_INTENT_MAX_TTL_S", 3600, minimum=1, maximum=30 * 24 * 3600)
    required = tuple(
        name.strip() for name in env.string("PUBLISHER_RECORD_REQUIRED_MEMBERS", "").split(",") if name.strip()
    )
    policy = IntakePolicy(
        max_payload_bytes=env.integer("PUBLISHER_MAX_PAYLOAD_BYTES", 64 * 1024, minimum=256, maximum=1024 * 1024),
        clock_skew_s=clock_skew_s,
        max_ttl_s=max_ttl_s,
        audience=env.optional_string("PUBLISHER_AUDIENCE") or "",
        record_schema=RecordSchema(
            max_depth=env.integer("PUBLISHER_RECORD_MAX_DEPTH", 16, minimum=1, maximum=64),
            max_members=env.integer("PUBLISHER_RECORD_MAX_MEMBERS", 1000, minimum=1, maximum=100_000),
            required_members=required,
        ),
    )
    default_wait_ms = env.integer("PUBLISHER_DEFAULT_WAIT_MS", 30_000, minimum=0)
    max_wait_ms = env.integer("PUBLISHER_MAX_WAIT_MS", 300_000, minimum=0)
    if default_wait_ms > max_wait_ms:
        raise SettingsError("PUBLISHER_DEFAULT_WAIT_MS must not exceed PUBLISHER_MAX_WAIT_MS")
    limits = IntakeLimits(
        max_queued_jobs=env.integer("PUBLISHER_MAX_QUEUED_JOBS", 100_000, minimum=1),
        default_wait_s=default_wait_ms / 1000,
        max_wait_s=max_wait_ms / 1000,
        poll_s=env.integer("PUBLISHER_WATCH_POLL_MS", 5_000, minimum=50, maximum=60_000) / 1000,
    )
    return PublisherSettings(
        service=service,
        policy=policy,
        limits=limits,
        rate_limit_per_key=env.integer("PUBLISHER_RATE_LIMIT_PER_KEY_PER_S", 0, minimum=0),
        # A replay after this is still refused, by PostgreSQL instead of Redis.
        nonce_cache_ttl_s=env.integer("PUBLISHER_NONCE_CACHE_TTL_S", max_ttl_s + 2 * clock_skew_s, minimum=1),
        workers=_read_workers(env, service),
    )


def _ms(env: EnvReader, name: str, default: int, minimum: int = 1, maximum: int | None = None) -> float:
    return env.integer(name, default, minimum=minimum, maximum=maximum) / 1000


def _key_id(env: EnvReader, name: str) -> str:
    value = env.string(name, "")
    if value and (len(value) > 128 or not set(value) <= _KEY_ID_CHARS):
        raise SettingsError(f"{name} must be 1-128 characters of [A-Za-z0-9._:-]")
    return value


def _read_workers(env: EnvReader, service: ServiceSettings) -> WorkerSettings:
    production = service.run_mode is RunMode.PRODUCTION
    workers = env.integer("PUBLISHER_WORKERS", 2, minimum=0, maximum=64)
    utxo_port = env.integer(_UTXO_PORT_ENV, _UTXO_PORT, minimum=0, maximum=65535) or _UTXO_PORT
    signer_port = env.integer(_SIGNER_PORT_ENV, _SIGNER_PORT, minimum=0, maximum=65535) or _SIGNER_PORT
    chain = read_chain_settings(env, "PUBLISHER") if workers else None
    if chain is not None and (chain.arc_url is None or chain.woc_url is None):
        raise SettingsError("PUBLISHER_WORKERS > 0 needs ARC_URL and WOC_URL (or PUBLISHER_ARC_URL/PUBLISHER_WOC_URL)")
    utxo_token = env.optional_string("PUBLISHER_UTXO_TOKEN")
    signer_token = env.optional_string("PUBLISHER_SIGNER_TOKEN")
    callbacks_on = env.flag("PUBLISHER_CALLBACK_ENABLED", True)
    callback_token = env.optional_string("PUBLISHER_CALLBACK_TOKEN")
    if production and workers:
        missing = [
            name
            for name, value in (
                ("PUBLISHER_UTXO_TOKEN", utxo_token),
                ("PUBLISHER_SIGNER_TOKEN", signer_token),
                ("PUBLISHER_CALLBACK_TOKEN", callback_token if callbacks_on else "-"),
            )
            if not value
        ]
        if missing:
            raise SettingsError(f"{', '.join(missing)} required in production mode")
    fixed_rate = env.integer("PUBLISHER_FEE_RATE_SAT_PER_KB", 0, minimum=0, maximum=1_000_000_000)
    batch_max = env.integer("PUBLISHER_BATCH_MAX_JOBS", 500, minimum=1, maximum=1000)
    retry = RetryPolicy(
        max_builds=env.integer("PUBLISHER_MAX_BUILDS", 3, minimum=1, maximum=100),
        max_attempts=env.integer("PUBLISHER_MAX_BROADCAST_ATTEMPTS", 30, minimum=1, maximum=10_000),
        base_s=_ms(env, "PUBLISHER_RETRY_BASE_MS", 1_000),
        max_s=_ms(env, "PUBLISHER_RETRY_MAX_MS", 60_000),
        confirm_poll_s=_ms(env, "PUBLISHER_CONFIRM_POLL_MS", 60_000, minimum=10),
    )
    job_lease_s = _ms(env, "PUBLISHER_JOB_LEASE_MS", 60_000, minimum=100)
    utxo_lease_s = _ms(env, "PUBLISHER_UTXO_LEASE_MS", 600_000, minimum=1_000, maximum=3_600_000)
    if utxo_lease_s < job_lease_s:
        raise SettingsError("PUBLISHER_UTXO_LEASE_MS must be at least PUBLISHER_JOB_LEASE_MS")
    prefix = env.string("PUBLISHER_DATA_PREFIX", "proofline")
    pipeline = PipelineConfig(
        batch_max_jobs=batch_max,
        batch_window_s=_ms(env, "PUBLISHER_BATCH_WINDOW_MS", 250, minimum=0, maximum=60_000),
        claim_poll_s=0.02,
        job_lease_s=job_lease_s,
        utxo_lease_s=utxo_lease_s,
        funding_key_id=_key_id(env, "PUBLISHER_FUNDING_KEY_ID"),
        change_key_id=_key_id(env, "PUBLISHER_CHANGE_KEY_ID"),
        dust_limit_satoshis=env.integer("PUBLISHER_DUST_LIMIT_SATS", 1, minimum=1),
        data_format=DataFormat(
            env.choice("PUBLISHER_DATA_MODE", DataMode, DataMode.RECORD), b"" if prefix == "-" else prefix.encode()
        ),
        sign_chunk_txs=env.integer("PUBLISHER_SIGN_CHUNK_TXS", 256, minimum=1, maximum=1024),
        sign_mode=env.choice("PUBLISHER_SIGN_MODE", SignMode, SignMode.POLICY),
        requeue_delay_s=_ms(env, "PUBLISHER_REQUEUE_DELAY_MS", 2_000, minimum=0),
        retry=retry,
    )
    follow = FollowConfig(
        poll_batch=env.integer("PUBLISHER_CONFIRM_BATCH", 200, minimum=1, maximum=1000),
        recheck_s=retry.confirm_poll_s,
        max_recheck_s=max(retry.confirm_poll_s, _ms(env, "PUBLISHER_CONFIRM_POLL_MAX_MS", 1_800_000, minimum=10)),
        status_concurrency=env.integer("PUBLISHER_STATUS_CONCURRENCY", 16, minimum=1, maximum=256),
        reorg_depth=env.integer("PUBLISHER_REORG_DEPTH_BLOCKS", 6, minimum=1, maximum=1000),
    )
    return WorkerSettings(
        workers=workers,
        utxo_addr=env.string("PUBLISHER_UTXO_ADDR", f"127.0.0.1:{utxo_port}"),
        utxo_token=utxo_token,
        signer_addr=env.string("PUBLISHER_SIGNER_ADDR", f"127.0.0.1:{signer_port}"),
        signer_token=signer_token,
        rpc_timeout_s=_ms(env, "PUBLISHER_RPC_TIMEOUT_MS", 10_000, minimum=100),
        chain=chain,
        broadcast=BroadcastSettings(
            woc_fallback=env.flag("PUBLISHER_WOC_BROADCAST_FALLBACK", True),
            fee_rate=FeeRate(fixed_rate, 1000) if fixed_rate else None,
            fee_ttl_s=_ms(env, "PUBLISHER_FEE_RATE_TTL_MS", 300_000, minimum=100),
        ),
        callbacks=read_callback_settings(
            env,
            "PUBLISHER",
            enabled=callbacks_on,
            token=callback_token,
            default_host=service.grpc_host,
            default_port=8753,
        ),
        pipeline=pipeline,
        follow=follow,
        idle_poll_s=_ms(env, "PUBLISHER_IDLE_POLL_MS", 200, minimum=10),
        stuck_check_s=_ms(env, "PUBLISHER_STUCK_CHECK_MS", 5_000, minimum=10),
        reorg_check_s=_ms(env, "PUBLISHER_REORG_CHECK_MS", 30_000, minimum=10),
    )
