"""Distributed locks in Redis (SET NX PX with an owner value), fenced by a database sequence."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from proofline_kit.errors import DomainError, ErrorKind
from services.utxo.domain.ports import HeldLock

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class RedisLocks:
    """The token is drawn *before* the SET, so a holder that stalls and loses the lock always holds
    a smaller token than whoever took it over; the database refuses writes under older tokens."""

    def __init__(
        self, redis: aioredis.Redis, prefix: str, holder_id: str, next_token: Callable[[], Awaitable[int]]
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._holder_id = holder_id
        self._next_token = next_token

    def _key(self, name: str) -> str:
        return f"{self._prefix}:utxo:lock:{name}"

    async def acquire(self, name: str, ttl: timedelta) -> HeldLock | None:
        token = await self._next_token()
        value = f"{self._holder_id}|{token}"
        try:
            taken = await self._redis.set(self._key(name), value, nx=True, px=_ms(ttl))
        except RedisError as error:
            raise _unavailable(error) from None
        return HeldLock(name, token, self._holder_id) if taken else None

    async def renew(self, lock: HeldLock, ttl: timedelta) -> bool:
        try:
            result = await self._redis.eval(_RENEW, 1, self._key(lock.name), _value(lock), str(_ms(ttl)))  # type: ignore[misc]
        except RedisError:
            return False
        return bool(result)

    async def release(self, lock: HeldLock) -> None:
        # A release that fails is harmless: the lock expires by itself.
        with contextlib.suppress(RedisError):
            await self._redis.eval(_RELEASE, 1, self._key(lock.name), _value(lock))  # type: ignore[misc]

    async def holder(self, name: str) -> str:
        try:
            value = await self._redis.get(self._key(name))
        except RedisError:
            return ""
        if value is None:
            return ""
        text = value.decode() if isinstance(value, bytes) else str(value)
        return text.rsplit("|", 1)[0]


class MaintenanceHolder:
    """MaintenanceHolderView over the maintenance lock."""

    def __init__(self, locks: RedisLocks, name: str) -> None:
        self._locks = locks
        self._name = name

    async def holder(self) -> str:
        return await self._locks.holder(self._name)


def _value(lock: HeldLock) -> str:
    return f"{lock.holder}|{lock.token}"


def _ms(ttl: timedelta) -> int:
    return max(1, int(ttl.total_seconds() * 1000))


def _unavailable(error: RedisError) -> DomainError:
    return DomainError(
        ErrorKind.UNAVAILABLE,
        "LOCKS_UNAVAILABLE",
        f"Redis (maintenance locks) is unreachable: {type(error).__name__}",
        retry_after_ms=1_000,
    )
