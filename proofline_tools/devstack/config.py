"""What the supervisor reads from the environment, and the table of services it knows."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from proofline_kit.settings import EnvReader, SettingsError

DEFAULT_ADMIN_TOKEN = "dev-admin-token"
DEFAULT_CHAINSIM_PORT = 8700


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One gRPC service of the suite, as `make run` starts it."""

    name: str
    grpc_port_env: str
    grpc_port_default: int
    metrics_port_env: str
    metrics_port_default: int
    health_service: str

    @property
    def module(self) -> str:
        return f"services.{self.name}"

    def grpc_port(self, env: EnvReader) -> int:
        return env.integer(self.grpc_port_env, self.grpc_port_default, minimum=1, maximum=65535)

    def metrics_port(self, env: EnvReader) -> int:
        return env.integer(self.metrics_port_env, self.metrics_port_default, minimum=1, maximum=65535)


# In dependency order: each service may call the ones above it. Later issues add theirs here.
# fmt: off
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("signer_gateway", "SIGNER_GRPC_PORT", 50051, "SIGNER_METRICS_PORT", 9101,
                "proofline.signer.v1.SignerService"),
    ServiceSpec("utxo", "UTXO_GRPC_PORT", 50052, "UTXO_METRICS_PORT", 9102,
                "proofline.utxo.v1.UtxoService"),
    ServiceSpec("publisher", "PUBLISHER_GRPC_PORT", 50053, "PUBLISHER_METRICS_PORT", 9103,
                "proofline.publisher.v1.PublisherService"),
    ServiceSpec("wallet", "WALLET_GRPC_PORT", 50054, "WALLET_METRICS_PORT", 9104,
                "proofline.wallet.v1.WalletService"),
)
# fmt: on


@dataclass(frozen=True, slots=True)
class DevstackConfig:
    env: Mapping[str, str]  # the supervisor's environment, passed down to every service
    data_dir: Path
    embedded_postgres: bool  # DATABASE_URL unset
    embedded_redis: bool  # REDIS_URL unset
    redis_port: int | None
    chainsim_wanted: bool  # ARC_URL and WOC_URL both unset
    chainsim_port: int
    chainsim_snapshot: Path
    admin_token: str
    selected_services: tuple[str, ...] | None  # None: every implemented service
    ready_timeout_s: float
    stop_timeout_s: float

    def reader(self) -> EnvReader:
        return EnvReader(self.env)


def read_config(environ: Mapping[str, str] | None = None) -> DevstackConfig:
    """Raises SettingsError naming the variable when a value is invalid."""
    raw = dict(os.environ if environ is None else environ)
    env = EnvReader(raw)
    data_dir = Path(env.string("PROOFLINE_DATA_DIR", ".devdata")).absolute()
    redis_port = env.integer("DEVSTACK_REDIS_PORT", 0, minimum=0, maximum=65535)
    return DevstackConfig(
        env=raw,
        data_dir=data_dir,
        embedded_postgres=env.optional_string("DATABASE_URL") is None,
        embedded_redis=env.optional_string("REDIS_URL") is None,
        redis_port=redis_port or None,
        chainsim_wanted=env.optional_string("ARC_URL") is None and env.optional_string("WOC_URL") is None,
        chainsim_port=env.integer("CHAINSIM_PORT", DEFAULT_CHAINSIM_PORT, minimum=1, maximum=65535),
        chainsim_snapshot=Path(env.string("CHAINSIM_SNAPSHOT", str(data_dir / "chainsim.json"))).absolute(),
        admin_token=env.string("DEVSTACK_ADMIN_TOKEN", DEFAULT_ADMIN_TOKEN),
        selected_services=_selected_services(env.optional_string("DEVSTACK_SERVICES")),
        ready_timeout_s=env.integer("DEVSTACK_READY_TIMEOUT_MS", 60_000, minimum=100) / 1000,
        stop_timeout_s=env.integer("DEVSTACK_STOP_TIMEOUT_MS", 15_000, minimum=100) / 1000,
    )


def _selected_services(raw: str | None) -> tuple[str, ...] | None:
    """DEVSTACK_SERVICES: unset = all implemented, `none` = infrastructure only, else a comma list."""
    if raw is None:
        return None
    if raw.strip().lower() == "none":
        return ()
    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    known = {spec.name for spec in SERVICES}
    unknown = [name for name in names if name not in known]
    if unknown:
        known_list = ", ".join(sorted(known))
        raise SettingsError(f"DEVSTACK_SERVICES: unknown {', '.join(unknown)}; known: {known_list}")
    return names
