"""One-time codes mailed to an address: the part sign-up and recovery share.

A code is 6 random digits, kept only as a keyed hash (HMAC-SHA256 under the server's OTP secret,
with a domain string naming its purpose and bound to its id), in the short-lived code store of its
purpose, with a bounded number of tries. `verify` answers the pending code when the digits match
and leaves consuming it to the caller, so a use case finishes its work before the code is gone."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from proofline_kit.errors import DomainError, ErrorKind, invalid_argument
from services.wallet.domain.ports import CodeStore, Mailer, PendingCode

CODE_DIGITS = 6
_CODE = re.compile(rf"^[0-9]{{{CODE_DIGITS}}}$")


@dataclass(frozen=True, slots=True)
class CodePolicy:
    code_ttl_s: float = 600.0
    max_attempts: int = 5
    # A code is remembered this much longer than it lives, so a late try is told CODE_EXPIRED
    # rather than that the code is unknown.
    expired_memory_s: float = 600.0


def code_mac(secret: bytes, code_id: str, code: str, purpose: str = "signup") -> str:
    return hmac.new(secret, f"proofline/{purpose}/v1:{code_id}:{code}".encode(), hashlib.sha256).hexdigest()


class OneTimeCodes:
    """The codes of one purpose (`signup`, `recovery`): issued by mail, verified with bounded tries."""

    def __init__(
        self,
        purpose: str,
        codes: CodeStore,
        mailer: Mailer,
        secret: bytes,
        policy: CodePolicy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._purpose = purpose
        self._codes = codes
        self._mailer = mailer
        self._secret = secret
        self._policy = policy
        self._clock = clock

    @property
    def max_attempts(self) -> int:
        return self._policy.max_attempts

    def keyed(self, value: str) -> str:
        """`value` under the OTP secret (for rate-limiter keys that must not list addresses)."""
        return code_mac(self._secret, "address", value, self._purpose)

    async def issue(self, code_id: str, subject: str, to: str, title: str, what: str) -> float:
        """Mails a fresh code for `subject` to `to`; its expiry (epoch seconds). Nothing is kept
        when the mail cannot be sent."""
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        policy = self._policy
        expires_at = self._clock() + policy.code_ttl_s
        pending = PendingCode(subject, code_mac(self._secret, code_id, code, self._purpose), expires_at, 0)
        await self._codes.put(code_id, pending, policy.code_ttl_s + policy.expired_memory_s)
        minutes = max(1, round(policy.code_ttl_s / 60))
        try:
            await self._mailer.send(
                to,
                title,
                f"Your {what} is {code}.\n\nIt works once, for {minutes} minutes.\n"
                "If you did not ask for it, ignore this mail.\n",
            )
        except DomainError:
            await self._codes.consume(code_id)
            raise
        return expires_at

    async def verify(self, code_id: str, code: str, not_found: Callable[[], DomainError]) -> PendingCode:
        """The pending code when `code` is its digits (one try counted); raises otherwise."""
        if not _CODE.match(code):
            raise invalid_argument("CODE_INVALID", "code", f"{CODE_DIGITS} digits")
        pending = await self._codes.attempt(code_id)
        if pending is None:
            raise not_found()
        if self._clock() >= pending.expires_at:
            await self._codes.consume(code_id)
            raise DomainError(ErrorKind.FAILED_PRECONDITION, "CODE_EXPIRED", "the code has expired; start again")
        if pending.attempts > self._policy.max_attempts:
            await self._codes.consume(code_id)
            raise DomainError(ErrorKind.RESOURCE_EXHAUSTED, "CODE_ATTEMPTS_EXHAUSTED", "no tries left; start again")
        if not hmac.compare_digest(pending.code_mac, code_mac(self._secret, code_id, code, self._purpose)):
            left = self._policy.max_attempts - pending.attempts
            if left <= 0:
                await self._codes.consume(code_id)
                raise DomainError(
                    ErrorKind.RESOURCE_EXHAUSTED, "CODE_ATTEMPTS_EXHAUSTED", "wrong code and no tries left; start again"
                )
            error = invalid_argument("CODE_INVALID", "code", "not the code that was mailed")
            raise DomainError(
                error.kind,
                error.reason,
                error.message,
                metadata={**error.metadata, "attemptsLeft": str(left)},
                field_violations=error.field_violations,
            )
        return pending

    async def consume(self, code_id: str) -> bool:
        return await self._codes.consume(code_id)
