"""The pool's AVAILABLE coins for pricing sends at intake, read at most every `ttl_s`: Send and
EstimateFee price against the same window, and a burst of sends does not list the pool once each.
The pipeline reads the pool itself (its leases of exact outpoints need the current coins)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from services.wallet.domain.ports import CoinWindow, WalletCoin


class CachedCoinWindow:
    def __init__(self, source: CoinWindow, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._source = source
        self._ttl_s = ttl_s
        self._clock = clock
        self._coins: list[WalletCoin] = []
        self._limit = 0
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    async def available_coins(self, limit: int) -> list[WalletCoin]:
        async with self._lock:
            fresh = self._read_at is not None and self._clock() - self._read_at < self._ttl_s
            if not fresh or limit > self._limit:
                self._coins = await self._source.available_coins(limit)
                self._limit = limit
                self._read_at = self._clock()
            return self._coins[:limit]
