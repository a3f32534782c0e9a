"""Callers and their roles, from bearer tokens.

AUTH_TOKENS is a comma-separated list of `caller_id:role+role:token`. Tokens are compared in
constant time; only their SHA-256 is kept in memory after parsing.

A service may also accept credentials of its own (e.g. the wallet's session tokens): it hands
`runtime.serve` a SessionVerifier, asked only for a bearer token the directory does not know. It
answers the Caller (usually with `account_id` set: a caller limited to one account), None for a
token it does not accept (TOKEN_INVALID), or raises a DomainError (answered as it is).
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from proofline_kit.settings import SettingsError

ROLE_ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Caller:
    caller_id: str
    roles: frozenset[str]
    # Set for a caller limited to one account (a session); "" for the callers of AUTH_TOKENS.
    account_id: str = ""

    def has_role(self, role: str) -> bool:
        return role in self.roles or ROLE_ADMIN in self.roles


ANONYMOUS = Caller("anonymous", frozenset())
# A service's own bearer credentials: the Caller, or None when the token is not one of them.
SessionVerifier = Callable[[str], Awaitable["Caller | None"]]
current_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("current_caller", default=ANONYMOUS)


class TokenDirectory:
    """Maps presented bearer tokens to callers."""

    def __init__(self, entries: list[tuple[bytes, Caller]]) -> None:
        self._entries = entries

    @classmethod
    def parse(cls, spec: str) -> TokenDirectory:
        entries: list[tuple[bytes, Caller]] = []
        for raw in filter(None, (part.strip() for part in spec.split(","))):
            pieces = raw.split(":", 2)
            if len(pieces) != 3 or not all(pieces):
                raise SettingsError("AUTH_TOKENS entries must look like caller_id:role+role:token")
            caller_id, roles, token = pieces
            if len(token) < 8:
                raise SettingsError(f"AUTH_TOKENS token for {caller_id} is shorter than 8 characters")
            entries.append((_digest(token), Caller(caller_id, frozenset(roles.split("+")))))
        return cls(entries)

    def authenticate(self, token: str) -> Caller | None:
        presented = _digest(token)
        found: Caller | None = None
        for digest, caller in self._entries:
            # Compare against every entry so timing does not reveal which one matched.
            if hmac.compare_digest(digest, presented):
                found = caller
        return found

    def __len__(self) -> int:
        return len(self._entries)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
