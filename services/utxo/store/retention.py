"""Retention: deleting old SPENT/INVALID outpoints, finished leases, orphan events."""

from __future__ import annotations

from datetime import datetime, timedelta

from proofline_kit.database import Queries


class RetentionQueries(Queries):
    async def retention_cutoff(self, retention: timedelta) -> datetime:
        value: datetime = await self._conn.fetchval("SELECT now() - $1::interval", retention)
        return value

    async def prune_outpoints(self, cutoff: datetime, limit: int) -> int:
        """Delete up to `limit` SPENT/INVALID outpoints last changed before `cutoff` (oldest first,
        over `utxos_terminal_updated`); rows another transaction holds are left for the next batch."""
        deleted: int = await self._conn.fetchval(
            """WITH picked AS (
                   SELECT u.id FROM utxos u
                   WHERE u.status IN ('spent', 'invalid') AND u.updated_at < $1
                   ORDER BY u.updated_at LIMIT $2 FOR UPDATE SKIP LOCKED
               ), del AS (
                   DELETE FROM utxos r
                   WHERE r.id = ANY(ARRAY(SELECT id FROM picked))
                     AND r.status IN ('spent', 'invalid') AND r.updated_at < $1
                   RETURNING 1
               )
               SELECT count(*) FROM del""",
            cutoff,
            limit,
        )
        return deleted

    async def prune_leases(self, cutoff: datetime, limit: int) -> int:
        """Delete up to `limit` leases that expired (and last changed) before `cutoff` and whose token
        no outpoint carries any more (RESERVED, or AVAILABLE after a reap, keep their lease)."""
        deleted: int = await self._conn.fetchval(
            """WITH picked AS (
                   SELECT l.fencing_token FROM leases l
                   WHERE l.expires_at < $1 AND l.updated_at < $1
                     AND NOT EXISTS (SELECT 1 FROM utxos u
                                     WHERE u.fencing_token = l.fencing_token
                                       AND u.status IN ('reserved', 'available'))
                   ORDER BY l.expires_at LIMIT $2 FOR UPDATE OF l SKIP LOCKED
               ), del AS (
                   DELETE FROM leases r WHERE r.fencing_token = ANY(ARRAY(SELECT fencing_token FROM picked))
                   RETURNING 1
               )
               SELECT count(*) FROM del""",
            cutoff,
            limit,
        )
        return deleted

    async def last_event_before(self, cutoff: datetime) -> int | None:
        """The id of the last event older than `cutoff`, by bisection over the primary key (event ids
        grow with time): a few dozen one-row index probes instead of a scan or an index on `at`."""
        first = await self._conn.fetchrow("SELECT id, at FROM utxo_events ORDER BY id LIMIT 1")
        if first is None or first["at"] >= cutoff:
            return None
        last = await self._conn.fetchrow("SELECT id, at FROM utxo_events ORDER BY id DESC LIMIT 1")
        assert last is not None
        if last["at"] < cutoff:
            return int(last["id"])
        # lo: an event older than cutoff; every event with id >= hi is not.
        lo, hi = int(first["id"]), int(last["id"])
        while hi - lo > 1:
            mid = (lo + hi) // 2
            probe = await self._conn.fetchrow(
                "SELECT id, at FROM utxo_events WHERE id >= $1 AND id < $2 ORDER BY id LIMIT 1", mid, hi
            )
            if probe is not None and probe["at"] < cutoff:
                lo = int(probe["id"])
            else:
                hi = mid
        return lo

    async def prune_orphan_events(self, after_id: int, up_to_id: int, limit: int) -> tuple[int, int | None]:
        """Look at up to `limit` events with `after_id < id <= up_to_id` (primary key order) and delete
        those whose outpoint is gone. Returns (deleted, last id looked at, None when none was left)."""
        row = await self._conn.fetchrow(
            """WITH scanned AS (
                   SELECT e.id, e.utxo_id FROM utxo_events e
                   WHERE e.id > $1 AND e.id <= $2 ORDER BY e.id LIMIT $3
               ), doomed AS (
                   SELECT e.id FROM utxo_events e
                   WHERE e.id IN (SELECT s.id FROM scanned s
                                  WHERE NOT EXISTS (SELECT 1 FROM utxos u WHERE u.id = s.utxo_id))
                   FOR UPDATE SKIP LOCKED
               ), del AS (
                   DELETE FROM utxo_events r WHERE r.id = ANY(ARRAY(SELECT id FROM doomed)) RETURNING 1
               )
               SELECT (SELECT count(*) FROM del) AS deleted, (SELECT max(id) FROM scanned) AS last""",
            after_id,
            up_to_id,
            limit,
        )
        assert row is not None
        return int(row["deleted"]), row["last"]
