"""The pool's AVAILABLE coins as prepared selection candidates, read at most every `ttl_s`.

Intake (Send, EstimateFee) and the send pipeline price against the same reading, and a burst of
sends does not list the pool once each. Coins the pipeline takes leave the reading at once and stay
out of the next readings for a while (a listing that was under way while they were leased may
still show them AVAILABLE), unless their send lets go of them first (`forget`). Change of our own
unmined transactions deeper than `max_depth` is left out (the pool would not lease it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from proofline_kit.wire import Outpoint
from services.wallet.domain.planning import Candidates
from services.wallet.domain.ports import CoinPool, WalletCoin

# How many AVAILABLE coins one reading lists (the pool's first, in its order).
CANDIDATE_WINDOW = 1000
# How long a taken coin is kept out of new readings (a reading in flight when it was taken).
_TAKEN_MEMORY_S = 10.0


class CachedCoinWindow:
    def __init__(
        self,
        source: CoinPool,
        ttl_s: float,
        max_depth: int = 0,
        limit: int = CANDIDATE_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._limit = limit
        self._ttl_s = ttl_s
        self._max_depth = max_depth
        self._clock = clock
        self._candidates = Candidates(())
        self._read_at: float | None = None
        self._taken: dict[Outpoint, float] = {}
        self._lock = asyncio.Lock()

    async def candidates(self) -> Candidates:
        async with self._lock:
            if self._read_at is None or self._clock() - self._read_at >= self._ttl_s:
                coins = await self._source.available_coins(self._limit)
                now = self._clock()
                self._taken = {o: at for o, at in self._taken.items() if now - at < _TAKEN_MEMORY_S}
                self._candidates = Candidates(
                    c for c in coins if c.outpoint not in self._taken and c.unconfirmed_depth <= self._max_depth
                )
                self._read_at = now
            return self._candidates

    def take(self, coins: Iterable[WalletCoin]) -> None:
        taken = list(coins)
        now = self._clock()
        self._taken.update((c.outpoint, now) for c in taken)
        self._candidates.take(taken)

    def forget(self, outpoints: Iterable[Outpoint]) -> None:
        """Their send let go of these coins: a reading may list them again (when the pool does)."""
        for outpoint in outpoints:
            self._taken.pop(outpoint, None)

    def invalidate(self) -> None:
        """The next call reads the pool again (a lease found the reading stale)."""
        self._read_at = None
