"""Redis parts of intake: the nonce fast path and per-key rate limits.

Both hold only what may be lost. When Redis fails, intake goes on without them: nonces fall back to
PostgreSQL's unique constraint, and rate limits fail open (logged).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from proofline_kit.logging import get_logger

_REDIS_FAILURES = (RedisError, OSError, TimeoutError)


class RedisNonceCache:
    def __init__(self, redis: aioredis.Redis, prefix: str, ttl_s: int) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:publisher:nonce:"
        self._ttl_s = ttl_s
        self._log = get_logger("publisher.nonces")

    def _key(self, pubkey: bytes, nonce: str) -> str:
        return f"{self._prefix}{pubkey.hex()}:{nonce}"

    async def digests(self, keys: Sequence[tuple[bytes, str]]) -> list[bytes | None]:
        if not keys:
            return []
        try:
            values = await self._redis.mget([self._key(pubkey, nonce) for pubkey, nonce in keys])
        except _REDIS_FAILURES as exc:
            self._log.warning("nonce_cache.unavailable", error=type(exc).__name__)
            return [None] * len(keys)
        return [v if isinstance(v, bytes) else None for v in values]

    async def remember(self, entries: Mapping[tuple[bytes, str], bytes]) -> None:
        if not entries:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for (pubkey, nonce), digest in entries.items():
                    pipe.set(self._key(pubkey, nonce), digest, ex=self._ttl_s)
                await pipe.execute()
        except _REDIS_FAILURES as exc:
            self._log.warning("nonce_cache.unavailable", error=type(exc).__name__)


class RedisRateLimiter:
    """Fixed one-second windows per identity key."""

    def __init__(
        self, redis: aioredis.Redis, prefix: str, per_second: int, clock: Callable[[], float] = time.time
    ) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:publisher:rate:"
        self._limit = per_second
        self._clock = clock
        self._log = get_logger("publisher.rate")

    def _window(self) -> tuple[int, int]:
        now = self._clock()
        window = int(now)
        return window, max(1, int((window + 1 - now) * 1000))

    async def take(self, pubkey: bytes, count: int) -> tuple[int, int]:
        window, retry_after_ms = self._window()
        key = f"{self._prefix}{pubkey.hex()}:{window}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incrby(key, count)
                pipe.expire(key, 2)
                total, _ = await pipe.execute()
            granted = max(0, min(count, self._limit - (int(total) - count)))
            if granted < count:
                await self._redis.decrby(key, count - granted)
        except _REDIS_FAILURES as exc:
            self._log.warning("rate_limiter.unavailable", error=type(exc).__name__)
            return count, 0
        return granted, retry_after_ms
