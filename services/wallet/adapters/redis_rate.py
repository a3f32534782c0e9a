"""Sends per account per minute, in Redis (fixed windows). Redis down: allowed (the ledger, not the
rate limit, is what keeps money safe)."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from proofline_kit.logging import get_logger


class RedisSendRate:
    def __init__(
        self, redis: aioredis.Redis, prefix: str, per_minute: int, clock: Callable[[], float] = time.time
    ) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:wallet:sends:"
        self._limit = per_minute
        self._clock = clock
        self._log = get_logger("wallet.rate")

    async def allow(self, key: str) -> bool:
        window = int(self._clock() // 60)
        name = f"{self._prefix}{key}:{window}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(name)
                pipe.expire(name, 120)
                count, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            self._log.warning("rate_limiter.unavailable", error=type(exc).__name__)
            return True
        return int(count) <= self._limit
