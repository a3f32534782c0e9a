"""Identity keys: registration, revocation (and the QUEUED jobs it cancels), listing."""

from __future__ import annotations

from collections.abc import Iterable

from proofline_kit.database import Queries
from services.publisher.domain.models import Actor, Identity, IdentityStatus
from services.publisher.store.rows import IDENTITY_COLUMNS, identity_from_row


class IdentityQueries(Queries):
    async def insert_identity(self, pubkey: bytes, label: str, owner_ref: str, actor: Actor) -> Identity | None:
        row = await self._conn.fetchrow(
            f"""WITH inserted AS (
                    INSERT INTO identities (pubkey, label, owner_ref, registered_by)
                    VALUES ($1, $2, $3, $4)
                    ON CONFLICT (pubkey) DO NOTHING
                    RETURNING {IDENTITY_COLUMNS}
                ), audit AS (
                    INSERT INTO identity_events (pubkey, action, actor, request_id)
                    SELECT pubkey, 'registered', $4, $5 FROM inserted
                )
                SELECT {IDENTITY_COLUMNS} FROM inserted""",
            pubkey,
            label,
            owner_ref,
            actor.caller_id,
            actor.request_id,
        )
        return identity_from_row(row) if row else None

    async def identity(self, pubkey: bytes, *, for_update: bool = False) -> Identity | None:
        lock = " FOR UPDATE" if for_update else ""
        row = await self._conn.fetchrow(f"SELECT {IDENTITY_COLUMNS} FROM identities WHERE pubkey = $1{lock}", pubkey)
        return identity_from_row(row) if row else None

    async def identity_statuses(self, pubkeys: Iterable[bytes]) -> dict[bytes, IdentityStatus]:
        rows = await self._conn.fetch(
            "SELECT pubkey, status FROM identities WHERE pubkey = ANY($1::bytea[])", list(set(pubkeys))
        )
        return {bytes(row["pubkey"]): IdentityStatus(row["status"]) for row in rows}

    async def revoke_identity(self, pubkey: bytes, reason: str, actor: Actor) -> Identity:
        row = await self._conn.fetchrow(
            f"""UPDATE identities SET status = 'revoked', revoked_at = now(), revoked_by = $2, revoke_reason = $3
                WHERE pubkey = $1 AND status = 'active'
                RETURNING {IDENTITY_COLUMNS}""",
            pubkey,
            actor.caller_id,
            reason,
        )
        assert row is not None, "revoke_identity needs an active identity locked by the caller"
        return identity_from_row(row)

    async def append_identity_event(
        self, pubkey: bytes, action: str, actor: Actor, reason: str, cancelled_jobs: int
    ) -> None:
        await self._conn.execute(
            """INSERT INTO identity_events (pubkey, action, actor, request_id, reason, cancelled_jobs)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            pubkey,
            action,
            actor.caller_id,
            actor.request_id,
            reason,
            cancelled_jobs,
        )

    async def cancel_queued_jobs(self, pubkey: bytes, detail: str, actor: Actor) -> int:
        """QUEUED jobs of the key -> FAILED (IDENTITY_REVOKED). Jobs a worker holds are skipped by
        the status guard: a claim that commits first wins."""
        count = await self._conn.fetchval(
            """WITH moved AS (
                   UPDATE jobs SET status = 'failed', error_reason = 'IDENTITY_REVOKED', error_detail = $2
                   WHERE identity_pubkey = $1 AND status = 'queued'
                   RETURNING id
               ), audit AS (
                   INSERT INTO job_events (job_id, from_status, to_status, actor, reason, detail, request_id)
                   SELECT id, 'queued', 'failed', $3, 'IDENTITY_REVOKED', $2, $4 FROM moved
               )
               SELECT count(*) FROM moved""",
            pubkey,
            detail,
            actor.caller_id,
            actor.request_id,
        )
        return int(count)

    async def list_identities(
        self, status: IdentityStatus | None, owner_ref: str, after_seq: int, limit: int
    ) -> list[tuple[int, Identity]]:
        rows = await self._conn.fetch(
            f"""SELECT {IDENTITY_COLUMNS} FROM identities
                WHERE seq > $1 AND ($2::text IS NULL OR status = $2) AND ($3 = '' OR owner_ref = $3)
                ORDER BY seq LIMIT $4""",
            after_seq,
            status.value if status else None,
            owner_ref,
            limit,
        )
        return [(int(row["seq"]), identity_from_row(row)) for row in rows]
