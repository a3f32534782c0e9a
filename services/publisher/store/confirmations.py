"""Following sent jobs: confirmation checks that are due, jobs by txid, confirmed blocks (for reorgs)."""

from __future__ import annotations

from collections.abc import Sequence

from proofline_kit.database import Queries
from services.publisher.domain.models import InFlightJob
from services.publisher.store.rows import IN_FLIGHT, in_flight_from_row


class ConfirmationQueries(Queries):
    async def claim_sent_due(self, limit: int, recheck_s: float, max_recheck_s: float) -> list[InFlightJob]:
        """SENT jobs whose confirmation check is due. Their next check is set in the same statement
        (so replicas polling at the same time take different jobs), half the job's age from now:
        at least `recheck_s`, at most `max_recheck_s`, so old unconfirmed jobs cost little."""
        rows = await self._conn.fetch(
            f"""WITH picked AS (
                    SELECT id FROM jobs WHERE status = 'sent' AND next_attempt_at <= now()
                    ORDER BY next_attempt_at, id LIMIT $1
                    FOR UPDATE SKIP LOCKED
                )
                UPDATE jobs j SET next_attempt_at = now() + least(
                    greatest(make_interval(secs => $2), (now() - j.sent_at) / 2), make_interval(secs => $3))
                FROM picked WHERE j.id = picked.id
                RETURNING {", ".join("j." + c.strip() for c in IN_FLIGHT.split(","))}""",
            limit,
            recheck_s,
            max_recheck_s,
        )
        return [in_flight_from_row(r) for r in rows]

    async def in_flight_by_txids(self, txids: Sequence[str]) -> list[InFlightJob]:
        """Jobs whose current transaction is one of `txids` (SIGNED, SENT or CONFIRMED)."""
        rows = await self._conn.fetch(
            f"""SELECT {IN_FLIGHT} FROM jobs
                WHERE txid = ANY($1::text[]) AND status IN ('signed', 'sent', 'confirmed')""",
            list(set(txids)),
        )
        return [in_flight_from_row(r) for r in rows]

    async def confirmed_blocks(self, min_height: int) -> list[tuple[str, int]]:
        """(block hash, height) of the blocks holding CONFIRMED jobs at or above `min_height`."""
        rows = await self._conn.fetch(
            """SELECT DISTINCT block_hash, block_height FROM jobs
               WHERE status = 'confirmed' AND block_height >= $1 ORDER BY block_height""",
            min_height,
        )
        return [(row["block_hash"], int(row["block_height"])) for row in rows]

    async def confirmed_in_block(self, block_hash: str) -> list[InFlightJob]:
        rows = await self._conn.fetch(
            f"SELECT {IN_FLIGHT} FROM jobs WHERE status = 'confirmed' AND block_hash = $1", block_hash
        )
        return [in_flight_from_row(r) for r in rows]
