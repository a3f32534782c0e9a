"""chainsim configuration, read once from the environment (``CHAINSIM_*``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from proofline_kit.settings import EnvReader, SettingsError


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
class ChainsimSettings:
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
    # txids per ``/block/hash/{hash}/page/{n}``: WhatsOnChain's recorded answer for a 2,417-tx block
    # (go-whatsonchain blocks_test.go) carries ``"pages": {"size": 50000, ...}``.
    woc_block_page_size: int = 50_000
    woc_rate_limit_rps: float = 0.0
    woc_error_status: int = 500
    woc_index_lag_ms: int = 0
    arc_bearer_tokens: tuple[str, ...] = ()
    version: str = "sim-0.1.0"

    def with_overrides(self, **changes: Any) -> ChainsimSettings:
        return replace(self, **changes)


def read_chainsim_settings(env: EnvReader | None = None) -> ChainsimSettings:
    """Build :class:`ChainsimSettings` from ``CHAINSIM_*`` variables (``os.environ`` by default)."""
    env = env or EnvReader()
    network = env.string("CHAINSIM_NETWORK", "test").lower()
    if network not in {"main", "test"}:
        raise SettingsError(f"CHAINSIM_NETWORK must be main or test, got {network!r}")
    fee = env.integer("CHAINSIM_FEE_SAT_PER_KB", 1, minimum=0)
    snapshot = env.optional_string("CHAINSIM_SNAPSHOT")
    rejects = env.optional_string("CHAINSIM_REJECT_CALLBACK_SUBSTRINGS")
    miner = env.optional_string("CHAINSIM_MINER_SCRIPT_HEX")
    if miner is not None:
        try:
            bytes.fromhex(miner)
        except ValueError as exc:
            raise SettingsError("CHAINSIM_MINER_SCRIPT_HEX must be hex") from exc
    defaults = ChainsimSettings()
    return ChainsimSettings(
        host=env.string("CHAINSIM_HOST", defaults.host),
        port=env.integer("CHAINSIM_PORT", defaults.port, minimum=0),
        snapshot=Path(snapshot) if snapshot else None,
        snapshot_interval_s=env.number("CHAINSIM_SNAPSHOT_INTERVAL_S", defaults.snapshot_interval_s, minimum=0),
        profile=env.choice("CHAINSIM_PROFILE", Profile, defaults.profile),
        policy=Policy(fee_satoshis=fee, fee_bytes=1000),
        node_fee_sat_per_kb=env.integer("CHAINSIM_NODE_FEE_SAT_PER_KB", fee, minimum=0),
        mine_interval_ms=env.integer("CHAINSIM_MINE_INTERVAL_MS", 0, minimum=0),
        network=network,
        script_verify=env.choice("CHAINSIM_SCRIPT_VERIFY", ScriptVerify, defaults.script_verify),
        progression=env.choice("CHAINSIM_STATUS_PROGRESSION", Progression, defaults.progression),
        stage_delay_ms=env.integer("CHAINSIM_STAGE_DELAY_MS", defaults.stage_delay_ms, minimum=0),
        orphan_ttl_s=env.number("CHAINSIM_ORPHAN_TTL_S", defaults.orphan_ttl_s, minimum=0),
        miner_script_hex=(miner or defaults.miner_script_hex).lower(),
        reject_callback_substrings=tuple(s for s in (rejects or "").split(",") if s),
        callback_max_retries=env.integer("CHAINSIM_CALLBACK_MAX_RETRIES", defaults.callback_max_retries, minimum=0),
        callback_retry_pause_ms=env.integer(
            "CHAINSIM_CALLBACK_RETRY_PAUSE_MS", defaults.callback_retry_pause_ms, minimum=0
        ),
        callback_timeout_s=env.number("CHAINSIM_CALLBACK_TIMEOUT_S", defaults.callback_timeout_s, minimum=0),
        callback_batch_interval_ms=env.integer(
            "CHAINSIM_CALLBACK_BATCH_INTERVAL_MS", defaults.callback_batch_interval_ms, minimum=0
        ),
        callback_disable_on_transport_error=env.flag(
            "CHAINSIM_CALLBACK_DISABLE_ON_TRANSPORT_ERROR", defaults.callback_disable_on_transport_error
        ),
        woc_page_size=env.integer("CHAINSIM_WOC_PAGE_SIZE", defaults.woc_page_size, minimum=1),
        woc_block_page_size=env.integer("CHAINSIM_WOC_BLOCK_PAGE_SIZE", defaults.woc_block_page_size, minimum=1),
        woc_rate_limit_rps=env.number("CHAINSIM_WOC_RATE_LIMIT_RPS", 0.0, minimum=0),
        woc_error_status=env.integer("CHAINSIM_WOC_ERROR_STATUS", defaults.woc_error_status, minimum=400),
        woc_index_lag_ms=env.integer("CHAINSIM_WOC_INDEX_LAG_MS", 0, minimum=0),
        arc_bearer_tokens=tuple(t for t in (env.optional_string("CHAINSIM_ARC_BEARER_TOKENS") or "").split(",") if t),
    )
