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

    async def invalidate_unconfirmed_outputs(self, txid: str, reason: str, caller_id: str) -> list[Utxo]:
        """The UNCONFIRMED outputs of a transaction that is proven dead become INVALID."""
        rows = await self._conn.fetch(
            f"""WITH upd AS (
                    UPDATE utxos r SET status = 'invalid', status_reason = $2
                    WHERE r.txid = $1 AND r.status = 'unconfirmed'
                    RETURNING r.*
                ), ev AS (
                    INSERT INTO utxo_events (utxo_id, kind, txid, from_status, to_status, reason, caller_id)
                    SELECT id, 'invalid', txid, 'unconfirmed', 'invalid', $2, $3 FROM upd
                )
                SELECT {COLUMNS} FROM upd u ORDER BY u.id""",
            txid,
            reason,
            caller_id,
        )
        return [utxo_from(r) for r in rows]
