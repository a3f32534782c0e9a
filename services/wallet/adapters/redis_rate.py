"""Counts per key in fixed windows, in Redis: sends per account per minute, sign-ups per address per
hour and per caller per minute. Redis down: allowed (for sends the ledger, not the rate limit, keeps
money safe; a sign-up cannot proceed without Redis anyway)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from proofline_kit.logging import get_logger


class RedisRateLimit:
    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str,
        limit: int,
        *,
        name: str = "sends",
        window_s: int = 60,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:wallet:{name}:"
        self._limit = limit
        self._window_s = window_s
        self._clock = clock
        self._log = get_logger("wallet.rate")

    async def allow(self, keys: Sequence[str]) -> list[bool]:
        if self._limit <= 0:
            return [True] * len(keys)
        window = int(self._clock() // self._window_s)
        counts = Counter(keys)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                for key, n in counts.items():
                    name = f"{self._prefix}{key}:{window}"
                    pipe.incrby(name, n)
                    pipe.expire(name, 2 * self._window_s)
                replies = await pipe.execute()
        except (RedisError, OSError) as exc:
            self._log.warning("rate_limiter.unavailable", error=type(exc).__name__)
            return [True] * len(keys)
        # The k-th of a key's n sends in this call is the (after - n + k)-th of its window.
        seen = {key: int(after) - n for (key, n), after in zip(counts.items(), replies[::2], strict=True)}
        allowed = []
        for key in keys:
            seen[key] += 1
            allowed.append(seen[key] <= self._limit)
        return allowed
