"""Acceptance: the outputs of committed spends the network accepted become AVAILABLE before they are mined."""

from __future__ import annotations

from collections.abc import Sequence

from proofline_kit.database import Queries
from services.utxo.domain.models import Utxo
from services.utxo.store.columns import COLUMNS, utxo_from


class AcceptanceQueries(Queries):
    async def accept_spends(self, txids: Sequence[str], max_depth: int, caller_id: str) -> tuple[list[Utxo], set[str]]:
        """One statement for all `txids`. A txid is a committed spend alive in the pool when it has
        inputs here (rows with spent_by_txid = txid) and every one is still SPENT by it. Its tracked
        outputs still UNCONFIRMED become AVAILABLE at unconfirmed_depth = 1 + the greatest depth of
        those inputs, when that is at most `max_depth`, with their `accepted` events. Returns the
        rows it made AVAILABLE (id order) and the txids alive as committed spends."""
        rows = await self._conn.fetch(
            f"""WITH t AS (
                    SELECT DISTINCT x AS txid FROM unnest($1::text[]) AS x
                ), spends AS (
                    SELECT i.spent_by_txid AS txid, bool_and(i.status = 'spent') AS alive,
                           max(i.unconfirmed_depth) + 1 AS depth
                    FROM t JOIN utxos i ON i.spent_by_txid = t.txid
                    GROUP BY i.spent_by_txid
                ), picked AS (
                    SELECT o.id, s.depth FROM spends s JOIN utxos o ON o.txid = s.txid
                    WHERE s.alive AND s.depth <= $2::int AND o.status = 'unconfirmed'
                    ORDER BY o.id FOR UPDATE OF o
                ), upd AS (
                    UPDATE utxos r SET status = 'available', unconfirmed_depth = p.depth, status_reason = ''
                    FROM picked p WHERE r.id = p.id AND r.status = 'unconfirmed'
                    RETURNING r.*
                ), ev AS (
                    INSERT INTO utxo_events (utxo_id, kind, txid, from_status, to_status, reason, caller_id)
                    SELECT id, 'accepted', txid, 'unconfirmed', 'available', 'ACCEPTED', $3 FROM upd
                )
                SELECT {COLUMNS}, NULL::text AS alive_txid FROM upd u
                UNION ALL
                -- One row per alive spend, its Utxo columns empty (a join on false reads no row).
                SELECT {COLUMNS}, s.txid FROM spends s LEFT JOIN utxos u ON false WHERE s.alive
                ORDER BY 1""",
            list(txids),
            max_depth,
            caller_id,
        )
        available = [utxo_from(r) for r in rows if r["alive_txid"] is None]
        alive = {r["alive_txid"] for r in rows if r["alive_txid"] is not None}
        return available, alive
