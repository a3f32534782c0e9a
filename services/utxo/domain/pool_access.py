"""Who may use the pool, and a caller's lease as the pool shows it."""

from __future__ import annotations

from collections.abc import Sequence

from proofline_kit.auth import Caller
from services.utxo.domain import errors
from services.utxo.domain.models import Lease, LeaseRow, LeaseState, Utxo
from services.utxo.domain.ports import UnitOfWork

ROLE_POOL = "pool"


def require_pool(caller: Caller) -> None:
    if not caller.has_role(ROLE_POOL):
        raise errors.role_required(ROLE_POOL, caller.caller_id)


async def owned_lease(uow: UnitOfWork, caller: Caller, lease_id: str, *, lock: bool) -> LeaseRow:
    row = await uow.lease_by_id(lease_id, for_update=lock)
    if row is None:
        raise errors.lease_not_found(lease_id)
    if row.caller_id != caller.caller_id:
        raise errors.lease_not_owned(lease_id, caller.caller_id)
    return row


def lease_view(row: LeaseRow, held: Sequence[Utxo]) -> Lease:
    if not held:
        state = LeaseState.CLOSED
    elif row.expires_at > row.db_now:
        state = LeaseState.LIVE
    else:
        state = LeaseState.EXPIRED
    return Lease(
        lease_id=row.lease_id,
        fencing_token=row.fencing_token,
        state=state,
        holder=row.holder,
        caller_id=row.caller_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        utxos=tuple(held),
    )
