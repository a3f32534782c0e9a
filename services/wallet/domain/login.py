"""Passwordless login with an identity key: a challenge, signed, answers a session token.

BeginLogin checks the key can log in (linked to an account and active: IDENTITY_NOT_FOUND /
IDENTITY_REVOKED are raised here, before a challenge is made, and again at CompleteLogin in case the
key was revoked in between), then keeps the key and 32 random bytes in the challenge store (Redis
only, WALLET_LOGIN_CHALLENGE_TTL_MS). CompleteLogin takes the challenge out of the store first, in
one atomic step, so that a challenge answers one attempt whatever its outcome (no replays, no
guessing), then checks the signature with proofline_kit.intents' strict-DER, low-S verification
over `login_digest`."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from proofline_kit.auth import Caller
from proofline_kit.errors import DomainError, ErrorKind, invalid_argument
from proofline_kit.intents import signatures
from services.wallet.domain.access import require_wallet_role
from services.wallet.domain.identities import identity_not_found
from services.wallet.domain.models import IdentityLink, IdentityStatus
from services.wallet.domain.ports import ChallengeStore, PendingLogin, RateLimiter, Store
from services.wallet.domain.sessions import Session, SessionTokens

LOGIN_PREFIX = b"proofline/login/v1"
CHALLENGE_BYTES = 32
_CHALLENGE_ID = re.compile(r"^lc_[0-9a-f]{32}$")


@dataclass(frozen=True, slots=True)
class LoginConfig:
    challenge_ttl_s: float = 60.0


@dataclass(frozen=True, slots=True)
class LoginChallenge:
    challenge_id: str
    challenge: bytes
    expires_at: float


def login_message(challenge: bytes, pubkey: bytes) -> bytes:
    """What the identity key signs (as SHA-256 of it): the prefix, a zero byte, challenge, pubkey."""
    return LOGIN_PREFIX + b"\x00" + challenge + pubkey


def login_digest(challenge: bytes, pubkey: bytes) -> bytes:
    return hashlib.sha256(login_message(challenge, pubkey)).digest()


def _rate_limited(what: str) -> DomainError:
    return DomainError(
        ErrorKind.RESOURCE_EXHAUSTED,
        "LOGIN_RATE_LIMITED",
        f"too many logins {what}; try again later",
        metadata={"limit": what},
        retry_after_ms=60_000,
    )


def _challenge_not_found() -> DomainError:
    return DomainError(
        ErrorKind.NOT_FOUND, "LOGIN_CHALLENGE_NOT_FOUND", "no such login challenge (unknown, used or expired)"
    )


def _revoked(pubkey: bytes) -> DomainError:
    return DomainError(
        ErrorKind.FAILED_PRECONDITION,
        "IDENTITY_REVOKED",
        "this identity key is revoked",
        metadata={"pubkey": pubkey.hex()},
    )


class Logins:
    def __init__(
        self,
        store: Store,
        challenges: ChallengeStore,
        per_key: RateLimiter,
        per_caller: RateLimiter,
        tokens: SessionTokens,
        config: LoginConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._challenges = challenges
        self._per_key = per_key
        self._per_caller = per_caller
        self._tokens = tokens
        self._config = config
        self._clock = clock

    async def _active_link(self, pubkey: bytes) -> IdentityLink:
        async with self._store.reader() as uow:
            link = await uow.identity_link(pubkey)
        if link is None or link.identity is None:
            raise identity_not_found(pubkey)
        if link.identity.status is not IdentityStatus.ACTIVE:
            raise _revoked(pubkey)
        return link

    async def begin(self, caller: Caller, pubkey: bytes) -> LoginChallenge:
        require_wallet_role(caller)
        if not signatures.is_compressed_pubkey(pubkey):
            raise invalid_argument("PUBKEY_INVALID", "pubkey", "must be a 33-byte compressed secp256k1 public key")
        [caller_ok] = await self._per_caller.allow([caller.caller_id])
        if not caller_ok:
            raise _rate_limited("from this caller")
        [key_ok] = await self._per_key.allow([pubkey.hex()])
        if not key_ok:
            raise _rate_limited("for this key")
        await self._active_link(pubkey)
        challenge_id = f"lc_{secrets.token_hex(16)}"
        challenge = secrets.token_bytes(CHALLENGE_BYTES)
        expires_at = self._clock() + self._config.challenge_ttl_s
        await self._challenges.put(challenge_id, PendingLogin(pubkey, challenge), self._config.challenge_ttl_s)
        return LoginChallenge(challenge_id, challenge, expires_at)

    async def complete(self, caller: Caller, challenge_id: str, signature: bytes) -> Session:
        require_wallet_role(caller)
        if not _CHALLENGE_ID.match(challenge_id):
            raise _challenge_not_found()
        pending = await self._challenges.take(challenge_id)
        if pending is None:
            raise _challenge_not_found()
        try:
            _, s = signatures.parse_der(signature)
        except signatures.MalformedSignature as exc:
            raise invalid_argument("SIGNATURE_MALFORMED", "signature", f"not a strict DER signature: {exc}") from None
        if not signatures.is_low_s(s):
            raise invalid_argument("SIGNATURE_HIGH_S", "signature", "S must be at most n/2 (low-S)")
        if not signatures.verify(pending.pubkey, signature, login_digest(pending.challenge, pending.pubkey)):
            raise DomainError(
                ErrorKind.UNAUTHENTICATED,
                "LOGIN_SIGNATURE_MISMATCH",
                "the signature is not the identity key's over this challenge",
            )
        link = await self._active_link(pending.pubkey)
        return self._tokens.issue(pending.pubkey, link.account_id)
