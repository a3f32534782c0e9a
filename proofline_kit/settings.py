"""Reading and validating configuration from the environment.

Every service builds one frozen settings object at start-up from these helpers; a bad or missing
value stops the service with a message that names the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TypeVar

E = TypeVar("E", bound=Enum)


class SettingsError(ValueError):
    """A configuration value is missing or invalid."""


class RunMode(Enum):
    DEV = "dev"
    TEST = "test"
    PRODUCTION = "production"


class EnvReader:
    """Typed access to a mapping of environment variables."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = dict(os.environ if env is None else env)

    def string(self, name: str, default: str | None = None) -> str:
        value = self._env.get(name)
        if value is None or value == "":
            if default is None:
                raise SettingsError(f"{name} is required")
            return default
        return value

    def optional_string(self, name: str) -> str | None:
        value = self._env.get(name)
        return value if value else None

    def integer(self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
        raw = self._env.get(name)
        if raw is None or raw == "":
            value = default
        else:
            try:
                value = int(raw)
            except ValueError as exc:
                raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc
        if minimum is not None and value < minimum:
            raise SettingsError(f"{name} must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise SettingsError(f"{name} must be <= {maximum}, got {value}")
        return value

    def number(self, name: str, default: float, *, minimum: float | None = None) -> float:
        raw = self._env.get(name)
        if raw is None or raw == "":
            value = default
        else:
            try:
                value = float(raw)
            except ValueError as exc:
                raise SettingsError(f"{name} must be a number, got {raw!r}") from exc
        if minimum is not None and value < minimum:
            raise SettingsError(f"{name} must be >= {minimum}, got {value}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self._env.get(name)
        if raw is None or raw == "":
            return default
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"{name} must be a boolean (1/0, true/false), got {raw!r}")

    def choice(self, name: str, enum: type[E], default: E) -> E:
        raw = self._env.get(name)
        if raw is None or raw == "":
            return default
        for member in enum:
            if member.value == raw.strip().lower():
                return member
        allowed = ", ".join(str(m.value) for m in enum)
        raise SettingsError(f"{name} must be one of {allowed}, got {raw!r}")


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """What every Proofline service needs: where it listens and what it talks to."""

    service_name: str
    run_mode: RunMode
    grpc_host: str
    grpc_port: int
    metrics_port: int
    database_url: str
    database_schema: str
    database_pool_size: int
    redis_url: str
    redis_key_prefix: str
    auth_tokens: str = field(repr=False)
    reflection_enabled: bool
    log_level: str
    shutdown_grace_ms: int
    max_message_bytes: int
    # How long recorded answers to `request_id`s are kept for replay; 0 = forever.
    idempotency_retention_ms: int = 7 * 24 * 3600 * 1000

    @property
    def production(self) -> bool:
        return self.run_mode is RunMode.PRODUCTION


def read_service_settings(
    env: EnvReader,
    *,
    service_name: str,
    env_prefix: str,
    default_grpc_port: int,
    default_metrics_port: int,
    default_schema: str,
) -> ServiceSettings:
    run_mode = env.choice("PROOFLINE_ENV", RunMode, RunMode.DEV)
    auth_tokens = env.optional_string("AUTH_TOKENS") or ""
    if run_mode is RunMode.PRODUCTION and not auth_tokens:
        raise SettingsError("AUTH_TOKENS is required in production mode")
    return ServiceSettings(
        service_name=service_name,
        run_mode=run_mode,
        grpc_host=env.string(f"{env_prefix}_GRPC_HOST", env.string("GRPC_HOST", "127.0.0.1")),
        grpc_port=env.integer(f"{env_prefix}_GRPC_PORT", default_grpc_port, minimum=0, maximum=65535),
        metrics_port=env.integer(f"{env_prefix}_METRICS_PORT", default_metrics_port, minimum=0, maximum=65535),
        database_url=env.string("DATABASE_URL"),
        database_schema=env.string(f"{env_prefix}_DB_SCHEMA", default_schema),
        database_pool_size=env.integer(f"{env_prefix}_DB_POOL_SIZE", 8, minimum=1, maximum=200),
        redis_url=env.string("REDIS_URL", "redis://127.0.0.1:6379/0"),
        redis_key_prefix=env.string("REDIS_KEY_PREFIX", "proofline"),
        auth_tokens=auth_tokens,
        reflection_enabled=env.flag("GRPC_REFLECTION", True),
        log_level=env.string("LOG_LEVEL", "info").lower(),
        shutdown_grace_ms=env.integer("SHUTDOWN_GRACE_MS", 10_000, minimum=0),
        max_message_bytes=env.integer("GRPC_MAX_MESSAGE_BYTES", 16 * 1024 * 1024, minimum=1024),
        idempotency_retention_ms=env.integer("IDEMPOTENCY_RETENTION_MS", 7 * 24 * 3600 * 1000, minimum=0),
    )
