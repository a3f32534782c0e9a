"""publisher configuration, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from proofline_kit.settings import EnvReader, ServiceSettings, SettingsError, read_service_settings
from services.publisher.domain.intents import IntakePolicy
from services.publisher.domain.publisher import IntakeLimits
from services.publisher.domain.records import RecordSchema


@dataclass(frozen=True, slots=True)
class PublisherSettings:
    service: ServiceSettings
    policy: IntakePolicy
    limits: IntakeLimits
    # Per identity key and second; 0 = no limit.
    rate_limit_per_key: int
    nonce_cache_ttl_s: int


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
    )
