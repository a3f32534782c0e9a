"""Login challenges in Redis (they live a minute; losing one only means asking for another). One
string per challenge, the key's 33 bytes then the challenge's 32, expiring with it; taken with
GETDEL, so two attempts cannot both read it."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from proofline_kit.errors import DomainError, ErrorKind
from proofline_kit.intents.signatures import PUBKEY_BYTES
from services.wallet.domain.ports import PendingLogin


def login_unavailable(what: str) -> DomainError:
    return DomainError(ErrorKind.UNAVAILABLE, "LOGIN_UNAVAILABLE", f"{what}; try again", retry_after_ms=1000)


class RedisChallenges:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:wallet:login:"

    async def put(self, challenge_id: str, pending: PendingLogin, ttl_s: float) -> None:
        try:
            await self._redis.set(
                self._prefix + challenge_id, pending.pubkey + pending.challenge, px=max(1, int(ttl_s * 1000))
            )
        except (RedisError, OSError):
            raise login_unavailable("the login challenge could not be kept") from None

    async def take(self, challenge_id: str) -> PendingLogin | None:
        try:
            found = await self._redis.getdel(self._prefix + challenge_id)
        except (RedisError, OSError):
            raise login_unavailable("the login challenge could not be read") from None
        if not isinstance(found, bytes) or len(found) <= PUBKEY_BYTES:
            return None
        return PendingLogin(found[:PUBKEY_BYTES], found[PUBKEY_BYTES:])
