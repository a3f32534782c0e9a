"""Sign-ups waiting for their code, in Redis (they live minutes; losing them only means asking for a
new code). One hash per sign-up, expiring with it."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from proofline_kit.errors import DomainError, ErrorKind
from services.wallet.domain.ports import PendingSignUp

# A try is counted only on a sign-up that exists (HINCRBY alone would create a hash with no expiry).
_ATTEMPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return redis.call('HMGET', KEYS[1], 'email', 'mac', 'expires_at', 'attempts')
"""


def email_unavailable(what: str) -> DomainError:
    return DomainError(ErrorKind.UNAVAILABLE, "EMAIL_UNAVAILABLE", f"{what}; try again", retry_after_ms=1000)


class RedisSignUps:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:wallet:signup:"
        self._attempt = redis.register_script(_ATTEMPT)

    async def put(self, signup_id: str, pending: PendingSignUp, ttl_s: float) -> None:
        key = self._prefix + signup_id
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(
                    key,
                    mapping={
                        "email": pending.email,
                        "mac": pending.code_mac,
                        "expires_at": repr(pending.expires_at),
                        "attempts": pending.attempts,
                    },
                )
                pipe.pexpire(key, int(ttl_s * 1000))
                await pipe.execute()
        except (RedisError, OSError):
            raise email_unavailable("the sign-up could not be kept") from None

    async def attempt(self, signup_id: str) -> PendingSignUp | None:
        try:
            found = await self._attempt(keys=[self._prefix + signup_id])
        except (RedisError, OSError):
            raise email_unavailable("the sign-up could not be read") from None
        if found is None:
            return None
        email, mac, expires_at, attempts = (v.decode() if isinstance(v, bytes) else str(v) for v in found)
        return PendingSignUp(email, mac, float(expires_at), int(attempts))

    async def consume(self, signup_id: str) -> bool:
        try:
            return bool(await self._redis.delete(self._prefix + signup_id))
        except (RedisError, OSError):
            raise email_unavailable("the sign-up could not be removed") from None
