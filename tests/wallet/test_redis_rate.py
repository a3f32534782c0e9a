"""The per-account send rate in real Redis: one round trip for a group of sends, each counted."""

from __future__ import annotations

import uuid

import redis.asyncio as aioredis

from services.wallet.adapters.redis_rate import RedisRateLimit


async def test_a_group_counts_every_send_of_an_account_and_refuses_those_past_the_limit(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        rate = RedisRateLimit(client, f"test-{uuid.uuid4().hex}", 3, clock=lambda: 600.0)
        assert await rate.allow(["a", "b", "a", "a", "a"]) == [True, True, True, True, False]
        assert await rate.allow(["b", "a", "b", "b"]) == [True, False, True, False]
    finally:
        await client.aclose()


async def test_redis_unreachable_allows_the_send(redis_url: str) -> None:
    client = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    try:
        rate = RedisRateLimit(client, "unreachable", 1)
        assert await rate.allow(["a", "a"]) == [True, True]
    finally:
        await client.aclose()
