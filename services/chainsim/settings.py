"""chainsim configuration, read once from the environment (``CHAINSIM_*``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any, TypeVar

E = TypeVar("E", bound=Enum)


class Profile(StrEnum):
    """How node-level outcomes are reported (arc-woc.md §6.0)."""

    ARC_FAITHFUL = "arc_faithful"  # input spent in a block / unknown -> SEEN_IN_ORPHAN_MEMPOOL
    STRICT = "strict"  # such inputs -> REJECTED at once


class ScriptVerify(StrEnum):
    """Which script verifier the node runs on every input."""

    P2PKH = "p2pkh"  # fast path: FORKID sighash + low-S ECDSA; other scripts go to the interpreter
    INTERPRETER = "interpreter"  # bsv-sdk interpreter on every input


class Progression(StrEnum):
    """How ARC statuses advance after acceptance (§6.3.4)."""

    INSTANT = "instant"
    STAGED = "staged"


class SettingsError(ValueError):
    """An environment variable has a value chainsim cannot use."""


@dataclass(frozen=True, slots=True)
class Policy:
    """The ARC policy served at ``GET /v1/policy`` and used by validation (ARC defaults)."""

    max_script_size: int = 100_000_000
    max_tx_sigops: int = 4_294_967_295
    max_tx_size: int = 100_000_000
    fee_satoshis: int = 1
    fee_bytes: int = 1000
    standard_format_supported: bool = True

    def min_fee(self, size: int) -> int:
        """Minimum fee for ``size`` raw bytes, rounded up (integer math, never floats)."""
        return (size * self.fee_satoshis + self.fee_bytes - 1) // self.fee_bytes

    def overridden(self, override: Mapping[str, Any] | None) -> Policy:
        """This policy with the ARC-shaped keys of ``override`` applied (fault injection)."""
        if not override:
            return self
        fee = override.get("miningFee") or {}
        return replace(
            self,
            max_script_size=int(override.get("maxscriptsizepolicy", self.max_script_size)),
            max_tx_sigops=int(override.get("maxtxsigopscountspolicy", self.max_tx_sigops)),
            max_tx_size=int(override.get("maxtxsizepolicy", self.max_tx_size)),
            fee_satoshis=int(fee.get("satoshis", self.fee_satoshis)),
            fee_bytes=max(1, int(fee.get("bytes", self.fee_bytes))),
            standard_format_supported=bool(override.get("standardFormatSupported", self.standard_format_supported)),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "maxscriptsizepolicy": self.max_script_size,
            "maxtxsigopscountspolicy": self.max_tx_sigops,
            "maxtxsizepolicy": self.max_tx_size,
            "miningFee": {"satoshis": self.fee_satoshis, "bytes": self.fee_bytes},
            "standardFormatSupported": self.standard_format_supported,
        }


@dataclass(frozen=True, slots=True)
class Settings:
    """Every chainsim knob; defaults mirror ARC's where ARC has one (arc-woc.md §6.9)."""

    host: str = "127.0.0.1"
    port: int = 8700
    snapshot: Path | None = None
    snapshot_interval_s: float = 30.0
    profile: Profile = Profile.ARC_FAITHFUL
    policy: Policy = field(default_factory=Policy)
    node_fee_sat_per_kb: int = 1
    mine_interval_ms: int = 0
    network: str = "test"
    script_verify: ScriptVerify = ScriptVerify.P2PKH
    progression: Progression = Progression.INSTANT
    stage_delay_ms: int = 100
    default_max_timeout_s: int = 5
    max_timeout_s: int = 30
    orphan_ttl_s: float = 600.0
    limit_ancestor_count: int = 10_000
    coinbase_maturity: int = 100
    miner_script_hex: str = "76a914" + "c0" * 20 + "88ac"
    reject_callback_substrings: tuple[str, ...] = ()
    callback_max_retries: int = 10
    callback_retry_pause_ms: int = 1000
    callback_timeout_s: float = 5.0
    callback_batch_interval_ms: int = 1000
    callback_disable_on_transport_error: bool = True
    woc_page_size: int = 1000
    woc_rate_limit_rps: float = 0.0
    woc_error_status: int = 500
    woc_index_lag_ms: int = 0
    arc_bearer_tokens: tuple[str, ...] = ()
    version: str = "sim-0.1.0"

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def _get(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(f"CHAINSIM_{name}")
    if raw is None or raw.strip() == "":
        return None
    return raw.strip()


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"CHAINSIM_{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise SettingsError(f"CHAINSIM_{name} must be >= {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"CHAINSIM_{name} must be a number, got {raw!r}") from exc
    if value < 0:
        raise SettingsError(f"CHAINSIM_{name} must be >= 0, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _get(env, name)
    if raw is None:
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"CHAINSIM_{name} must be a boolean, got {raw!r}")


def _choice(env: Mapping[str, str], name: str, enum: type[E], default: E) -> E:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        return enum(raw.lower())
    except ValueError as exc:
        allowed = "|".join(str(m.value) for m in enum)
        raise SettingsError(f"CHAINSIM_{name} must be one of {allowed}, got {raw!r}") from exc


def settings_from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``CHAINSIM_*`` variables (``os.environ`` by default)."""
    env = os.environ if env is None else env
    network = (_get(env, "NETWORK") or "test").lower()
    if network not in {"main", "test"}:
        raise SettingsError(f"CHAINSIM_NETWORK must be main or test, got {network!r}")
    fee = _int(env, "FEE_SAT_PER_KB", 1)
    snapshot = _get(env, "SNAPSHOT")
    rejects = _get(env, "REJECT_CALLBACK_SUBSTRINGS")
    miner = _get(env, "MINER_SCRIPT_HEX")
    if miner is not None:
        try:
            bytes.fromhex(miner)
        except ValueError as exc:
            raise SettingsError("CHAINSIM_MINER_SCRIPT_HEX must be hex") from exc
    defaults = Settings()
    return Settings(
        host=_get(env, "HOST") or defaults.host,
        port=_int(env, "PORT", defaults.port),
        snapshot=Path(snapshot) if snapshot else None,
        snapshot_interval_s=_float(env, "SNAPSHOT_INTERVAL_S", defaults.snapshot_interval_s),
        profile=_choice(env, "PROFILE", Profile, defaults.profile),
        policy=Policy(fee_satoshis=fee, fee_bytes=1000),
        node_fee_sat_per_kb=_int(env, "NODE_FEE_SAT_PER_KB", fee),
        mine_interval_ms=_int(env, "MINE_INTERVAL_MS", 0),
        network=network,
        script_verify=_choice(env, "SCRIPT_VERIFY", ScriptVerify, defaults.script_verify),
        progression=_choice(env, "STATUS_PROGRESSION", Progression, defaults.progression),
        stage_delay_ms=_int(env, "STAGE_DELAY_MS", defaults.stage_delay_ms),
        orphan_ttl_s=_float(env, "ORPHAN_TTL_S", defaults.orphan_ttl_s),
        miner_script_hex=(miner or defaults.miner_script_hex).lower(),
        reject_callback_substrings=tuple(s for s in (rejects or "").split(",") if s),
        callback_max_retries=_int(env, "CALLBACK_MAX_RETRIES", defaults.callback_max_retries),
        callback_retry_pause_ms=_int(env, "CALLBACK_RETRY_PAUSE_MS", defaults.callback_retry_pause_ms),
        callback_timeout_s=_float(env, "CALLBACK_TIMEOUT_S", defaults.callback_timeout_s),
        callback_batch_interval_ms=_int(env, "CALLBACK_BATCH_INTERVAL_MS", defaults.callback_batch_interval_ms),
        callback_disable_on_transport_error=_bool(
            env, "CALLBACK_DISABLE_ON_TRANSPORT_ERROR", defaults.callback_disable_on_transport_error
        ),
        woc_page_size=_int(env, "WOC_PAGE_SIZE", defaults.woc_page_size, minimum=1),
        woc_rate_limit_rps=_float(env, "WOC_RATE_LIMIT_RPS", 0.0),
        woc_error_status=_int(env, "WOC_ERROR_STATUS", defaults.woc_error_status, minimum=400),
        woc_index_lag_ms=_int(env, "WOC_INDEX_LAG_MS", 0),
        arc_bearer_tokens=tuple(t for t in (_get(env, "ARC_BEARER_TOKENS") or "").split(",") if t),
    )
