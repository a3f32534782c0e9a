"""Redis (what may be lost: caches, nonce fast path, locks, wake-ups) with a blocking pool."""

from __future__ import annotations

import redis.asyncio as aioredis


def create_redis(url: str, max_connections: int = 32, timeout_s: float = 5.0) -> aioredis.Redis:
    """A client that waits for a free connection instead of failing when the pool is busy."""
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=timeout_s)
    return aioredis.Redis(connection_pool=pool)
