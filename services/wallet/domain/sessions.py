"""Session tokens: HS256 JWTs issued by CompleteLogin, accepted as callers limited to one account.

Each token is signed under its own key: HKDF-SHA256 of the server secret (WALLET_SESSION_SECRET)
with an `info` that binds the pubkey and the account id, so a token verifies only for the key and
account it names. Claims: sub (account id), pk (compressed pubkey, hex), iat, exp, jti.

Verifying reads the claims unverified only to derive the key, then verifies with HS256 alone, exp
and iat required. Then the key must still be linked to that account and active: one primary-key
read per call, no cache, so a revocation ends the key's sessions at once."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from proofline_kit.auth import Caller
from services.wallet.domain.access import ROLE_SESSION
from services.wallet.domain.models import IdentityStatus
from services.wallet.domain.ports import Store

ALGORITHM = "HS256"
_INFO_PREFIX = b"proofline/session/v1\x00"
_PUBKEY_HEX = re.compile(r"^0[23][0-9a-f]{64}$")
_REQUIRED = ["sub", "pk", "iat", "exp", "jti"]
MAX_ACCOUNT_ID = 64


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    account_id: str
    expires_at: float


def session_caller(account_id: str) -> Caller:
    return Caller(f"session:{account_id}", frozenset({ROLE_SESSION}), account_id)


class SessionTokens:
    def __init__(self, store: Store, secret: bytes, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._secret = secret
        self._ttl_s = ttl_s
        self._clock = clock

    def _key(self, pubkey: bytes, account_id: str) -> bytes:
        info = _INFO_PREFIX + pubkey + b"\x00" + account_id.encode()
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(self._secret)

    def issue(self, pubkey: bytes, account_id: str) -> Session:
        now = int(self._clock())
        expires_at = now + max(1, round(self._ttl_s))
        claims = {"sub": account_id, "pk": pubkey.hex(), "iat": now, "exp": expires_at, "jti": secrets.token_hex(16)}
        token = jwt.encode(claims, self._key(pubkey, account_id), algorithm=ALGORITHM)
        return Session(token, account_id, float(expires_at))

    async def verify(self, token: str) -> Caller | None:
        """The session's caller, or None: not a session token, tampered, expired, or its key
        revoked or no longer the account's."""
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None
        account_id, pubkey_hex = unverified.get("sub"), unverified.get("pk")
        if not isinstance(account_id, str) or not 0 < len(account_id) <= MAX_ACCOUNT_ID:
            return None
        if not isinstance(pubkey_hex, str) or not _PUBKEY_HEX.match(pubkey_hex):
            return None
        pubkey = bytes.fromhex(pubkey_hex)
        try:
            jwt.decode(
                token,
                self._key(pubkey, account_id),
                algorithms=[ALGORITHM],
                options={"require": _REQUIRED, "verify_exp": True, "verify_iat": True},
            )
        except jwt.PyJWTError:
            return None
        async with self._store.reader() as uow:
            link = await uow.identity_link(pubkey)
        if (
            link is None
            or link.account_id != account_id
            or link.identity is None
            or link.identity.status is not IdentityStatus.ACTIVE
        ):
            return None
        return session_caller(account_id)
