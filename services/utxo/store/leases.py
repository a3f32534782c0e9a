"""Leases: taking outpoints (count, target and exact-outpoint modes), renewing, releasing, reaping."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import timedelta

from proofline_kit.database import Queries
from proofline_kit.wire import Outpoint
from services.utxo.domain.models import LeaseHistory, LeaseRow, Purpose, Strategy, Utxo
from services.utxo.store.columns import COLUMNS, LEASE_COLUMNS, ORDER, columns_of_lease, leasable, lease_from, utxo_from

# What a lease may take (expired reservations count as AVAILABLE); `now()` is the transaction's
# start, as in the utxos_single_live_lease trigger.
_LEASABLE_NOW = "(u.status = 'available' OR (u.status = 'reserved' AND u.lease_expires_at <= now()))"


class LeaseQueries(Queries):
    async def insert_lease(
        self, lease_id: str, caller_id: str, holder: str, purpose: Purpose, strategy: Strategy, duration: timedelta
    ) -> LeaseRow:
        row = await self._conn.fetchrow(
            f"""INSERT INTO leases (lease_id, caller_id, holder, purpose, strategy, expires_at)
                VALUES ($1, $2, $3, $4, $5, now() + $6::interval)
                RETURNING {LEASE_COLUMNS}""",
            lease_id,
            caller_id,
            holder,
            purpose.value,
            strategy.value,
            duration,
        )
        assert row is not None
        return lease_from(row)

    async def insert_lease_and_claim(
        self,
        lease_id: str,
        caller_id: str,
        holder: str,
        purpose: Purpose,
        strategy: Strategy,
        duration: timedelta,
        owner_key_id: str,
        min_satoshis: int,
        limit: int,
        max_depth: int = 0,
    ) -> tuple[LeaseRow, list[Utxo]]:
        """insert_lease then claim_count, in one statement (one round trip less per count lease)."""
        order = ORDER[strategy]
        rows = await self._conn.fetch(
            f"""WITH l AS (
                    INSERT INTO leases (lease_id, caller_id, holder, purpose, strategy, expires_at)
                    VALUES ($5, $6, $7, $1, $8, now() + $9::interval)
                    RETURNING fencing_token, caller_id, holder, created_at, expires_at
                ), picked AS (
                    SELECT u.id FROM utxos u WHERE {leasable(10)}
                    ORDER BY {order} LIMIT $4 FOR UPDATE SKIP LOCKED
                ), upd AS (
                    UPDATE utxos r SET status = 'reserved', fencing_token = l.fencing_token,
                                       lease_expires_at = l.expires_at
                    FROM picked, l WHERE r.id = picked.id
                    RETURNING r.*
                ), ev AS (
                    INSERT INTO utxo_events (utxo_id, kind, fencing_token, lease_expires_at, from_status, to_status,
                                             caller_id)
                    SELECT id, 'lease', fencing_token, lease_expires_at, 'available', 'reserved', $6 FROM upd
                )
                SELECT {columns_of_lease(5)}, u.id IS NOT NULL AS claimed, l.fencing_token AS lease_token,
                       l.holder AS lease_holder, l.created_at AS lease_created_at,
                       l.expires_at AS lease_expires, now() AS db_now
                FROM l LEFT JOIN upd u ON true
                ORDER BY {order}""",
            purpose.value,
            owner_key_id,
            min_satoshis,
            limit,
            lease_id,
            caller_id,
            holder,
            strategy.value,
            duration,
            max_depth,
        )
        first = rows[0]
        lease = LeaseRow(
            fencing_token=first["lease_token"],
            lease_id=lease_id,
            caller_id=caller_id,
            holder=first["lease_holder"],
            purpose=purpose,
            strategy=strategy,
            created_at=first["lease_created_at"],
            expires_at=first["lease_expires"],
            db_now=first["db_now"],
        )
        return lease, [utxo_from(r) for r in rows if r["claimed"]]

    async def lease_by_id(self, lease_id: str, *, for_update: bool = False) -> LeaseRow | None:
        lock = " FOR UPDATE" if for_update else ""
        row = await self._conn.fetchrow(f"SELECT {LEASE_COLUMNS} FROM leases WHERE lease_id = $1{lock}", lease_id)
        return lease_from(row) if row else None

    async def set_lease_expiry(self, fencing_token: int, duration: timedelta) -> LeaseRow:
        row = await self._conn.fetchrow(
            f"""UPDATE leases SET expires_at = now() + $2::interval WHERE fencing_token = $1
                RETURNING {LEASE_COLUMNS}""",
            fencing_token,
            duration,
        )
        assert row is not None
        return lease_from(row)

    async def claim_count(
        self,
        lease: LeaseRow,
        owner_key_id: str,
        min_satoshis: int,
        limit: int,
        max_depth: int = 0,
    ) -> list[Utxo]:
        """Reserve up to `limit` AVAILABLE outpoints in strategy order, skipping rows others have locked."""
        order = ORDER[lease.strategy]
        rows = await self._conn.fetch(
            f"""WITH picked AS (
                    SELECT u.id FROM utxos u WHERE {leasable(9)}
                    ORDER BY {order} LIMIT $4 FOR UPDATE SKIP LOCKED
                ), upd AS (
                    UPDATE utxos r SET status = 'reserved', fencing_token = $5, lease_expires_at = $6
                    FROM picked WHERE r.id = picked.id
                    RETURNING r.*
                ), ev AS (
                    INSERT INTO utxo_events (utxo_id, kind, fencing_token, lease_expires_at, from_status, to_status,
                                             caller_id)
                    SELECT id, 'lease', $5, $6, 'available', 'reserved', $7 FROM upd
                )
                SELECT {columns_of_lease(8)} FROM upd u ORDER BY {order}""",
            lease.purpose.value,
            owner_key_id,
            min_satoshis,
            limit,
            lease.fencing_token,
            lease.expires_at,
            lease.caller_id,
            lease.lease_id,
            max_depth,
        )
        return [utxo_from(r) for r in rows]

    async def lock_candidates(
        self,
        lease: LeaseRow,
        owner_key_id: str,
        min_satoshis: int,
        limit: int,
        exclude: Sequence[int],
        max_depth: int = 0,
    ) -> list[tuple[int, int]]:
        """Lock up to `limit` AVAILABLE outpoints in strategy order (not `exclude`): (row id, satoshis)."""
        order = ORDER[lease.strategy]
        rows = await self._conn.fetch(
            f"""SELECT u.id, u.satoshis FROM utxos u WHERE {leasable(6)} AND NOT (u.id = ANY($5::bigint[]))
                ORDER BY {order} LIMIT $4 FOR UPDATE SKIP LOCKED""",
            lease.purpose.value,
            owner_key_id,
            min_satoshis,
            limit,
            list(exclude),
            max_depth,
        )
        return [(r["id"], r["satoshis"]) for r in rows]

    async def reserve_rows(self, lease: LeaseRow, row_ids: Sequence[int]) -> list[Utxo]:
        """Reserve rows this transaction has locked (AVAILABLE) for the lease."""
        order = ORDER[lease.strategy]
        rows = await self._conn.fetch(
            f"""WITH upd AS (
                    UPDATE utxos r SET status = 'reserved', fencing_token = $2, lease_expires_at = $3
                    WHERE r.id = ANY($1::bigint[]) AND r.status = 'available'
                    RETURNING r.*
                ), ev AS (
                    INSERT INTO utxo_events (utxo_id, kind, fencing_token, lease_expires_at, from_status, to_status,
                                             caller_id)
                    SELECT id, 'lease', $2, $3, 'available', 'reserved', $4 FROM upd
                )
                SELECT {columns_of_lease(5)} FROM upd u ORDER BY {order}""",
            list(row_ids),
            lease.fencing_token,
            lease.expires_at,
            lease.caller_id,
            lease.lease_id,
        )
        return [utxo_from(r) for r in rows]

    async def lock_request(self, caller_id: str, method: str, request_id: str) -> None:
        """Wait for any concurrent attempt of the same request (caller, method, request_id) to end, so
        that this one then finds its recorded answer. A transaction-scoped advisory lock on a 64-bit
        hash of the three: another request that collides only waits for one short transaction."""
        digest = hashlib.sha256("\x1f".join(("proofline.utxo", caller_id, method, request_id)).encode()).digest()
        await self._conn.execute("SELECT pg_advisory_xact_lock($1)", int.from_bytes(digest[:8], "big", signed=True))

    async def lock_rows_nowait(self, row_ids: Sequence[int]) -> int | None:
        """Lock the rows in ascending id order without waiting; stop at the first row another
        transaction holds and return its id (None: all locked). See migration 0006."""
        held: int | None = await self._conn.fetchval("SELECT utxos_lock_nowait($1::bigint[])", sorted(set(row_ids)))
        return held

    async def leasable_rows(self, row_ids: Sequence[int], max_depth: int = 0) -> set[int]:
        """Those of the rows a lease may take now: AVAILABLE, or RESERVED under an expired reservation,
        of an unconfirmed_depth of at most `max_depth`."""
        rows = await self._conn.fetch(
            # A join on the ids, not `id = ANY(...)`: the planner then reads the rows by primary key
            # instead of scanning every AVAILABLE row's partial index and filtering.
            f"""SELECT u.id FROM unnest($1::bigint[]) AS i (id) JOIN utxos u ON u.id = i.id
                WHERE {_LEASABLE_NOW} AND u.unconfirmed_depth <= $2::smallint""",
            list(row_ids),
            max_depth,
        )
        return {r["id"] for r in rows}

    async def reserve_exact(self, lease: LeaseRow, row_ids: Sequence[int]) -> list[Utxo]:
        """Reserve rows this transaction has locked for the lease: AVAILABLE ones, and RESERVED ones
        whose reservation has expired (taken over at once: one `lease` event from `reserved`)."""
        rows = await self._conn.fetch(
            f"""WITH s AS (
                    SELECT u.id, u.status AS old_status FROM unnest($1::bigint[]) AS i (id)
                    JOIN utxos u ON u.id = i.id
                    WHERE {_LEASABLE_NOW}
                ), upd AS (
                    UPDATE utxos r SET status = 'reserved', fencing_token = $2, lease_expires_at = $3
                    FROM s WHERE r.id = s.id
                    RETURNING r.*, s.old_status
                ), ev AS (
                    INSERT INTO utxo_events (utxo_id, kind, fencing_token, lease_expires_at, from_status, to_status,
                                             caller_id)
                    SELECT id, 'lease', $2, $3, old_status, 'reserved', $4 FROM upd ORDER BY id
                )
                SELECT {columns_of_lease(5)} FROM upd u ORDER BY u.id""",
            list(row_ids),
            lease.fencing_token,
            lease.expires_at,
            lease.caller_id,
            lease.lease_id,
        )
        return [utxo_from(r) for r in rows]

    async def leasable_summary(
        self, purpose: Purpose, owner_key_id: str, min_satoshis: int, max_depth: int = 0
    ) -> tuple[int, int]:
        """(count, satoshis) of outpoints a lease with these filters could take now, expired
        reservations included. The sum stays numeric: it may exceed 2^63 - 1."""
        row = await self._conn.fetchrow(
            f"""SELECT count(*) AS n, COALESCE(sum(u.satoshis), 0) AS sats FROM utxos u
               WHERE u.purpose = $1 AND ($2 = '' OR u.owner_key_id = $2) AND u.satoshis >= $3
                 AND u.unconfirmed_depth <= $4::smallint AND {_LEASABLE_NOW}""",
            purpose.value,
            owner_key_id,
            min_satoshis,
            max_depth,
        )
        assert row is not None
        return int(row["n"]), int(row["sats"])

    async def reap_expired(self, purpose: Purpose | None, limit: int) -> tuple[int, int]:
        """Expired reservations back to AVAILABLE, keeping their token: (leases, outpoints) reaped."""
        row = await self._conn.fetchrow(
            """WITH picked AS (
                   SELECT u.id FROM utxos u
                   WHERE u.status = 'reserved' AND u.lease_expires_at <= now()
                     AND ($1::text IS NULL OR u.purpose = $1)
                   ORDER BY u.lease_expires_at LIMIT $2 FOR UPDATE SKIP LOCKED
               ), upd AS (
                   UPDATE utxos r SET status = 'available', lease_expires_at = NULL
                   FROM picked WHERE r.id = picked.id
                   RETURNING r.id, r.fencing_token
               ), ev AS (
                   INSERT INTO utxo_events (utxo_id, kind, fencing_token, from_status, to_status)
                   SELECT id, 'reap', fencing_token, 'reserved', 'available' FROM upd
               )
               SELECT count(DISTINCT fencing_token) AS leases, count(*) AS utxos FROM upd""",
            purpose.value if purpose else None,
            limit,
        )
        assert row is not None
        return int(row["leases"]), int(row["utxos"])

    async def carrying(self, lease: LeaseRow, *, lock: bool = False) -> list[Utxo]:
        """The outpoints that still carry the lease's token (RESERVED, or AVAILABLE after a reap)."""
        if lock:
            await self._conn.execute(
                """SELECT u.id FROM utxos u
                   WHERE u.fencing_token = $1 AND u.status IN ('reserved', 'available')
                   ORDER BY u.id FOR UPDATE""",
                lease.fencing_token,
            )
        rows = await self._conn.fetch(
            f"""SELECT {COLUMNS} FROM utxos u
                WHERE u.fencing_token = $1 AND u.status IN ('reserved', 'available')
                ORDER BY {ORDER[lease.strategy]}""",
            lease.fencing_token,
        )
        return [utxo_from(r) for r in rows]

    async def lease_history(self, fencing_token: int) -> LeaseHistory:
        rows = await self._conn.fetch(
            """SELECT utxo_id, kind FROM utxo_events
               WHERE fencing_token = $1 AND kind IN ('lease', 'release', 'commit', 'dirty')""",
            fencing_token,
        )
        granted = frozenset(r["utxo_id"] for r in rows if r["kind"] == "lease")
        given_up = frozenset(r["utxo_id"] for r in rows if r["kind"] != "lease")
        return LeaseHistory(granted, given_up)

    async def renew_rows(self, lease: LeaseRow, caller_id: str) -> None:
        """Reserve the lease's outpoints again until the lease's (new) expiry."""
        await self._conn.execute(
            """WITH upd AS (
                   UPDATE utxos r SET status = 'reserved', lease_expires_at = $2
                   FROM (SELECT id, status AS old_status FROM utxos
                         WHERE fencing_token = $1 AND status IN ('reserved', 'available')) s
                   WHERE r.id = s.id
                   RETURNING r.id, s.old_status
               )
               INSERT INTO utxo_events (utxo_id, kind, fencing_token, lease_expires_at, from_status, to_status,
                                        caller_id)
               SELECT id, 'renew', $1, $2, old_status, 'reserved', $3 FROM upd""",
            lease.fencing_token,
            lease.expires_at,
            caller_id,
        )

    async def release(self, fencing_token: int, row_ids: Sequence[int] | None, caller_id: str) -> list[Outpoint]:
        """Give up the lease's rights on its outpoints (all, or those of `row_ids`)."""
        rows = await self._conn.fetch(
            """WITH s AS (
                   SELECT id, status AS old_status FROM utxos
                   WHERE fencing_token = $1 AND status IN ('reserved', 'available')
                     AND ($2::bigint[] IS NULL OR id = ANY($2::bigint[]))
                   ORDER BY id FOR UPDATE
               ), upd AS (
                   UPDATE utxos r SET status = 'available', fencing_token = NULL, lease_expires_at = NULL
                   FROM s WHERE r.id = s.id
                   RETURNING r.id, r.txid, r.vout, r.satoshis, s.old_status
               ), ev AS (
                   INSERT INTO utxo_events (utxo_id, kind, fencing_token, from_status, to_status, caller_id)
                   SELECT id, 'release', $1, old_status, 'available', $3 FROM upd
               )
               SELECT txid, vout FROM upd ORDER BY id""",
            fencing_token,
            list(row_ids) if row_ids is not None else None,
            caller_id,
        )
        return [Outpoint(r["txid"], r["vout"]) for r in rows]
