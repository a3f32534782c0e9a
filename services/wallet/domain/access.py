"""Who may call what: role `wallet` (the identity/wallet front end) or `admin`, or a session.

A session (role `session`, from a login with an identity key) is a caller limited to one account,
`Caller.account_id`: it may read that account and submit intents with its keys, and send from it
only where the wallet allows user sends (WALLET_USER_SENDS). Any other account is PERMISSION_DENIED,
ACCOUNT_FORBIDDEN; an operation not open to sessions is PERMISSION_DENIED, ROLE_REQUIRED. A
transaction or job looked up by id that is not the session's account's is NOT_FOUND, as if it did
not exist (the use case checks `may_see` once it knows the owner)."""

from __future__ import annotations

from proofline_kit.auth import ROLE_ADMIN, Caller
from proofline_kit.errors import DomainError, ErrorKind

ROLE_WALLET = "wallet"
ROLE_SESSION = "session"


def _role_required(caller: Caller, role: str) -> DomainError:
    return DomainError(
        ErrorKind.PERMISSION_DENIED,
        "ROLE_REQUIRED",
        f"this operation needs the role {role}",
        metadata={"role": role, "callerId": caller.caller_id},
    )


def account_forbidden(caller: Caller) -> DomainError:
    return DomainError(
        ErrorKind.PERMISSION_DENIED,
        "ACCOUNT_FORBIDDEN",
        "a session may only use its own account",
        metadata={"callerId": caller.caller_id},
    )


def is_session(caller: Caller) -> bool:
    return ROLE_SESSION in caller.roles and bool(caller.account_id)


def require_wallet_role(caller: Caller) -> None:
    if not caller.has_role(ROLE_WALLET):
        raise _role_required(caller, ROLE_WALLET)


def require_admin(caller: Caller) -> None:
    if ROLE_ADMIN not in caller.roles:
        raise _role_required(caller, ROLE_ADMIN)


def require_account_access(caller: Caller, account_id: str, *, sessions: bool = True) -> None:
    """Role `wallet`/`admin`: any account. A session: its own account, where `sessions` allows."""
    if caller.has_role(ROLE_WALLET):
        return
    if sessions and is_session(caller):
        if account_id != caller.account_id:
            raise account_forbidden(caller)
        return
    raise _role_required(caller, ROLE_WALLET)


def require_reader(caller: Caller) -> None:
    """A lookup by id (the account is known only after it): role `wallet`/`admin`, or a session."""
    if not (caller.has_role(ROLE_WALLET) or is_session(caller)):
        raise _role_required(caller, ROLE_WALLET)


def may_see(caller: Caller, account_id: str) -> bool:
    """Whether a record of `account_id` found by id is the caller's to see."""
    return caller.has_role(ROLE_WALLET) or (is_session(caller) and caller.account_id == account_id)
