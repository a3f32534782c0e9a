"""All SQL of the UTXO pool."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg

from proofline_kit import idempotency
from proofline_kit.database import DbConnection
from proofline_kit.wire import Outpoint
from services.utxo.domain.models import (
    Bucket,
    Purpose,
    Strategy,
    TrackedOutput,
    Utxo,
    UtxoFilter,
    UtxoStatus,
)

MIGRATIONS = Path(__file__).parent / "migrations"

# Every query that returns outpoints selects these from `utxos u` (or a CTE aliased u). The lease id
# is shown only while the outpoint is RESERVED; confirmations come from the last chain tip seen.
_COLUMNS_NO_LEASE = """u.id, u.txid, u.vout, u.satoshis, u.locking_script, u.owner_key_id, u.purpose, u.status,
    u.fencing_token, u.lease_expires_at, u.spent_by_txid, u.competing_txids, u.status_reason, u.block_height,
    u.created_at, u.updated_at,
    CASE WHEN u.block_height IS NULL THEN 0
         ELSE GREATEST(COALESCE((SELECT t.height FROM chain_tip t), 0) - u.block_height + 1, 0) END AS confirmations"""
_COLUMNS = (
    _COLUMNS_NO_LEASE
    + """,
    CASE WHEN u.status = 'reserved'
         THEN (SELECT l.lease_id FROM leases l WHERE l.fencing_token = u.fencing_token) ELSE '' END AS lease_id"""
)


def _columns_of_lease(lease_id_param: int) -> str:
    """The columns for rows just reserved by a lease whose id is query parameter `lease_id_param`."""
    return f"{_COLUMNS_NO_LEASE},\n    ${lease_id_param}::text AS lease_id"


_ORDER = {
    Strategy.SMALLEST_FIRST: "u.satoshis, u.id",
    Strategy.LARGEST_FIRST: "u.satoshis DESC, u.id",
}

_LEASABLE = """u.status = 'available' AND u.purpose = $1 AND ($2 = '' OR u.owner_key_id = $2) AND u.satoshis >= $3"""

_LEASE_COLUMNS = (
    "fencing_token, lease_id, caller_id, holder, purpose, strategy, created_at, expires_at, now() AS db_now"
)


_PURPOSES = {p.value: p for p in Purpose}
_STATUSES = {s.value: s for s in UtxoStatus}


def _utxo(row: asyncpg.Record) -> Utxo:
    """A row of _COLUMNS (first in the select list); read by position: batches map hundreds of rows."""
    (
        row_id,
        txid,
        vout,
        satoshis,
        locking_script,
        owner_key_id,
        purpose,
        status,
        fencing_token,
        lease_expires_at,
        spent_by_txid,
        competing_txids,
        status_reason,
        block_height,
        created_at,
        updated_at,
        confirmations,
        lease_id,
    ) = row[:18]
    return Utxo(
        row_id,
        fencing_token,
        Outpoint(txid, vout),
        satoshis,
        locking_script,
        owner_key_id,
        _PURPOSES[purpose],
        _STATUSES[status],
        block_height or 0,
        confirmations,
        lease_id or "",
        lease_expires_at,
        spent_by_txid or "",
        tuple(competing_txids),
        status_reason,
        created_at,
        updated_at,
    )


@dataclass(frozen=True, slots=True)
class LeaseRow:
    fencing_token: int
    lease_id: str
    caller_id: str
    holder: str
    purpose: Purpose
    strategy: Strategy
    created_at: datetime
    expires_at: datetime
    db_now: datetime


def _lease(row: asyncpg.Record) -> LeaseRow:
    return LeaseRow(
        fencing_token=row["fencing_token"],
        lease_id=row["lease_id"],
        caller_id=row["caller_id"],
        holder=row["holder"],
        purpose=Purpose(row["purpose"]),
        strategy=Strategy(row["strategy"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        db_now=row["db_now"],
    )


@dataclass(frozen=True, slots=True)
class InputState:
    row_id: int
    status: UtxoStatus
    fencing_token: int | None
    spent_by_txid: str


@dataclass(frozen=True, slots=True)
class LeaseHistory:
    """Row ids a lease was granted, and those it gave up itself (released, committed, reported)."""

    granted: frozenset[int]
    given_up: frozenset[int]


@dataclass(frozen=True, slots=True)
class LeaseCounts:
    live_leases: int
    live_utxos: int
    expired_leases: int
    expired_utxos: int
    oldest_live_created_at: datetime | None


@dataclass(frozen=True, slots=True)
class PublishFigures:
    ready: int
    publish_satoshis: int
    funding_satoshis: int
    spends_last_hour: int


@dataclass(frozen=True, slots=True)
class MaintenanceRow:
    action: str
    last_run_at: datetime | None
    last_outcome: str
    cooldown_until: datetime | None
    fence: int


def in_strategy_order(strategy: Strategy, utxos: Sequence[Utxo]) -> list[Utxo]:
    """The order `_ORDER` gives in SQL."""
    if strategy is Strategy.SMALLEST_FIRST:
        return sorted(utxos, key=lambda u: (u.satoshis, u.row_id))
    return sorted(utxos, key=lambda u: (-u.satoshis, u.row_id))


class UtxoUnitOfWork:
    """One database transaction of the pool."""

    def __init__(self, conn: DbConnection) -> None:
        self._conn = conn

    async def now(self) -> datetime:
        value: datetime = await self._conn.fetchval("SELECT now()")
        return value

    # --- idempotency ---------------------------------------------------------------------------

    async def find_answer(self, caller_id: str, method: str, request_id: str, fingerprint: bytes) -> bytes | None:
        return await idempotency.find_answer(self._conn, caller_id, method, request_id, fingerprint)

    async def record_answer(
        self, caller_id: str, method: str, request_id: str, fingerprint: bytes, answer: bytes
    ) -> None:
        await idempotency.record_answer(self._conn, caller_id, method, request_id, fingerprint, answer)

    # --- leases --------------------------------------------------------------------------------

    async def insert_lease(
        self, lease_id: str, caller_id: str, holder: str, purpose: Purpose, strategy: Strategy, duration: timedelta
    ) -> LeaseRow:
        row = await self._conn.fetchrow(
            f"""INSERT INTO leases (lease_id, caller_id, holder, purpose, strategy, expires_at)
                VALUES ($1, $2, $3, $4, $5, now() + $6::interval)
                RETURNING {_LEASE_COLUMNS}""",
            lease_id,
            caller_id,
            holder,
            purpose.value,
            strategy.value,
            duration,
        )
        assert row is not None
        return _lease(row)

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
    ) -> tuple[LeaseRow, list[Utxo]]:
        """insert_lease then claim_count, in one statement (one round trip less per count lease)."""
        order = _ORDER[strategy]
        rows = await self._conn.fetch(
            f"""WITH l AS (
                    INSERT INTO leases (lease_id, caller_id, holder, purpose, strategy, expires_at)
                    VALUES ($5, $6, $7, $1, $8, now() + $9::interval)
                    RETURNING fencing_token, caller_id, holder, created_at, expires_at
                ), picked AS (
                    SELECT u.id FROM utxos u WHERE {_LEASABLE}
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
                SELECT {_columns_of_lease(5)}, u.id IS NOT NULL AS claimed, l.fencing_token AS lease_token,
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
        return lease, [_utxo(r) for r in rows if r["claimed"]]

    async def lease_by_id(self, lease_id: str, *, for_update: bool = False) -> LeaseRow | None:
        lock = " FOR UPDATE" if for_update else ""
        row = await self._conn.fetchrow(f"SELECT {_LEASE_COLUMNS} FROM leases WHERE lease_id = $1{lock}", lease_id)
        return _lease(row) if row else None

    async def set_lease_expiry(self, fencing_token: int, duration: timedelta) -> LeaseRow:
        row = await self._conn.fetchrow(
            f"""UPDATE leases SET expires_at = now() + $2::interval WHERE fencing_token = $1
                RETURNING {_LEASE_COLUMNS}""",
            fencing_token,
            duration,
        )
        assert row is not None
        return _lease(row)

    async def claim_count(
        self,
        lease: LeaseRow,
        owner_key_id: str,
        min_satoshis: int,
        limit: int,
    ) -> list[Utxo]:
        """Reserve up to `limit` AVAILABLE outpoints in strategy order, skipping rows others have locked."""
        order = _ORDER[lease.strategy]
        rows = await self._conn.fetch(
            f"""WITH picked AS (
                    SELECT u.id FROM utxos u WHERE {_LEASABLE}
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
                SELECT {_columns_of_lease(8)} FROM upd u ORDER BY {order}""",
            lease.purpose.value,
            owner_key_id,
            min_satoshis,
            limit,
            lease.fencing_token,
            lease.expires_at,
            lease.caller_id,
            lease.lease_id,
        )
        return [_utxo(r) for r in rows]

    async def lock_candidates(
        self,
        lease: LeaseRow,
        owner_key_id: str,
        min_satoshis: int,
        limit: int,
        exclude: Sequence[int],
    ) -> list[tuple[int, int]]:
        """Lock up to `limit` AVAILABLE outpoints in strategy order (not `exclude`): (row id, satoshis)."""
        order = _ORDER[lease.strategy]
        rows = await self._conn.fetch(
            f"""SELECT u.id, u.satoshis FROM utxos u WHERE {_LEASABLE} AND NOT (u.id = ANY($5::bigint[]))
                ORDER BY {order} LIMIT $4 FOR UPDATE SKIP LOCKED""",
            lease.purpose.value,
            owner_key_id,
            min_satoshis,
            limit,
            list(exclude),
        )
        return [(r["id"], r["satoshis"]) for r in rows]

    async def reserve_rows(self, lease: LeaseRow, row_ids: Sequence[int]) -> list[Utxo]:
        """Reserve rows this transaction has locked (AVAILABLE) for the lease."""
        order = _ORDER[lease.strategy]
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
                SELECT {_columns_of_lease(5)} FROM upd u ORDER BY {order}""",
            list(row_ids),
            lease.fencing_token,
            lease.expires_at,
            lease.caller_id,
            lease.lease_id,
        )
        return [_utxo(r) for r in rows]

    async def leasable_summary(self, purpose: Purpose, owner_key_id: str, min_satoshis: int) -> tuple[int, int]:
        """(count, satoshis) of outpoints a lease with these filters could take now, expired
        reservations included."""
        row = await self._conn.fetchrow(
            """SELECT count(*) AS n, COALESCE(sum(u.satoshis), 0)::bigint AS sats FROM utxos u
               WHERE u.purpose = $1 AND ($2 = '' OR u.owner_key_id = $2) AND u.satoshis >= $3
                 AND (u.status = 'available' OR (u.status = 'reserved' AND u.lease_expires_at <= now()))""",
            purpose.value,
            owner_key_id,
            min_satoshis,
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
            f"""SELECT {_COLUMNS} FROM utxos u
                WHERE u.fencing_token = $1 AND u.status IN ('reserved', 'available')
                ORDER BY {_ORDER[lease.strategy]}""",
            lease.fencing_token,
        )
        return [_utxo(r) for r in rows]

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

    # --- outpoints -----------------------------------------------------------------------------

    async def lock_outpoints(self, outpoints: Sequence[Outpoint]) -> dict[Outpoint, Utxo]:
        """The known outpoints among `outpoints`, locked in id order (deadlock-free across callers)."""
        rows = await self._conn.fetch(
            f"""SELECT {_COLUMNS} FROM utxos u
                JOIN unnest($1::text[], $2::int[]) AS o(txid, vout) ON u.txid = o.txid AND u.vout = o.vout
                ORDER BY u.id FOR UPDATE OF u""",
            [o.txid for o in outpoints],
            [o.vout for o in outpoints],
        )
        found = [_utxo(r) for r in rows]
        return {u.outpoint: u for u in found}

    async def outpoints(self, outpoints: Sequence[Outpoint]) -> dict[Outpoint, Utxo]:
        rows = await self._conn.fetch(
            f"""SELECT {_COLUMNS} FROM utxos u
                JOIN unnest($1::text[], $2::int[]) AS o(txid, vout) ON u.txid = o.txid AND u.vout = o.vout""",
            [o.txid for o in outpoints],
            [o.vout for o in outpoints],
        )
        found = [_utxo(r) for r in rows]
        return {u.outpoint: u for u in found}

    async def by_row_ids(self, row_ids: Sequence[int]) -> list[Utxo]:
        rows = await self._conn.fetch(
            f"SELECT {_COLUMNS} FROM utxos u WHERE u.id = ANY($1::bigint[]) ORDER BY u.id", list(row_ids)
        )
        return [_utxo(r) for r in rows]

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
                    SELECT * FROM unnest($1::text[], $2::int[], $3::text[]) AS i(txid, vout, spending_txid)
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
                SELECT {_COLUMNS_NO_LEASE}, '' AS lease_id, u.id IS NOT NULL AS spent, false AS carried,
                       l.txid AS input_txid, l.vout AS input_vout, l.id AS input_id, l.status AS input_status,
                       l.fencing_token AS input_token, l.spent_by_txid AS input_spent_by
                FROM locked l LEFT JOIN upd u ON u.id = l.id
                UNION ALL
                SELECT {_COLUMNS_NO_LEASE}, CASE WHEN u.status = 'reserved' THEN $7 ELSE '' END, false, true,
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
                utxo = _utxo(r)
                spent[utxo.outpoint] = utxo
            elif r["carried"]:
                carried.append(_utxo(r))
        found = {}
        if len(spent) < len(inputs):
            found = {
                Outpoint(r["input_txid"], r["input_vout"]): InputState(
                    r["input_id"], _STATUSES[r["input_status"]], r["input_token"], r["input_spent_by"] or ""
                )
                for r in rows
                if not r["carried"]
            }
        if lease is not None:
            carried = in_strategy_order(lease.strategy, carried)
        return spent, found, carried

    async def insert_outputs(self, outputs: Sequence[TrackedOutput], caller_id: str, reason: str) -> list[Utxo]:
        """Insert new UNCONFIRMED outputs; outpoints already known are left alone and not returned."""
        rows = await self._conn.fetch(
            f"""WITH ins AS (
                    INSERT INTO utxos (txid, vout, satoshis, locking_script, owner_key_id, purpose, status)
                    SELECT o.txid, o.vout, o.satoshis, o.script, o.owner, o.purpose, 'unconfirmed'
                    FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bytea[], $5::text[], $6::text[])
                         AS o(txid, vout, satoshis, script, owner, purpose)
                    ORDER BY o.txid, o.vout
                    ON CONFLICT (txid, vout) DO NOTHING
                    RETURNING *
                ), ev AS (
                    INSERT INTO utxo_events (utxo_id, kind, txid, to_status, reason, caller_id)
                    SELECT id, 'added', txid, 'unconfirmed', $8, $7 FROM ins
                )
                SELECT {_COLUMNS} FROM ins u""",
            [o.outpoint.txid for o in outputs],
            [o.outpoint.vout for o in outputs],
            [o.satoshis for o in outputs],
            [o.locking_script for o in outputs],
            [o.owner_key_id for o in outputs],
            [o.purpose.value for o in outputs],
            caller_id,
            reason,
        )
        return [_utxo(r) for r in rows]

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
                SELECT {_COLUMNS} FROM upd u ORDER BY u.id""",
            [u.row_id for u in rows],
            [u.status.value for u in rows],
            reason,
            spending_txid,
            list(competing_txids),
            detail,
            fencing_token,
            caller_id,
        )
        return [_utxo(r) for r in result]

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
                SELECT {_COLUMNS} FROM upd u ORDER BY u.id""",
            txid,
            reason,
            caller_id,
        )
        return [_utxo(r) for r in rows]

    async def list_utxos(self, filters: UtxoFilter, fencing_token: int | None, after_id: int, limit: int) -> list[Utxo]:
        rows = await self._conn.fetch(
            f"""SELECT {_COLUMNS} FROM utxos u
                WHERE u.id > $1
                  AND ($2 = '' OR u.owner_key_id = $2)
                  AND ($3::text IS NULL OR u.purpose = $3)
                  AND (cardinality($4::text[]) = 0 OR u.status = ANY($4::text[]))
                  AND ($5::bigint IS NULL
                       OR (u.fencing_token = $5 AND u.status IN ('reserved', 'available')))
                  AND ($6 = '' OR u.txid = $6)
                  AND ($7 = 0 OR u.satoshis >= $7)
                  AND ($8 = 0 OR u.satoshis <= $8)
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
        return [_utxo(r) for r in rows]

    # --- health --------------------------------------------------------------------------------

    async def buckets(self, owner_key_id: str, purpose: Purpose | None) -> list[Bucket]:
        rows = await self._conn.fetch(
            """SELECT purpose, status, count(*) AS n, COALESCE(sum(satoshis), 0)::bigint AS sats FROM utxos
               WHERE ($1 = '' OR owner_key_id = $1) AND ($2::text IS NULL OR purpose = $2)
               GROUP BY purpose, status ORDER BY purpose, status""",
            owner_key_id,
            purpose.value if purpose else None,
        )
        return [Bucket(Purpose(r["purpose"]), UtxoStatus(r["status"]), int(r["n"]), int(r["sats"])) for r in rows]

    async def lease_counts(self, owner_key_id: str, purpose: Purpose | None) -> LeaseCounts:
        row = await self._conn.fetchrow(
            """WITH held AS (
                   SELECT u.fencing_token, count(*) AS n, bool_or(u.lease_expires_at > now()) AS live
                   FROM utxos u
                   WHERE u.status = 'reserved' AND ($1 = '' OR u.owner_key_id = $1)
                     AND ($2::text IS NULL OR u.purpose = $2)
                   GROUP BY u.fencing_token
               )
               SELECT count(*) FILTER (WHERE live) AS live_leases,
                      COALESCE(sum(n) FILTER (WHERE live), 0)::bigint AS live_utxos,
                      count(*) FILTER (WHERE NOT live) AS expired_leases,
                      COALESCE(sum(n) FILTER (WHERE NOT live), 0)::bigint AS expired_utxos,
                      (SELECT min(l.created_at) FROM leases l JOIN held h USING (fencing_token) WHERE h.live)
                          AS oldest
               FROM held""",
            owner_key_id,
            purpose.value if purpose else None,
        )
        assert row is not None
        return LeaseCounts(
            int(row["live_leases"]),
            int(row["live_utxos"]),
            int(row["expired_leases"]),
            int(row["expired_utxos"]),
            row["oldest"],
        )

    async def publish_figures(self, owner_key_id: str, min_satoshis: int) -> PublishFigures:
        row = await self._conn.fetchrow(
            """SELECT
                 (SELECT count(*) FROM utxos
                  WHERE purpose = 'publish' AND status = 'available' AND satoshis >= $2
                    AND ($1 = '' OR owner_key_id = $1)) AS ready,
                 (SELECT COALESCE(sum(satoshis), 0)::bigint FROM utxos
                  WHERE purpose = 'publish' AND status IN ('available', 'reserved', 'unconfirmed')
                    AND ($1 = '' OR owner_key_id = $1)) AS publish_sats,
                 (SELECT COALESCE(sum(satoshis), 0)::bigint FROM utxos
                  WHERE purpose = 'funding' AND status IN ('available', 'reserved', 'unconfirmed')
                    AND ($1 = '' OR owner_key_id = $1)) AS funding_sats,
                 (SELECT count(*) FROM utxo_events e JOIN utxos u ON u.id = e.utxo_id
                  WHERE e.kind = 'commit' AND e.at > now() - interval '1 hour' AND u.purpose = 'publish'
                    AND ($1 = '' OR u.owner_key_id = $1)) AS spends""",
            owner_key_id,
            min_satoshis,
        )
        assert row is not None
        return PublishFigures(int(row["ready"]), int(row["publish_sats"]), int(row["funding_sats"]), int(row["spends"]))

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

    async def tip_height(self) -> int:
        value = await self._conn.fetchval("SELECT height FROM chain_tip")
        return int(value or 0)

    # --- maintenance ---------------------------------------------------------------------------

    async def set_tip(self, height: int) -> None:
        await self._conn.execute(
            """INSERT INTO chain_tip (singleton, height) VALUES (true, $1)
               ON CONFLICT (singleton) DO UPDATE SET height = EXCLUDED.height""",
            height,
        )

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
            f"""SELECT {_COLUMNS} FROM utxos u
                WHERE u.owner_key_id = ANY($1::text[])
                  AND u.status IN ('unconfirmed', 'available', 'reserved', 'dirty')
                ORDER BY u.id""",
            list(owner_key_ids),
        )
        return [_utxo(r) for r in rows]

    async def count_available(self, purpose: Purpose, owner_key_id: str) -> int:
        value = await self._conn.fetchval(
            """SELECT count(*) FROM utxos u
               WHERE u.status = 'available' AND u.purpose = $1 AND ($2 = '' OR u.owner_key_id = $2)""",
            purpose.value,
            owner_key_id,
        )
        return int(value)

    async def peek_available(
        self, purpose: Purpose, owner_key_id: str, strategy: Strategy, min_satoshis: int, limit: int
    ) -> list[Utxo]:
        """What a lease with these filters would take first (no locks: plans and dry runs)."""
        rows = await self._conn.fetch(
            f"""SELECT {_COLUMNS} FROM utxos u WHERE {_LEASABLE}
                ORDER BY {_ORDER[strategy]} LIMIT $4""",
            purpose.value,
            owner_key_id,
            min_satoshis,
            limit,
        )
        return [_utxo(r) for r in rows]

    async def insert_found(
        self, outputs: Sequence[TrackedOutput], statuses: Sequence[UtxoStatus], heights: Sequence[int | None]
    ) -> int:
        """Outputs a sync found on chain; outpoints known meanwhile are left alone."""
        rows = await self._conn.fetch(
            """WITH ins AS (
                   INSERT INTO utxos (txid, vout, satoshis, locking_script, owner_key_id, purpose, status, block_height)
                   SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bytea[], $5::text[], $6::text[],
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
        sync saw (a lease or commit in between wins)."""
        rows = await self._conn.fetch(
            """WITH c AS (
                   SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[])
                       AS c(id, from_status, to_status, reason, height, spent_by)
               ), upd AS (
                   UPDATE utxos r SET
                       status = c.to_status,
                       block_height = CASE WHEN c.to_status IN ('spent', 'invalid') THEN r.block_height
                                           ELSE c.height END,
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

    # --- retention -----------------------------------------------------------------------------

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


class UtxoStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UtxoUnitOfWork]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield UtxoUnitOfWork(conn)

    @asynccontextmanager
    async def read_only(self) -> AsyncIterator[UtxoUnitOfWork]:
        """Several reads from one snapshot."""
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            yield UtxoUnitOfWork(conn)

    async def next_fence(self) -> int:
        async with self._pool.acquire() as conn:
            value: int = await conn.fetchval("SELECT nextval('maintenance_fences')")
        return value

    async def ping(self) -> None:
        async with self._pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
