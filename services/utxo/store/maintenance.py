"""Maintenance: the fenced run state per action, and maintenance transactions."""

from __future__ import annotations

from datetime import datetime, timedelta

from proofline_kit.database import Queries
from proofline_kit.wire import Outpoint
from services.utxo.domain.models import MaintenanceRow


class MaintenanceQueries(Queries):
    async def maintenance_rows(self) -> dict[str, MaintenanceRow]:
        rows = await self._conn.fetch(
            "SELECT action, last_run_at, last_outcome, cooldown_until, fence FROM maintenance_state"
        )
        return {
            r["action"]: MaintenanceRow(
                r["action"], r["last_run_at"], r["last_outcome"], r["cooldown_until"], r["fence"]
            )
            for r in rows
        }

    async def claim_fence(self, action: str, fence: int) -> bool:
        """Take the maintenance state of `action` for the holder of lock token `fence`; False when
        a newer holder has written since (this holder's lock is stale)."""
        status = await self._conn.execute(
            "UPDATE maintenance_state SET fence = $2 WHERE action = $1 AND fence <= $2", action, fence
        )
        return bool(status.endswith(" 1"))

    async def record_run(
        self, action: str, fence: int | None, outcome: str, cooldown: timedelta | None = None
    ) -> datetime | None:
        """Record a finished run (fenced); returns the new cooldown end when one was set."""
        row = await self._conn.fetchrow(
            """UPDATE maintenance_state SET last_run_at = now(), last_outcome = $3,
                   cooldown_until = CASE WHEN $4::interval IS NULL THEN cooldown_until ELSE now() + $4::interval END,
                   fence = GREATEST(fence, COALESCE($2, 0))
               WHERE action = $1 AND ($2::bigint IS NULL OR fence <= $2)
               RETURNING cooldown_until""",
            action,
            fence,
            outcome,
            cooldown,
        )
        return row["cooldown_until"] if row and cooldown is not None else None

    async def save_maintenance_tx(self, txid: str, action: str, extended_tx: bytes) -> None:
        await self._conn.execute(
            """INSERT INTO maintenance_txs (txid, action, extended_tx) VALUES ($1, $2, $3)
               ON CONFLICT (txid) DO NOTHING""",
            txid,
            action,
            extended_tx,
        )

    async def pending_maintenance_txs(self, limit: int) -> list[tuple[str, bytes, list[Outpoint]]]:
        """(txid, extended bytes, the pool inputs it spends) of transactions not yet accepted."""
        rows = await self._conn.fetch(
            """SELECT m.txid, m.extended_tx,
                      ARRAY(SELECT u.txid || ':' || u.vout FROM utxos u WHERE u.spent_by_txid = m.txid
                            ORDER BY u.id) AS inputs
               FROM maintenance_txs m WHERE m.state = 'pending' ORDER BY m.created_at LIMIT $1""",
            limit,
        )
        result = []
        for r in rows:
            inputs = [Outpoint(t, int(v)) for t, v in (i.split(":") for i in r["inputs"])]
            result.append((r["txid"], bytes(r["extended_tx"]), inputs))
        return result

    async def set_maintenance_tx_state(self, txid: str, state: str, detail: str) -> None:
        await self._conn.execute(
            """UPDATE maintenance_txs SET state = $2, detail = $3, attempts = attempts + 1 WHERE txid = $1""",
            txid,
            state,
            detail[:1000],
        )
