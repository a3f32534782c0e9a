"""Who may call what: role `wallet` (the identity/wallet front end) or `admin`."""

from __future__ import annotations

from proofline_kit.auth import ROLE_ADMIN, Caller
from proofline_kit.errors import DomainError, ErrorKind

ROLE_WALLET = "wallet"


def _role_required(caller: Caller, role: str) -> DomainError:
    return DomainError(
        ErrorKind.PERMISSION_DENIED,
        "ROLE_REQUIRED",
        f"this operation needs the role {role}",
        metadata={"role": role, "callerId": caller.caller_id},
    )


def require_wallet_role(caller: Caller) -> None:
    if not caller.has_role(ROLE_WALLET):
        raise _role_required(caller, ROLE_WALLET)


def require_admin(caller: Caller) -> None:
    if ROLE_ADMIN not in caller.roles:
        raise _role_required(caller, ROLE_ADMIN)
