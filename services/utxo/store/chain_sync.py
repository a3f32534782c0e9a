"""Chain sync: what the pool holds per key, and the changes a sync decided."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from proofline_kit.database import Queries
from services.utxo.domain.models import Purpose, TrackedOutput, Utxo, UtxoStatus
from services.utxo.store.columns import COLUMNS, utxo_from


class ChainSyncQueries(Queries):
    async def known_owner_keys(self) -> list[str]:
        rows = await self._conn.fetch(
            """SELECT DISTINCT owner_key_id FROM utxos
               WHERE status IN ('unconfirmed', 'available', 'reserved', 'dirty') ORDER BY owner_key_id"""
        )
        return [r["owner_key_id"] for r in rows]

    async def latest_purposes(self, owner_key_ids: Sequence[str]) -> dict[str, Purpose]:
        rows = await self._conn.fetch(
            """SELECT DISTINCT ON (owner_key_id) owner_key_id, purpose FROM utxos
               WHERE owner_key_id = ANY($1::text[]) ORDER BY owner_key_id, id DESC""",
            list(owner_key_ids),
        )
        return {r["owner_key_id"]: Purpose(r["purpose"]) for r in rows}

    async def unspent_of(self, owner_key_ids: Sequence[str]) -> list[Utxo]:
        """The keys' outpoints the pool holds as unspent (UNCONFIRMED, AVAILABLE, RESERVED, DIRTY)."""
        rows = await self._conn.fetch(
            f"""SELECT {COLUMNS} FROM utxos u
                WHERE u.owner_key_id = ANY($1::text[])
                  AND u.status IN ('unconfirmed', 'available', 'reserved', 'dirty')
                ORDER BY u.id""",
            list(owner_key_ids),
        )
        return [utxo_from(r) for r in rows]

    async def insert_found(
        self, outputs: Sequence[TrackedOutput], statuses: Sequence[UtxoStatus], heights: Sequence[int | None]
    ) -> int:
        """Outputs a sync found on chain; outpoints known meanwhile are left alone."""
        rows = await self._conn.fetch(
            """WITH ins AS (
                   INSERT INTO utxos (txid, vout, satoshis, locking_script, owner_key_id, purpose, status, block_height)
                   SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bytea[], $5::text[], $6::text[],
                                        $7::text[], $8::int[])
                   ON CONFLICT (txid, vout) DO NOTHING
                   RETURNING id, txid, status
               )
               INSERT INTO utxo_events (utxo_id, kind, txid, to_status, reason, caller_id)
               SELECT id, 'added', txid, status, 'NEW_ON_CHAIN', 'sync' FROM ins
               RETURNING utxo_id""",
            [o.outpoint.txid for o in outputs],
            [o.outpoint.vout for o in outputs],
            [o.satoshis for o in outputs],
            [o.locking_script for o in outputs],
            [o.owner_key_id for o in outputs],
            [o.purpose.value for o in outputs],
            [s.value for s in statuses],
            list(heights),
        )
        return len(rows)

    async def apply_chain_changes(
        self,
        row_ids: Sequence[int],
        from_statuses: Sequence[UtxoStatus],
        to_statuses: Sequence[UtxoStatus],
        reasons: Sequence[str],
        heights: Sequence[int | None],
        spent_by: Sequence[str],
    ) -> int:
        """Status changes a sync decided, each applied only if the row is still in the status the
        sync saw (a lease or commit in between wins). A change with a height (the row seen in a
        block) sets its unconfirmed_depth to 0."""
        rows = await self._conn.fetch(
            """WITH c AS (
                   SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[])
                       AS c(id, from_status, to_status, reason, height, spent_by)
               ), upd AS (
                   UPDATE utxos r SET
                       status = c.to_status,
                       block_height = CASE WHEN c.to_status IN ('spent', 'invalid') THEN r.block_height
                                           ELSE c.height END,
                       -- Seen in a block: held on chain evidence from now on.
                       unconfirmed_depth = CASE WHEN c.height IS NOT NULL THEN 0 ELSE r.unconfirmed_depth END,
                       status_reason = CASE WHEN c.to_status IN ('spent', 'invalid') THEN c.reason
                                            WHEN c.to_status = 'dirty' THEN r.status_reason ELSE '' END,
                       spent_by_txid = CASE WHEN c.to_status = 'spent' THEN NULLIF(c.spent_by, '')
                                            WHEN c.to_status = 'dirty' THEN r.spent_by_txid END,
                       spent_at = CASE WHEN c.to_status = 'spent' THEN now() END,
                       fencing_token = CASE WHEN r.status = 'dirty' THEN NULL ELSE r.fencing_token END,
                       lease_expires_at = CASE WHEN c.to_status = 'reserved' THEN r.lease_expires_at END
                   FROM c WHERE r.id = c.id AND r.status = c.from_status
                   RETURNING r.id, r.txid, r.status, c.from_status, c.reason
               )
               INSERT INTO utxo_events (utxo_id, kind, txid, from_status, to_status, reason, caller_id)
               SELECT id, CASE WHEN reason = 'CONFIRMED' THEN 'confirmed' ELSE 'chain' END, txid, from_status,
                      status, reason, 'sync'
               FROM upd WHERE from_status <> status
               RETURNING utxo_id""",
            list(row_ids),
            [s.value for s in from_statuses],
            [s.value for s in to_statuses],
            list(reasons),
            list(heights),
            list(spent_by),
        )
        return len(rows)

    async def missing_since(self, row_ids: Sequence[int]) -> dict[int, datetime]:
        """Rows among `row_ids` that an earlier sync found missing from the chain, and since when."""
        rows = await self._conn.fetch(
            "SELECT id, missing_since FROM utxos WHERE id = ANY($1::bigint[]) AND missing_since IS NOT NULL",
            list(row_ids),
        )
        return {r["id"]: r["missing_since"] for r in rows}

    async def mark_missing(self, missing: Sequence[int], seen: Sequence[int]) -> None:
        """Start the missing clock of `missing` rows (kept if already running); stop it for `seen`."""
        await self._conn.execute(
            """UPDATE utxos SET missing_since = CASE WHEN id = ANY($1::bigint[]) THEN COALESCE(missing_since, now()) END
               WHERE id = ANY($1::bigint[]) OR (id = ANY($2::bigint[]) AND missing_since IS NOT NULL)""",
            list(missing),
            list(seen),
        )

    async def tip_height(self) -> int:
        value = await self._conn.fetchval("SELECT height FROM chain_tip")
        return int(value or 0)

    async def set_tip(self, height: int) -> None:
        await self._conn.execute(
            """INSERT INTO chain_tip (singleton, height) VALUES (true, $1)
               ON CONFLICT (singleton) DO UPDATE SET height = EXCLUDED.height""",
            height,
        )
