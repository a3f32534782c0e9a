"""The identity keys linked to accounts (migration 0004)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from proofline_kit.database import Queries
from services.wallet.domain.models import Identity, IdentityLink, IdentityStatus

_COLUMNS = "pubkey, account_id, label, status, owner_ref, registered_by, registered_at, revoked_at, revoke_reason"


def _link(row: asyncpg.Record) -> IdentityLink:
    status = row["status"]
    identity = (
        None
        if status == "pending"
        else Identity(
            pubkey=bytes(row["pubkey"]),
            label=row["label"],
            owner_ref=row["owner_ref"],
            status=IdentityStatus(status),
            registered_by=row["registered_by"],
            created_at=row["registered_at"],
            revoked_at=row["revoked_at"],
            revoke_reason=row["revoke_reason"],
        )
    )
    return IdentityLink(bytes(row["pubkey"]), row["account_id"], row["label"], identity)


class IdentityQueries(Queries):
    async def claim_identity(self, pubkey: bytes, account_id: str, label: str, caller_id: str) -> IdentityLink:
        """The key's link: a new pending one for `account_id`, or the one it already has (maybe
        another account's)."""
        row = await self._conn.fetchrow(
            f"""WITH inserted AS (
                    INSERT INTO identities (pubkey, account_id, label, created_by) VALUES ($1, $2, $3, $4)
                    ON CONFLICT (pubkey) DO NOTHING
                    RETURNING {_COLUMNS}
                )
                SELECT {_COLUMNS} FROM inserted
                UNION ALL
                SELECT {_COLUMNS} FROM identities WHERE pubkey = $1 AND NOT EXISTS (SELECT 1 FROM inserted)""",
            pubkey,
            account_id,
            label,
            caller_id,
        )
        if row is None:  # the other claim was deleted between the insert and the read: try again
            return await self.claim_identity(pubkey, account_id, label, caller_id)
        return _link(row)

    async def identity_link(self, pubkey: bytes) -> IdentityLink | None:
        row = await self._conn.fetchrow(f"SELECT {_COLUMNS} FROM identities WHERE pubkey = $1", pubkey)
        return _link(row) if row else None

    async def drop_pending_identity(self, pubkey: bytes, account_id: str) -> None:
        await self._conn.execute(
            "DELETE FROM identities WHERE pubkey = $1 AND account_id = $2 AND status = 'pending'", pubkey, account_id
        )

    async def store_identity(self, account_id: str, identity: Identity) -> None:
        """The publisher's answer for a key of `account_id` (registered, or revoked)."""
        await self._conn.execute(
            """UPDATE identities SET status = $3, owner_ref = $4, registered_by = $5,
                   registered_at = COALESCE($6, registered_at, now()),
                   revoked_at = CASE WHEN $3 = 'revoked' THEN COALESCE($7, now()) END, revoke_reason = $8
               WHERE pubkey = $1 AND account_id = $2""",
            identity.pubkey,
            account_id,
            identity.status.value,
            identity.owner_ref,
            identity.registered_by,
            identity.created_at,
            identity.revoked_at,
            identity.revoke_reason,
        )

    async def linked_keys(self, account_id: str, pubkeys: Sequence[bytes]) -> set[bytes]:
        """Which of `pubkeys` are linked to the account (one query for a whole batch)."""
        rows = await self._conn.fetch(
            "SELECT pubkey FROM identities WHERE account_id = $1 AND pubkey = ANY($2::bytea[])",
            account_id,
            list(set(pubkeys)),
        )
        return {bytes(r["pubkey"]) for r in rows}
