"""utxo service configuration, read once from the environment (names from seed 000 where it has them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum

from proofline_kit.chain import ChainSettings, read_chain_settings
from proofline_kit.settings import EnvReader, ServiceSettings, SettingsError, read_service_settings
from services.utxo.domain.fees import DEFAULT_PUBLISH_TX_BYTES
from services.utxo.domain.maintenance import SplitConfig
from services.utxo.domain.models import KEY_ID_PATTERN, Strategy
from services.utxo.domain.pool import PoolConfig


class Network(Enum):
    MAINNET = "mainnet"
    TESTNET = "testnet"
    # chainsim; addresses use the testnet prefix.
    REGTEST = "regtest"


class StrategyName(Enum):
    SMALLEST_FIRST = "smallest_first"
    LARGEST_FIRST = "largest_first"


@dataclass(frozen=True, slots=True)
class UtxoSettings:
    service: ServiceSettings
    pool: PoolConfig
    network: Network
    min_confirmations: int
    split: SplitConfig
    chain: ChainSettings
    # Fixed rate (FEE_SAT_PER_BYTE * 1000, or UTXO_FEE_RATE_SAT_PER_KB); None = the chain's policy rate.
    fee_rate_satoshis_per_kb: int | None
    fallback_fee_rate_satoshis_per_kb: int
    fee_buffer_satoshis: int
    funding_key_id: str
    change_key_id: str
    change_address: str
    sweep_max_inputs: int
    sweep_lock: timedelta
    signer_addr: str
    signer_token: str | None = field(repr=False)
    rpc_timeout_s: float
    maintenance_enabled: bool
    maintenance_interval: timedelta
    reap_interval: timedelta
    metrics_refresh: timedelta
    broadcast_attempts: int
    broadcast_retry_pause_s: float
    invalid_after: timedelta
    retention: timedelta


def read_utxo_settings(env: EnvReader | None = None) -> UtxoSettings:
    env = env or EnvReader()
    service = read_service_settings(
        env,
        service_name="utxo",
        env_prefix="UTXO",
        default_grpc_port=50052,
        default_metrics_port=9102,
        default_schema="utxo",
    )
    default_lease_ms = env.integer("UTXO_LEASE_DEFAULT_MS", 300_000, minimum=1_000)
    max_lease_ms = env.integer("UTXO_LEASE_MAX_MS", 3_600_000, minimum=1_000)
    if default_lease_ms > max_lease_ms:
        raise SettingsError("UTXO_LEASE_DEFAULT_MS must not exceed UTXO_LEASE_MAX_MS")
    low_water = env.integer("MIN_UTXO_COUNT", env.integer("UTXO_MIN_POOL", 50, minimum=0), minimum=0)
    publish_bytes = env.integer("UTXO_PUBLISH_TX_BYTES", DEFAULT_PUBLISH_TX_BYTES, minimum=60, maximum=1_000_000)
    strategy = env.choice("UTXO_LEASE_STRATEGY", StrategyName, StrategyName.SMALLEST_FIRST)
    pool = PoolConfig(
        default_lease=timedelta(milliseconds=default_lease_ms),
        max_lease=timedelta(milliseconds=max_lease_ms),
        default_strategy=Strategy(strategy.value),
        low_water_utxos=low_water,
        publish_tx_bytes=publish_bytes,
        # Bitcoin Core's default ancestor limit, well inside ARC's (10,000) and the BSV node's (1,000).
        max_unconfirmed_depth=env.integer("UTXO_MAX_UNCONFIRMED_DEPTH", 25, minimum=0, maximum=1000),
    )
    split = _read_split(env, low_water)
    fee_rate: int | None = None
    per_byte = env.optional_string("FEE_SAT_PER_BYTE")
    if per_byte is not None:
        fee_rate = env.integer("FEE_SAT_PER_BYTE", 0, minimum=0, maximum=1_000_000) * 1000
    if env.optional_string("UTXO_FEE_RATE_SAT_PER_KB") is not None:
        fee_rate = env.integer("UTXO_FEE_RATE_SAT_PER_KB", 0, minimum=0, maximum=1_000_000_000)
    funding_key_id = env.string("UTXO_FUNDING_KEY_ID", "")
    change_key_id = env.string("UTXO_CHANGE_KEY_ID", "")
    for name, value in (("UTXO_FUNDING_KEY_ID", funding_key_id), ("UTXO_CHANGE_KEY_ID", change_key_id)):
        if value and not KEY_ID_PATTERN.match(value):
            raise SettingsError(f"{name} must be 1-128 characters of [A-Za-z0-9._:-]")
    return UtxoSettings(
        service=service,
        pool=pool,
        network=env.choice("UTXO_NETWORK", Network, Network.TESTNET),
        min_confirmations=env.integer("UTXO_MIN_CONFIRMATIONS", 1, minimum=0, maximum=10_000),
        split=split,
        chain=read_chain_settings(env, "UTXO"),
        fee_rate_satoshis_per_kb=fee_rate,
        fallback_fee_rate_satoshis_per_kb=env.integer("UTXO_FALLBACK_FEE_RATE_SAT_PER_KB", 1, minimum=0),
        fee_buffer_satoshis=env.integer("UTXO_FEE_BUFFER", 0, minimum=0, maximum=100_000_000),
        funding_key_id=funding_key_id,
        change_key_id=change_key_id,
        change_address=env.string("UTXO_CHANGE_ADDRESS", ""),
        sweep_max_inputs=env.integer("UTXO_SWEEP_MAX_INPUTS", 250, minimum=1, maximum=2000),
        sweep_lock=timedelta(milliseconds=env.integer("UTXO_SWEEP_LOCK_MS", 300_000, minimum=1_000)),
        signer_addr=env.string("UTXO_SIGNER_ADDR", "127.0.0.1:50051"),
        signer_token=env.optional_string("UTXO_SIGNER_TOKEN"),
        rpc_timeout_s=env.integer("UTXO_RPC_TIMEOUT_MS", 10_000, minimum=100) / 1000,
        maintenance_enabled=env.flag("UTXO_MAINTENANCE_ENABLED", True),
        maintenance_interval=timedelta(milliseconds=env.integer("UTXO_MAINTENANCE_INTERVAL_MS", 60_000, minimum=100)),
        reap_interval=timedelta(milliseconds=env.integer("UTXO_REAP_INTERVAL_MS", 10_000, minimum=100)),
        metrics_refresh=timedelta(milliseconds=env.integer("UTXO_METRICS_REFRESH_MS", 15_000, minimum=100)),
        broadcast_attempts=env.integer("UTXO_BROADCAST_ATTEMPTS", 3, minimum=1, maximum=20),
        broadcast_retry_pause_s=env.integer("UTXO_BROADCAST_RETRY_PAUSE_MS", 500, minimum=0) / 1000,
        invalid_after=timedelta(milliseconds=env.integer("UTXO_INVALID_AFTER_MS", 600_000, minimum=0)),
        retention=timedelta(milliseconds=env.integer("UTXO_RETENTION_MS", 7 * 24 * 3_600_000, minimum=0)),
    )


def _read_split(env: EnvReader, low_water: int) -> SplitConfig:
    size = env.integer("UTXO_SPLIT_SIZE_SATS", 1_000, minimum=1)
    minimum = env.integer("UTXO_SPLIT_MIN_SATS", size, minimum=1)
    maximum = env.integer("UTXO_SPLIT_MAX_SATS", max(size, minimum), minimum=1)
    if not minimum <= size <= maximum:
        raise SettingsError("UTXO_SPLIT_MIN_SATS <= UTXO_SPLIT_SIZE_SATS <= UTXO_SPLIT_MAX_SATS must hold")
    target = env.integer("UTXO_SPLIT_TARGET", max(2 * low_water, 1), minimum=1)
    if target < low_water:
        raise SettingsError("UTXO_SPLIT_TARGET must be at least MIN_UTXO_COUNT")
    return SplitConfig(
        low_water=low_water,
        target=target,
        size_satoshis=size,
        min_satoshis=minimum,
        max_outputs_per_tx=env.integer("UTXO_SPLIT_MAX_OUTPUTS", 1_000, minimum=1, maximum=10_000),
        cooldown=timedelta(milliseconds=env.integer("SPLIT_COOLDOWN_MS", 60_000, minimum=0)),
        lease=timedelta(milliseconds=env.integer("SPLIT_LEASE_MS", 120_000, minimum=1_000)),
    )
