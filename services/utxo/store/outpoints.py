"""Outpoints: looking them up, adding them, listing them."""

from __future__ import annotations

from collections.abc import Sequence

from proofline_kit.database import Queries
from proofline_kit.wire import Outpoint
from services.utxo.domain.models import OutpointOwner, Purpose, Strategy, TrackedOutput, Utxo, UtxoFilter
from services.utxo.store.columns import COLUMNS, ORDER, PURPOSES, leasable, utxo_from


class OutpointQueries(Queries):
    async def lock_outpoints(self, outpoints: Sequence[Outpoint]) -> dict[Outpoint, Utxo]:
        """The known outpoints among `outpoints`, locked in id order (deadlock-free across callers)."""
        rows = await self._conn.fetch(
            f"""SELECT {COLUMNS} FROM utxos u
                JOIN unnest($1::text[], $2::bigint[]) AS o(txid, vout) ON u.txid = o.txid AND u.vout = o.vout
                ORDER BY u.id FOR UPDATE OF u""",
            [o.txid for o in outpoints],
            [o.vout for o in outpoints],
        )
        found = [utxo_from(r) for r in rows]
        return {u.outpoint: u for u in found}

    async def outpoints(self, outpoints: Sequence[Outpoint]) -> dict[Outpoint, Utxo]:
        rows = await self._conn.fetch(
            f"""SELECT {COLUMNS} FROM utxos u
                JOIN unnest($1::text[], $2::bigint[]) AS o(txid, vout) ON u.txid = o.txid AND u.vout = o.vout""",
            [o.txid for o in outpoints],
            [o.vout for o in outpoints],
        )
        found = [utxo_from(r) for r in rows]
        return {u.outpoint: u for u in found}

    async def outpoint_owners(self, outpoints: Sequence[Outpoint]) -> dict[Outpoint, OutpointOwner]:
        """The known outpoints among `outpoints`: row, purpose and owner key (no locks: they never change)."""
        rows = await self._conn.fetch(
            """SELECT u.id, u.txid, u.vout, u.purpose, u.owner_key_id FROM utxos u
               JOIN unnest($1::text[], $2::bigint[]) AS o(txid, vout) ON u.txid = o.txid AND u.vout = o.vout""",
            [o.txid for o in outpoints],
            [o.vout for o in outpoints],
        )
        return {
            Outpoint(r["txid"], r["vout"]): OutpointOwner(r["id"], PURPOSES[r["purpose"]], r["owner_key_id"])
            for r in rows
        }

    async def by_row_ids(self, row_ids: Sequence[int]) -> list[Utxo]:
        rows = await self._conn.fetch(
            f"SELECT {COLUMNS} FROM utxos u WHERE u.id = ANY($1::bigint[]) ORDER BY u.id", list(row_ids)
        )
        return [utxo_from(r) for r in rows]

    async def insert_outputs(self, outputs: Sequence[TrackedOutput], caller_id: str, reason: str) -> list[Utxo]:
        """Insert new UNCONFIRMED outputs; outpoints already known are left alone and not returned."""
        rows = await self._conn.fetch(
            f"""WITH ins AS (
                    INSERT INTO utxos (txid, vout, satoshis, locking_script, owner_key_id, purpose, status)
                    SELECT o.txid, o.vout, o.satoshis, o.script, o.owner, o.purpose, 'unconfirmed'
                    FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bytea[], $5::text[], $6::text[])
                         AS o(txid, vout, satoshis, script, owner, purpose)
                    ORDER BY o.txid, o.vout
                    ON CONFLICT (txid, vout) DO NOTHING
                    RETURNING *
                ), ev AS (
                    INSERT INTO utxo_events (utxo_id, kind, txid, to_status, reason, caller_id)
                    SELECT id, 'added', txid, 'unconfirmed', $8, $7 FROM ins
                )
                SELECT {COLUMNS} FROM ins u""",
            [o.outpoint.txid for o in outputs],
            [o.outpoint.vout for o in outputs],
            [o.satoshis for o in outputs],
            [o.locking_script for o in outputs],
            [o.owner_key_id for o in outputs],
            [o.purpose.value for o in outputs],
            caller_id,
            reason,
        )
        return [utxo_from(r) for r in rows]

    async def list_utxos(self, filters: UtxoFilter, fencing_token: int | None, after_id: int, limit: int) -> list[Utxo]:
        rows = await self._conn.fetch(
            f"""SELECT {COLUMNS} FROM utxos u
                WHERE u.id > $1
                  AND ($2 = '' OR u.owner_key_id = $2)
                  AND ($3::text IS NULL OR u.purpose = $3)
                  AND (cardinality($4::text[]) = 0 OR u.status = ANY($4::text[]))
                  AND ($5::bigint IS NULL
                       OR (u.fencing_token = $5 AND u.status IN ('reserved', 'available')))
                  AND ($6 = '' OR u.txid = $6)
                  AND ($7::bigint = 0 OR u.satoshis >= $7::bigint)
                  AND ($8::bigint = 0 OR u.satoshis <= $8::bigint)
                ORDER BY u.id LIMIT $9""",
            after_id,
            filters.owner_key_id,
            filters.purpose.value if filters.purpose else None,
            [s.value for s in filters.statuses],
            fencing_token,
            filters.txid,
            filters.min_satoshis,
            filters.max_satoshis,
            limit,
        )
        return [utxo_from(r) for r in rows]

    async def peek_available(
        self, purpose: Purpose, owner_key_id: str, strategy: Strategy, min_satoshis: int, limit: int
    ) -> list[Utxo]:
        """What a default lease (coins on chain evidence only, unconfirmed_depth 0) with these filters
        would take first (no locks: maintenance plans and dry runs)."""
        rows = await self._conn.fetch(
            f"""SELECT {COLUMNS} FROM utxos u WHERE {leasable(5)}
                ORDER BY {ORDER[strategy]} LIMIT $4""",
            purpose.value,
            owner_key_id,
            min_satoshis,
            limit,
            0,
        )
        return [utxo_from(r) for r in rows]
