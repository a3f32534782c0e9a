"""Fault injection (arc-woc.md §6.8): per-face latency, error/timeout/drop rates, rate limits, and
one-shot rules for the next N matching requests (or a fraction of them)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from services.chainsim.chain.status import ArcStatus
from services.chainsim.settings import Policy

FACES = ("arc", "woc")
_HTTP_ACTIONS = ("http", "hang", "drop")
_TX_ACTIONS = ("reject", "orphan", "double_spend", "stuck")


class FaultConfigError(ValueError):
    """The fault configuration posted to /_sim/faults is not understood."""


def _rate(value: object, name: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
        raise FaultConfigError(f"{name} must be a number between 0 and 1")
    return float(value)


def _nonneg(value: object, name: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise FaultConfigError(f"{name} must be a number >= 0")
    return float(value)


@dataclass(slots=True)
class FaceFaults:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    error_statuses: list[int] = field(default_factory=lambda: [500])
    timeout_rate: float = 0.0
    drop_connection_rate: float = 0.0
    rate_limit_rps: float = 0.0
    exempt_keyed: bool = False

    @classmethod
    def parse(cls, body: dict[str, Any], face: str) -> FaceFaults:
        known = set(cls.__slots__)  # type: ignore[attr-defined]
        unknown = set(body) - known
        if unknown:
            raise FaultConfigError(f"unknown {face} fault keys: {sorted(unknown)}")
        out = cls()
        for key in ("latency_ms", "jitter_ms", "rate_limit_rps"):
            if key in body:
                setattr(out, key, _nonneg(body[key], f"{face}.{key}"))
        for key in ("error_rate", "timeout_rate", "drop_connection_rate"):
            if key in body:
                setattr(out, key, _rate(body[key], f"{face}.{key}"))
        if "error_statuses" in body:
            statuses = body["error_statuses"]
            if (
                not isinstance(statuses, list)
                or not statuses
                or not all(isinstance(s, int) and 400 <= s <= 599 for s in statuses)
            ):
                raise FaultConfigError(f"{face}.error_statuses must be a list of HTTP error codes")
            out.error_statuses = list(statuses)
        if "exempt_keyed" in body:
            out.exempt_keyed = bool(body["exempt_keyed"])
        return out

    def as_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]


@dataclass(slots=True)
class FaultRule:
    """``action``: reject:<reason> | orphan | double_spend:<txid> | stuck:<STATUS> | http:<code> | hang | drop."""

    face: str
    txid: str | None
    kind: str
    arg: str
    times: int | None
    rate: float
    used: int = 0
    path: str | None = None  # request-level rules only: the request path ends with this

    @classmethod
    def parse(cls, body: dict[str, Any]) -> FaultRule:
        face = body.get("face", "any")
        if face not in (*FACES, "any"):
            raise FaultConfigError("rule face must be arc, woc or any")
        match = body.get("match", "any")
        txid: str | None = None
        path: str | None = None
        if isinstance(match, dict) and set(match) == {"path"}:
            path = match["path"]
            if not isinstance(path, str) or not path.startswith("/"):
                raise FaultConfigError('match.path must be a path suffix starting with "/"')
        elif isinstance(match, dict):
            txid = match.get("txid")
            if not isinstance(txid, str) or len(txid) != 64:
                raise FaultConfigError("match.txid must be a 64-character txid")
            txid = txid.lower()
        elif match != "any":
            raise FaultConfigError('match must be "any", {"txid": ...} or {"path": ...}')
        action = body.get("action")
        if not isinstance(action, str):
            raise FaultConfigError("rule action is required")
        kind, _, arg = action.partition(":")
        if kind not in _HTTP_ACTIONS + _TX_ACTIONS:
            raise FaultConfigError(f"unknown action {action!r}")
        if path is not None and kind not in _HTTP_ACTIONS:
            raise FaultConfigError("a rule matching a path takes http:<code>, hang or drop")
        if kind == "http" and not (arg.isdigit() and 100 <= int(arg) <= 599):
            raise FaultConfigError("http:<code> needs an HTTP status code")
        if kind == "stuck" and ArcStatus.parse(arg) is None:
            raise FaultConfigError("stuck:<STATUS> needs an ARC status name")
        if kind == "double_spend" and len(arg) != 64:
            raise FaultConfigError("double_spend:<txid> needs a competing txid")
        times = body.get("times")
        if times is not None and (not isinstance(times, int) or times < 1):
            raise FaultConfigError("times must be a positive integer")
        rate = _rate(body.get("rate", 1.0), "rate")
        return cls(face, txid, kind, arg, times, rate, path=path)

    def as_json(self) -> dict[str, Any]:
        return {
            "face": self.face,
            "match": {"path": self.path} if self.path else "any" if self.txid is None else {"txid": self.txid},
            "action": f"{self.kind}:{self.arg}" if self.arg else self.kind,
            "times": self.times,
            "rate": self.rate,
            "used": self.used,
        }


@dataclass(frozen=True, slots=True)
class HttpFault:
    kind: str  # http | hang | drop | rate_limited
    status: int = 0


class _Bucket:
    __slots__ = ("rate", "stamp", "tokens")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class FaultInjector:
    def __init__(self, woc_rate_limit_rps: float = 0.0, seed: int = 0) -> None:
        self._default_woc_rps = woc_rate_limit_rps
        self._seed = seed
        self.reset()

    def reset(self) -> None:
        self.faces: dict[str, FaceFaults] = {f: FaceFaults() for f in FACES}
        self.faces["woc"].rate_limit_rps = self._default_woc_rps
        self.rules: list[FaultRule] = []
        self.health_unhealthy = False
        self.policy_override: dict[str, Any] | None = None
        self.block_height_unavailable = False
        self.rng = random.Random(self._seed)
        self._buckets: dict[str, _Bucket] = {}

    @property
    def active(self) -> bool:
        return bool(self.rules) or any(
            f.latency_ms or f.jitter_ms or f.error_rate or f.timeout_rate or f.drop_connection_rate or f.rate_limit_rps
            for f in self.faces.values()
        )

    def configure(self, body: dict[str, Any]) -> None:
        """Replace the configuration with ``body`` (unmentioned parts return to defaults)."""
        known = {*FACES, "rules", "seed", "health_unhealthy", "policy_override", "block_height_unavailable"}
        unknown = set(body) - known
        if unknown:
            raise FaultConfigError(f"unknown fault keys: {sorted(unknown)}")
        faces = {f: FaceFaults.parse(body.get(f) or {}, f) for f in FACES}
        if "rate_limit_rps" not in (body.get("woc") or {}):
            faces["woc"].rate_limit_rps = self._default_woc_rps
        raw_rules = body.get("rules") or []
        if not isinstance(raw_rules, list):
            raise FaultConfigError("rules must be a list")
        rules = [FaultRule.parse(r) for r in raw_rules]
        policy = body.get("policy_override")
        if policy is not None:
            if not isinstance(policy, dict) or not isinstance(policy.get("miningFee", {}), dict):
                raise FaultConfigError("policy_override must be an object shaped like GET /v1/policy's policy")
            try:
                Policy().overridden(policy)
            except (TypeError, ValueError) as exc:
                raise FaultConfigError(f"policy_override: {exc}") from exc
        seed = body.get("seed", self._seed)
        if not isinstance(seed, int):
            raise FaultConfigError("seed must be an integer")
        self.faces = faces
        self.rules = rules
        self.health_unhealthy = bool(body.get("health_unhealthy", False))
        self.policy_override = policy
        self.block_height_unavailable = bool(body.get("block_height_unavailable", False))
        self.rng = random.Random(seed)
        self._buckets = {}

    def as_json(self) -> dict[str, Any]:
        return {
            **{f: self.faces[f].as_json() for f in FACES},
            "rules": [r.as_json() for r in self.rules],
            "health_unhealthy": self.health_unhealthy,
            "policy_override": self.policy_override,
            "block_height_unavailable": self.block_height_unavailable,
        }

    # ---- evaluation --------------------------------------------------------------------------

    def latency_s(self, face: str) -> float:
        f = self.faces[face]
        if not f.latency_ms and not f.jitter_ms:
            return 0.0
        return (f.latency_ms + self.rng.uniform(0, f.jitter_ms)) / 1000

    def _take_rule(
        self,
        face: str,
        txid: str | None,
        kinds: tuple[str, ...],
        http_needs_txid: bool = False,
        path: str | None = None,
    ) -> FaultRule | None:
        for rule in self.rules:
            if rule.kind not in kinds or rule.face not in (face, "any"):
                continue
            if rule.txid is not None and rule.txid != txid:
                continue
            if rule.path is not None and (path is None or not path.endswith(rule.path)):
                continue
            if http_needs_txid and rule.txid is None and rule.kind in _HTTP_ACTIONS:
                continue
            if rule.times is not None and rule.used >= rule.times:
                continue
            if rule.rate < 1 and self.rng.random() >= rule.rate:
                continue
            rule.used += 1
            return rule
        return None

    def http_fault(self, face: str, path_txid: str | None, keyed: bool, path: str | None = None) -> HttpFault | None:
        """A request-level fault for this request, if any (consumes matching one-shot rules)."""
        f = self.faces[face]
        if f.rate_limit_rps and not (keyed and f.exempt_keyed):
            bucket = self._buckets.get(face)
            if bucket is None or bucket.rate != f.rate_limit_rps:
                bucket = self._buckets[face] = _Bucket(f.rate_limit_rps)
            if not bucket.take():
                return HttpFault("rate_limited", 429)
        if self.rules:
            rule = self._take_rule(face, path_txid, _HTTP_ACTIONS, path=path)
            if rule is not None:
                return HttpFault(rule.kind, int(rule.arg) if rule.kind == "http" else 0)
        if f.error_rate and self.rng.random() < f.error_rate:
            return HttpFault("http", self.rng.choice(f.error_statuses))
        if f.timeout_rate and self.rng.random() < f.timeout_rate:
            return HttpFault("hang")
        if f.drop_connection_rate and self.rng.random() < f.drop_connection_rate:
            return HttpFault("drop")
        return None

    def tx_rule(self, face: str, txid: str) -> FaultRule | None:
        """A per-transaction outcome rule (reject/orphan/double_spend/stuck/http/hang) for ``txid``."""
        if not self.rules:
            return None
        return self._take_rule(face, txid, _TX_ACTIONS + _HTTP_ACTIONS, http_needs_txid=True)
