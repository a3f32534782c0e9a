"""Conflicts: outpoints reported DIRTY, outputs of dead transactions INVALID."""

from __future__ import annotations

from collections.abc import Sequence

from proofline_kit.database import Queries
from services.utxo.domain.models import Utxo
from services.utxo.store.columns import COLUMNS, utxo_from


class ConflictQueries(Queries):
    async def mark_dirty(
        self,
        rows: Sequence[Utxo],
        reason: str,
        spending_txid: str,
        competing_txids: Sequence[str],
        detail: str,
        fencing_token: int | None,
        caller_id: str,
    ) -> list[Utxo]:
        result = await self._conn.fetch(
            f"""WITH s AS (
                    SELECT * FROM unnest($1::bigint[], $2::text[]) AS s(id, old_status)
                ), upd AS (
                    UPDATE utxos r SET
                        status = 'dirty', status_reason = $3, status_detail = $6, lease_expires_at = NULL,
                        spent_by_txid = COALESCE(NULLIF($4, ''), r.spent_by_txid),
                        competing_txids = ARRAY(
                            SELECT DISTINCT c FROM unnest(r.competing_txids || $5::text[]) AS c ORDER BY c)
                    FROM s WHERE r.id = s.id
                    RETURNING r.*, s.old_status
                ), ev AS (
                    INSERT INTO utxo_events (utxo_id, kind, fencing_token, txid, from_status, to_status, reason,
                                             caller_id)
                    SELECT id, 'dirty', $7, spent_by_txid, old_status, 'dirty', $3, $8 FROM upd
                )
                SELECT {COLUMNS} FROM upd u ORDER BY u.id""",
            [u.row_id for u in rows],
            [u.status.value for u in rows],
            reason,
            spending_txid,
            list(competing_txids),
            detail,
            fencing_token,
            caller_id,
        )
        return [utxo_from(r) for r in result]

    async def invalidate_dead_outputs(
        self, txid: str, reason: str, dirty_reason: str, caller_id: str
    ) -> tuple[list[Utxo], list[Utxo]]:
        """A transaction proven dead, and with it every pool transaction that spent one of its
        outputs, at any depth (its descendants), in one statement. The tracked outputs of each that
        the chain has not vouched for become INVALID (`reason`): UNCONFIRMED and SPENT ones, and
        AVAILABLE, RESERVED or DIRTY ones of unconfirmed_depth > 0 (an AVAILABLE coin of depth 0
        was seen on chain, so its transaction is not dead). A descendant is the spent_by_txid of
        such an output. The descendants' inputs that are SPENT by them and not invalidated become
        DIRTY (`dirty_reason`), for a sync to bring back. Returns (invalidated, made dirty), each
        in id order; the invalidated rows keep their spent_by_txid (the descendants)."""
        rows = await self._conn.fetch(
            f"""WITH RECURSIVE dead(txid) AS (
                    SELECT $1::text
                    UNION
                    SELECT o.spent_by_txid FROM utxos o JOIN dead d ON o.txid = d.txid
                    WHERE o.spent_by_txid IS NOT NULL AND {_DEAD_OUTPUT}
                ), victims AS (
                    SELECT o.id, o.status AS old_status FROM utxos o JOIN dead d ON o.txid = d.txid
                    WHERE {_DEAD_OUTPUT}
                    ORDER BY o.id FOR UPDATE OF o
                ), orphans AS (
                    SELECT i.id FROM utxos i JOIN dead d ON i.spent_by_txid = d.txid
                    WHERE d.txid <> $1 AND i.status = 'spent' AND NOT EXISTS (SELECT 1 FROM victims v WHERE v.id = i.id)
                    ORDER BY i.id FOR UPDATE OF i
                ), inv AS (
                    UPDATE utxos r SET status = 'invalid', status_reason = $2, lease_expires_at = NULL
                    FROM victims v WHERE r.id = v.id
                    RETURNING r.*, v.old_status
                ), dirt AS (
                    UPDATE utxos r SET status = 'dirty', status_reason = $3, status_detail = $5
                    FROM orphans o WHERE r.id = o.id
                    RETURNING r.*
                ), ev AS (
                    INSERT INTO utxo_events (utxo_id, kind, txid, from_status, to_status, reason, caller_id)
                    SELECT id, 'invalid', txid, old_status, 'invalid', $2, $4 FROM inv
                    UNION ALL
                    SELECT id, 'dirty', spent_by_txid, 'spent', 'dirty', $3, $4 FROM dirt
                )
                SELECT {COLUMNS}, true AS invalidated FROM inv u
                UNION ALL
                SELECT {COLUMNS}, false FROM dirt u
                ORDER BY 1""",
            txid,
            reason,
            dirty_reason,
            caller_id,
            f"an ancestor transaction {txid} is dead",
        )
        invalidated = [utxo_from(r) for r in rows if r["invalidated"]]
        dirtied = [utxo_from(r) for r in rows if not r["invalidated"]]
        return invalidated, dirtied


# An output of a dead transaction that becomes INVALID: not one the chain vouched for.
_DEAD_OUTPUT = """(o.status IN ('unconfirmed', 'spent')
    OR (o.status IN ('available', 'reserved', 'dirty') AND o.unconfirmed_depth > 0))"""
