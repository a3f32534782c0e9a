"""Spends: a commit's inputs marked SPENT in one statement."""

from __future__ import annotations

from collections.abc import Sequence

from proofline_kit.database import Queries
from proofline_kit.wire import Outpoint
from services.utxo.domain.models import InputState, LeaseRow, Utxo, in_strategy_order
from services.utxo.store.columns import COLUMNS_NO_LEASE, STATUSES, utxo_from


class SpendQueries(Queries):
    async def spend_carried(
        self,
        inputs: Sequence[tuple[Outpoint, str]],
        fencing_token: int | None,
        caller_id: str,
        lease: LeaseRow | None = None,
    ) -> tuple[dict[Outpoint, Utxo], dict[Outpoint, InputState], list[Utxo]]:
        """One statement for a commit's inputs, (outpoint, spending txid) pairs: lock the known ones in
        id order, mark SPENT those that carry `fencing_token` (RESERVED or AVAILABLE with that token;
        none when the token is None), with their events. Returns the rows it spent; unless it spent
        every input, what it found of every known input before the change (what the caller judges
        refusals by; when it refuses, its transaction rolls back with these changes); and, when
        `lease` is given, what `carrying(lease)` would return after the change."""
        rows = await self._conn.fetch(
            f"""WITH i AS (
                    SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[]) AS i(txid, vout, spending_txid)
                ), locked AS (
                    SELECT u.id, u.txid, u.vout, u.status, u.fencing_token, u.spent_by_txid, i.spending_txid
                    FROM utxos u JOIN i ON u.txid = i.txid AND u.vout = i.vout
                    ORDER BY u.id FOR UPDATE OF u
                ), upd AS (
                    UPDATE utxos r SET status = 'spent', spent_by_txid = l.spending_txid, spent_at = now(),
                                       lease_expires_at = NULL
                    FROM locked l
                    WHERE r.id = l.id AND l.fencing_token = $4::bigint AND l.status IN ('reserved', 'available')
                    RETURNING r.*, l.status AS old_status
                ), ev AS (
                    INSERT INTO utxo_events (utxo_id, kind, fencing_token, txid, from_status, to_status, caller_id)
                    SELECT id, 'commit', $4::bigint, spent_by_txid, old_status, 'spent', $5 FROM upd
                )
                SELECT {COLUMNS_NO_LEASE}, '' AS lease_id, u.id IS NOT NULL AS spent, false AS carried,
                       l.txid AS input_txid, l.vout AS input_vout, l.id AS input_id, l.status AS input_status,
                       l.fencing_token AS input_token, l.spent_by_txid AS input_spent_by
                FROM locked l LEFT JOIN upd u ON u.id = l.id
                UNION ALL
                SELECT {COLUMNS_NO_LEASE}, CASE WHEN u.status = 'reserved' THEN $7 ELSE '' END, false, true,
                       NULL, NULL, NULL, NULL, NULL, NULL
                FROM utxos u
                WHERE $6::bigint IS NOT NULL AND u.fencing_token = $6::bigint
                  AND u.status IN ('reserved', 'available') AND NOT EXISTS (SELECT 1 FROM upd WHERE upd.id = u.id)""",
            [o.txid for o, _ in inputs],
            [o.vout for o, _ in inputs],
            [txid for _, txid in inputs],
            fencing_token,
            caller_id,
            lease.fencing_token if lease is not None else None,
            lease.lease_id if lease is not None else "",
        )
        spent = {}
        carried = []
        for r in rows:
            if r["spent"]:
                utxo = utxo_from(r)
                spent[utxo.outpoint] = utxo
            elif r["carried"]:
                carried.append(utxo_from(r))
        found = {}
        if len(spent) < len(inputs):
            found = {
                Outpoint(r["input_txid"], r["input_vout"]): InputState(
                    r["input_id"], STATUSES[r["input_status"]], r["input_token"], r["input_spent_by"] or ""
                )
                for r in rows
                if not r["carried"]
            }
        if lease is not None:
            carried = in_strategy_order(lease.strategy, carried)
        return spent, found, carried
