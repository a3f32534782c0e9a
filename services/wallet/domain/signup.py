"""Sign-up by email: a one-time code mailed to the address, verified once, creates its account.

The code is one of `otp.OneTimeCodes` (purpose `signup`): kept only as a keyed hash, short-lived,
with a bounded number of tries. Nothing else is kept before the code is verified, and a verified
sign-up is consumed, so a code works once."""

from __future__ import annotations

import re
import secrets
import unicodedata
from dataclasses import dataclass

from proofline_kit.auth import Caller
from proofline_kit.errors import DomainError, ErrorKind, invalid_argument
from services.wallet.domain.access import require_wallet_role
from services.wallet.domain.accounts import Accounts
from services.wallet.domain.models import Account
from services.wallet.domain.otp import CodePolicy, OneTimeCodes
from services.wallet.domain.ports import RateLimiter

MAX_EMAIL = 254
# Local part and domain of the addresses we mail to: printable, no spaces or angle brackets, a dot
# in the domain. Deliberately narrower than RFC 5322 (no quoted local parts, no IP literals).
_EMAIL = re.compile(r"^[^\s@<>()\[\],;:\"\\]{1,64}@(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_SIGNUP_ID = re.compile(r"^su_[0-9a-f]{32}$")


@dataclass(frozen=True, slots=True)
class SignUpConfig:
    code_ttl_s: float = 600.0
    max_attempts: int = 5
    # The sign-up is remembered this much longer than its code lives, so a late try is told
    # CODE_EXPIRED rather than SIGNUP_NOT_FOUND.
    expired_memory_s: float = 600.0

    @property
    def codes(self) -> CodePolicy:
        return CodePolicy(self.code_ttl_s, self.max_attempts, self.expired_memory_s)


@dataclass(frozen=True, slots=True)
class SignUpStarted:
    signup_id: str
    expires_at: float
    max_attempts: int


def normalise_email(raw: str) -> str:
    """Trimmed, NFC, lower case; EMAIL_INVALID unless it looks like an address we can mail."""
    email = unicodedata.normalize("NFC", raw.strip()).lower()
    if not email or len(email) > MAX_EMAIL or not _EMAIL.match(email):
        raise invalid_argument("EMAIL_INVALID", "email", "not an email address")
    return email


def _rate_limited(what: str, retry_after_s: int) -> DomainError:
    return DomainError(
        ErrorKind.RESOURCE_EXHAUSTED,
        "SIGNUP_RATE_LIMITED",
        f"too many sign-ups {what}; try again later",
        metadata={"limit": what},
        retry_after_ms=retry_after_s * 1000,
    )


def _not_found() -> DomainError:
    return DomainError(ErrorKind.NOT_FOUND, "SIGNUP_NOT_FOUND", "no such sign-up (unknown, used or long expired)")


class SignUps:
    def __init__(
        self,
        accounts: Accounts,
        codes: OneTimeCodes,
        per_address: RateLimiter,
        per_caller: RateLimiter,
    ) -> None:
        self._accounts = accounts
        self._codes = codes
        self._per_address = per_address
        self._per_caller = per_caller

    async def start_sign_up(self, caller: Caller, raw_email: str) -> SignUpStarted:
        require_wallet_role(caller)
        email = normalise_email(raw_email)
        [caller_ok] = await self._per_caller.allow([caller.caller_id])
        if not caller_ok:
            raise _rate_limited("from this caller", 60)
        # Keyed like the code, so the rate limiter's keys do not list the addresses.
        [address_ok] = await self._per_address.allow([self._codes.keyed(email)])
        if not address_ok:
            raise _rate_limited("for this address", 3600)
        signup_id = f"su_{secrets.token_hex(16)}"
        expires_at = await self._codes.issue(
            signup_id, email, email, "Your Proofline sign-up code", "Proofline sign-up code"
        )
        return SignUpStarted(signup_id, expires_at, self._codes.max_attempts)

    async def complete_sign_up(self, caller: Caller, signup_id: str, code: str, label: str) -> tuple[Account, bool]:
        require_wallet_role(caller)
        if not _SIGNUP_ID.match(signup_id):
            raise _not_found()
        pending = await self._codes.verify(signup_id, code, _not_found)
        # The account is created before the sign-up is consumed: a crash in between leaves a code
        # that still works once more and finds the account made.
        account, created = await self._accounts.open_account(caller, pending.subject, label)
        await self._codes.consume(signup_id)
        return account, created
