"""What the pool's queries share: the columns of an outpoint row, the lease orders, and row mapping."""

from __future__ import annotations

import asyncpg

from proofline_kit.wire import Outpoint
from services.utxo.domain.models import LeaseRow, Purpose, Strategy, Utxo, UtxoStatus

# Every query that returns outpoints selects these from `utxos u` (or a CTE aliased u). The lease id
# is shown only while the outpoint is RESERVED; confirmations come from the last chain tip seen.
COLUMNS_NO_LEASE = """u.id, u.txid, u.vout, u.satoshis, u.locking_script, u.owner_key_id, u.purpose, u.status,
    u.fencing_token, u.lease_expires_at, u.spent_by_txid, u.competing_txids, u.status_reason, u.block_height,
    u.created_at, u.updated_at, u.unconfirmed_depth,
    CASE WHEN u.block_height IS NULL THEN 0
         ELSE GREATEST(COALESCE((SELECT t.height FROM chain_tip t), 0) - u.block_height + 1, 0) END AS confirmations"""


COLUMNS = (
    COLUMNS_NO_LEASE
    + """,
    CASE WHEN u.status = 'reserved'
         THEN (SELECT l.lease_id FROM leases l WHERE l.fencing_token = u.fencing_token) ELSE '' END AS lease_id"""
)


def columns_of_lease(lease_id_param: int) -> str:
    """The columns for rows just reserved by a lease whose id is query parameter `lease_id_param`."""
    return f"{COLUMNS_NO_LEASE},\n    ${lease_id_param}::text AS lease_id"


# Shallower coins first (unconfirmed_depth), then the strategy: the order of the partial indexes
# utxos_available_smallest / _largest (migration 0007) after their purpose.
ORDER = {
    Strategy.SMALLEST_FIRST: "u.unconfirmed_depth, u.satoshis, u.id",
    Strategy.LARGEST_FIRST: "u.unconfirmed_depth, u.satoshis DESC, u.id",
}


def leasable(depth_param: int) -> str:
    """What a lease query may take: purpose $1, owner $2 ('' = any), at least $3 satoshis, and an
    unconfirmed_depth of at most query parameter `depth_param` (0 = coins on chain evidence only)."""
    return (
        "u.status = 'available' AND u.purpose = $1 AND ($2 = '' OR u.owner_key_id = $2) AND u.satoshis >= $3"
        f" AND u.unconfirmed_depth <= ${depth_param}::smallint"
    )


LEASE_COLUMNS = "fencing_token, lease_id, caller_id, holder, purpose, strategy, created_at, expires_at, now() AS db_now"

PURPOSES = {p.value: p for p in Purpose}

STATUSES = {s.value: s for s in UtxoStatus}


def utxo_from(row: asyncpg.Record) -> Utxo:
    """A row of COLUMNS (first in the select list); read by position: batches map hundreds of rows."""
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
        unconfirmed_depth,
        confirmations,
        lease_id,
    ) = row[:19]
    return Utxo(
        row_id,
        fencing_token,
        Outpoint(txid, vout),
        satoshis,
        locking_script,
        owner_key_id,
        PURPOSES[purpose],
        STATUSES[status],
        block_height or 0,
        confirmations,
        lease_id or "",
        lease_expires_at,
        spent_by_txid or "",
        tuple(competing_txids),
        status_reason,
        created_at,
        updated_at,
        unconfirmed_depth,
    )


def lease_from(row: asyncpg.Record) -> LeaseRow:
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
