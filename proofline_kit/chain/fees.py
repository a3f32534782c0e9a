"""The mining fee rate: ARC's ``/v1/policy`` rate, cached for a while and never below a floor."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from proofline_kit.outbound.deadline import Deadline

from .errors import ChainUnavailable


@dataclass(frozen=True, slots=True)
class FeeRate:
    """``satoshis`` per ``bytes`` (ARC's miningFee shape; keeps sub-1 sat/kB rates exact)."""

    satoshis: int
    bytes: int = 1000

    def __post_init__(self) -> None:
        for name in ("satoshis", "bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"FeeRate.{name} must be an int")
        if self.satoshis < 0 or self.bytes <= 0:
            raise ValueError("FeeRate needs satoshis >= 0 and bytes > 0")

    def fee_for(self, size_bytes: int) -> int:
        """Fee for a transaction of ``size_bytes`` raw bytes, rounded up as ARC checks it."""
        return -(-size_bytes * self.satoshis // self.bytes)

    def at_least(self, floor: FeeRate) -> FeeRate:
        return floor if self.satoshis * floor.bytes < floor.satoshis * self.bytes else self


# ARC's default (1 sat/kB); py-sdk clamps to the same minimum.
DEFAULT_FLOOR = FeeRate(1, 1000)


class FeeSource(Enum):
    FRESH = "fresh"  # fetched just now
    CACHED = "cached"  # fetched within the TTL
    STALE = "stale"  # the last good value, served because the latest fetch failed
    FLOOR = "floor"  # nothing ever fetched: the configured floor


@dataclass(frozen=True, slots=True)
class FeeQuote:
    rate: FeeRate
    source: FeeSource


class FeeRateSource(Protocol):
    async def fee_rate(self, *, deadline: Deadline | None = None) -> FeeRate: ...


class FeeRateCache:
    """Serves the policy rate for ``ttl_s``; concurrent callers share one fetch. When the provider
    is down it serves the last good rate (or the floor) and waits ``error_backoff_s`` before asking
    again, so a dead ARC does not add a timeout to every fee estimate."""

    def __init__(
        self,
        source: FeeRateSource,
        *,
        ttl_s: float = 300.0,
        floor: FeeRate = DEFAULT_FLOOR,
        error_backoff_s: float = 10.0,
        fetch_budget_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._ttl_s = ttl_s
        self._floor = floor
        self._error_backoff_s = error_backoff_s
        self._fetch_budget_s = fetch_budget_s
        self._clock = clock
        self._lock = asyncio.Lock()
        self._rate: FeeRate | None = None
        self._fresh_until = float("-inf")
        self._next_try = float("-inf")

    async def quote(self, *, deadline: Deadline | None = None) -> FeeQuote:
        if self._rate is not None and self._clock() < self._fresh_until:
            return FeeQuote(self._rate, FeeSource.CACHED)
        async with self._lock:
            now = self._clock()
            if self._rate is not None and now < self._fresh_until:
                return FeeQuote(self._rate, FeeSource.CACHED)
            if now >= self._next_try:
                budget = deadline or Deadline.after(self._fetch_budget_s, self._clock)
                try:
                    fetched = await self._source.fee_rate(deadline=budget)
                except ChainUnavailable:
                    self._next_try = self._clock() + self._error_backoff_s
                else:
                    self._rate = fetched.at_least(self._floor)
                    self._fresh_until = self._clock() + self._ttl_s
                    return FeeQuote(self._rate, FeeSource.FRESH)
            if self._rate is not None:
                return FeeQuote(self._rate, FeeSource.STALE)
            return FeeQuote(self._floor, FeeSource.FLOOR)

    async def rate(self, *, deadline: Deadline | None = None) -> FeeRate:
        return (await self.quote(deadline=deadline)).rate
