"""One-time codes waiting to be entered (sign-ups, recoveries), in Redis: they live minutes, and
losing them only means asking for a new code. One hash per code, expiring with it; each purpose has
its own key space."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from proofline_kit.errors import DomainError, ErrorKind
from services.wallet.domain.ports import PendingCode

# A try is counted only on a code that exists (HINCRBY alone would create a hash with no expiry).
_ATTEMPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return redis.call('HMGET', KEYS[1], 'subject', 'mac', 'expires_at', 'attempts')
"""


def email_unavailable(what: str) -> DomainError:
    return DomainError(ErrorKind.UNAVAILABLE, "EMAIL_UNAVAILABLE", f"{what}; try again", retry_after_ms=1000)


class RedisCodes:
    def __init__(self, redis: aioredis.Redis, prefix: str, purpose: str = "signup") -> None:
        self._redis = redis
        self._prefix = f"{prefix}:wallet:{purpose}:"
        self._purpose = purpose
        self._attempt = redis.register_script(_ATTEMPT)

    async def put(self, code_id: str, pending: PendingCode, ttl_s: float) -> None:
        key = self._prefix + code_id
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(
                    key,
                    mapping={
                        "subject": pending.subject,
                        "mac": pending.code_mac,
                        "expires_at": repr(pending.expires_at),
                        "attempts": pending.attempts,
                    },
                )
                pipe.pexpire(key, int(ttl_s * 1000))
                await pipe.execute()
        except (RedisError, OSError):
            raise email_unavailable(f"the {self._purpose} code could not be kept") from None

    async def attempt(self, code_id: str) -> PendingCode | None:
        try:
            found = await self._attempt(keys=[self._prefix + code_id])
        except (RedisError, OSError):
            raise email_unavailable(f"the {self._purpose} code could not be read") from None
        if found is None:
            return None
        subject, mac, expires_at, attempts = (v.decode() if isinstance(v, bytes) else str(v) for v in found)
        return PendingCode(subject, mac, float(expires_at), int(attempts))

    async def consume(self, code_id: str) -> bool:
        try:
            return bool(await self._redis.delete(self._prefix + code_id))
        except (RedisError, OSError):
            raise email_unavailable(f"the {self._purpose} code could not be removed") from None
