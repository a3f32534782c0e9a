"""The database as the last line of defence (migration 0005): impossible numbers are refused by
name, every uint32 vout is storable (an unknown one is simply not found), and sums past 2^63 - 1
keep the health snapshot honest."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import grpc
import pytest
from prometheus_client import CollectorRegistry
from proofline.common.v1 import common_pb2
from proofline.utxo.v1 import utxo_pb2

from proofline_kit.database import create_pool
from proofline_kit.wire import Outpoint
from services.utxo.domain.models import INT64_MAX, MAX_DURATION, Purpose, UtxoStatus
from services.utxo.store.store import UtxoStore
from services.utxo.workers.metrics import PoolMetrics
from tests.harness.grpc_errors import expect_rpc_error
from tests.utxo.conftest import (
    OWNER,
    P2PKH,
    PUBLISH,
    PUBLISHER,
    WALLET,
    UtxoUnderTest,
    lease_request,
    random_txid,
    status_of,
)

MAX_SATOSHIS = 2_100_000_000_000_000
MAX_VOUT = 4_294_967_295
# Outputs at the per-row maximum whose sum passes 2^63 - 1.
MANY = INT64_MAX // MAX_SATOSHIS + 10

_INSERT_UTXO = """INSERT INTO utxos (txid, vout, satoshis, locking_script, owner_key_id, purpose, status,
                                     block_height, fencing_token)
                  VALUES ($1, $2, $3, $4, $5, 'publish', 'available', $6, $7)"""


async def insert_utxo(
    db: asyncpg.Connection,
    *,
    vout: int = 0,
    satoshis: int = 1000,
    block_height: int | None = 100,
    fencing_token: int | None = None,
) -> str:
    txid = random_txid()
    await db.execute(_INSERT_UTXO, txid, vout, satoshis, P2PKH, OWNER, block_height, fencing_token)
    return txid


UTXO_VALUES = [
    ("satoshis", 0, "utxos_satoshis_range"),
    ("satoshis", -1, "utxos_satoshis_range"),
    ("satoshis", MAX_SATOSHIS + 1, "utxos_satoshis_range"),
    ("satoshis", INT64_MAX, "utxos_satoshis_range"),
    ("vout", -1, "utxos_vout_range"),
    ("vout", MAX_VOUT + 1, "utxos_vout_range"),
    ("block_height", 0, "utxos_block_height_check"),
    ("block_height", -1, "utxos_block_height_check"),
    ("fencing_token", 0, "utxos_fencing_token_range"),
    ("fencing_token", -1, "utxos_fencing_token_range"),
]


@pytest.mark.parametrize(("column", "value", "constraint"), UTXO_VALUES)
async def test_an_impossible_utxo_value_is_refused_on_insert(
    db: asyncpg.Connection, column: str, value: int, constraint: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await insert_utxo(db, **{column: value})
    assert refused.value.constraint_name == constraint


@pytest.mark.parametrize(("column", "value", "constraint"), UTXO_VALUES)
async def test_an_impossible_utxo_value_is_refused_on_update(
    db: asyncpg.Connection, column: str, value: int, constraint: str
) -> None:
    txid = await insert_utxo(db)
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await db.execute(f"UPDATE utxos SET {column} = $2 WHERE txid = $1", txid, value)
    assert refused.value.constraint_name == constraint


async def test_a_negative_unconfirmed_depth_is_refused(db: asyncpg.Connection) -> None:
    """Migration 0007: 0 = on chain evidence, n >= 1 = our own accepted, unmined chain of n."""
    txid = await insert_utxo(db)
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await db.execute("UPDATE utxos SET unconfirmed_depth = -1 WHERE txid = $1", txid)
    assert refused.value.constraint_name == "utxos_unconfirmed_depth_range"


@pytest.mark.parametrize(
    ("statement", "constraint"),
    [
        (
            """INSERT INTO leases (fencing_token, lease_id, caller_id, purpose, strategy, expires_at)
               VALUES (0, 'l1', 'x', 'publish', 'smallest_first', now())""",
            "leases_fencing_token_range",
        ),
        (
            """INSERT INTO utxo_events (utxo_id, kind, fencing_token, to_status)
               VALUES (1, 'lease', -1, 'reserved')""",
            "utxo_events_fencing_token_range",
        ),
        ("INSERT INTO chain_tip (height) VALUES (-1)", "chain_tip_height_check"),
        ("UPDATE maintenance_state SET fence = -1 WHERE action = 'sync'", "maintenance_state_fence_range"),
        (
            f"""INSERT INTO maintenance_txs (txid, action, extended_tx, attempts)
                VALUES ('{"ab" * 32}', 'split', '\\x00', -1)""",
            "maintenance_txs_attempts_range",
        ),
    ],
)
async def test_impossible_counts_and_tokens_are_refused(
    db: asyncpg.Connection, statement: str, constraint: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await db.execute(statement)
    assert refused.value.constraint_name == constraint


async def test_an_attempt_count_cannot_go_below_zero(db: asyncpg.Connection) -> None:
    await db.execute(
        "INSERT INTO maintenance_txs (txid, action, extended_tx) VALUES ($1, 'sweep', '\\x00')", random_txid()
    )
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await db.execute("UPDATE maintenance_txs SET attempts = attempts - 1")
    assert refused.value.constraint_name == "maintenance_txs_attempts_range"


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[UtxoStore]:
    pool = await create_pool(database_url, "utxo", 2)
    try:
        yield UtxoStore(pool)
    finally:
        await pool.close()


async def test_the_largest_vout_and_amount_are_stored_and_read_back(
    db: asyncpg.Connection, store: UtxoStore, utxo: UtxoUnderTest
) -> None:
    txid = await insert_utxo(db, vout=MAX_VOUT, satoshis=MAX_SATOSHIS)
    async with store.snapshot() as uow:
        found = await uow.outpoints([Outpoint(txid, MAX_VOUT), Outpoint(txid, MAX_VOUT - 1)])
    assert list(found) == [Outpoint(txid, MAX_VOUT)]
    assert found[Outpoint(txid, MAX_VOUT)].satoshis == MAX_SATOSHIS
    listed = await utxo.stub.ListUtxos(
        utxo_pb2.ListUtxosRequest(txid=txid, min_satoshis=MAX_SATOSHIS, max_satoshis=MAX_SATOSHIS),
        metadata=PUBLISHER,
    )
    assert [(u.outpoint.vout, u.satoshis) for u in listed.utxos] == [(MAX_VOUT, MAX_SATOSHIS)]


async def test_add_outputs_stores_the_largest_vout(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    outpoint = common_pb2.Outpoint(txid=random_txid(), vout=MAX_VOUT)
    output = utxo_pb2.NewOutput(
        outpoint=outpoint, satoshis=MAX_SATOSHIS, locking_script=P2PKH, owner_key_id=OWNER, purpose=PUBLISH
    )
    added = await utxo.stub.AddOutputs(utxo_pb2.AddOutputsRequest(request_id="a1", outputs=[output]), metadata=WALLET)
    assert [(u.outpoint, u.satoshis) for u in added.utxos] == [(outpoint, MAX_SATOSHIS)]
    assert await status_of(db, outpoint) == "unconfirmed"


async def test_list_utxos_takes_satoshi_bounds_above_int32(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    small = await insert_utxo(db, satoshis=1000)
    large = await insert_utxo(db, satoshis=MAX_SATOSHIS - 1)
    everything = await utxo.stub.ListUtxos(utxo_pb2.ListUtxosRequest(max_satoshis=MAX_SATOSHIS), metadata=PUBLISHER)
    assert sorted(u.outpoint.txid for u in everything.utxos) == sorted([small, large])
    big = await utxo.stub.ListUtxos(utxo_pb2.ListUtxosRequest(min_satoshis=2**31), metadata=PUBLISHER)
    assert [u.outpoint.txid for u in big.utxos] == [large]


async def _leased_at_max_vout(utxo: UtxoUnderTest, db: asyncpg.Connection) -> utxo_pb2.Lease:
    await insert_utxo(db, vout=MAX_VOUT)
    response = await utxo.stub.LeaseUtxos(lease_request("r1", count=1), metadata=PUBLISHER)
    assert [u.outpoint.vout for u in response.lease.utxos] == [MAX_VOUT]
    return response.lease


def _unknown() -> common_pb2.Outpoint:
    return common_pb2.Outpoint(txid=random_txid(), vout=MAX_VOUT)


async def test_commit_spend_naming_an_unknown_max_vout_is_not_in_the_lease(
    utxo: UtxoUnderTest, db: asyncpg.Connection
) -> None:
    lease = await _leased_at_max_vout(utxo, db)
    for request_id, inputs in (("c1", [_unknown()]), ("c2", [lease.utxos[0].outpoint, _unknown()])):
        await expect_rpc_error(
            utxo.stub.CommitSpend(
                utxo_pb2.CommitSpendRequest(
                    request_id=request_id,
                    lease_id=lease.lease_id,
                    fencing_token=lease.fencing_token,
                    spends=[utxo_pb2.Spend(txid=random_txid(), inputs=inputs)],
                ),
                metadata=PUBLISHER,
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
            "UTXO_NOT_IN_LEASE",
        )
    assert await status_of(db, lease.utxos[0].outpoint) == "reserved"
    spent = await utxo.stub.CommitSpend(
        utxo_pb2.CommitSpendRequest(
            request_id="c3",
            lease_id=lease.lease_id,
            fencing_token=lease.fencing_token,
            spends=[utxo_pb2.Spend(txid=random_txid(), inputs=[lease.utxos[0].outpoint])],
        ),
        metadata=PUBLISHER,
    )
    assert [u.outpoint for u in spent.spent] == [lease.utxos[0].outpoint]


async def test_report_conflict_naming_an_unknown_max_vout_is_not_found(
    utxo: UtxoUnderTest, db: asyncpg.Connection
) -> None:
    lease = await _leased_at_max_vout(utxo, db)
    await expect_rpc_error(
        utxo.stub.ReportConflict(
            utxo_pb2.ReportConflictRequest(
                request_id="d1", outpoints=[_unknown()], kind=utxo_pb2.CONFLICT_KIND_REJECTED
            ),
            metadata=WALLET,
        ),
        grpc.StatusCode.NOT_FOUND,
        "UTXO_NOT_FOUND",
    )
    await expect_rpc_error(
        utxo.stub.ReportConflict(
            utxo_pb2.ReportConflictRequest(
                request_id="d2",
                lease_id=lease.lease_id,
                fencing_token=lease.fencing_token,
                outpoints=[lease.utxos[0].outpoint, _unknown()],
                kind=utxo_pb2.CONFLICT_KIND_REJECTED,
            ),
            metadata=PUBLISHER,
        ),
        grpc.StatusCode.NOT_FOUND,
        "UTXO_NOT_FOUND",
    )
    assert await status_of(db, lease.utxos[0].outpoint) == "reserved"


async def test_release_lease_naming_an_unknown_max_vout_releases_nothing(
    utxo: UtxoUnderTest, db: asyncpg.Connection
) -> None:
    lease = await _leased_at_max_vout(utxo, db)
    response = await utxo.stub.ReleaseLease(
        utxo_pb2.ReleaseLeaseRequest(request_id="x1", lease_id=lease.lease_id, outpoints=[_unknown()]),
        metadata=PUBLISHER,
    )
    assert list(response.released) == []
    assert [u.outpoint for u in response.lease.utxos] == [lease.utxos[0].outpoint]
    response = await utxo.stub.ReleaseLease(
        utxo_pb2.ReleaseLeaseRequest(request_id="x2", lease_id=lease.lease_id, outpoints=[lease.utxos[0].outpoint]),
        metadata=PUBLISHER,
    )
    assert list(response.released) == [lease.utxos[0].outpoint]
    assert await status_of(db, lease.utxos[0].outpoint) == "available"


async def _fill_past_int64(db: asyncpg.Connection) -> None:
    """MANY publish outputs and 3 funding outputs at the per-row maximum, and one publish spend in
    the last hour (so the runway has a rate)."""
    await db.execute(
        """INSERT INTO utxos (txid, vout, satoshis, locking_script, owner_key_id, purpose, status, block_height)
           SELECT lpad(to_hex(i), 64, '0'), 0, $1, $2, $3, CASE WHEN i <= 3 THEN 'funding' ELSE 'publish' END,
                  'available', 100
           FROM generate_series(1, $4 + 3) AS i""",
        MAX_SATOSHIS,
        P2PKH,
        OWNER,
        MANY,
    )
    await db.execute(
        """INSERT INTO utxo_events (utxo_id, kind, to_status)
           SELECT id, 'commit', 'spent' FROM utxos WHERE purpose = 'publish' ORDER BY id LIMIT 1"""
    )


async def test_the_store_sums_past_int64_exactly(db: asyncpg.Connection, store: UtxoStore) -> None:
    await _fill_past_int64(db)
    exact = MANY * MAX_SATOSHIS
    assert exact > INT64_MAX
    async with store.snapshot() as uow:
        buckets = await uow.buckets("", None)
        figures = await uow.publish_figures(OWNER, 1)
        summary = await uow.leasable_summary(Purpose.PUBLISH, "", 0)
    assert [(b.purpose, b.status, b.count, b.satoshis) for b in buckets] == [
        (Purpose.FUNDING, UtxoStatus.AVAILABLE, 3, 3 * MAX_SATOSHIS),
        (Purpose.PUBLISH, UtxoStatus.AVAILABLE, MANY, exact),
    ]
    assert (figures.ready, figures.publish_satoshis, figures.funding_satoshis) == (MANY, exact, 3 * MAX_SATOSHIS)
    assert figures.spends_last_hour == 1
    assert summary == (MANY, exact)


async def test_pool_health_saturates_sums_past_int64(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    await _fill_past_int64(db)
    response = await utxo.stub.GetPoolHealth(utxo_pb2.GetPoolHealthRequest(), metadata=PUBLISHER)
    assert [(b.purpose, b.count, b.satoshis) for b in response.buckets] == [
        (utxo_pb2.UTXO_PURPOSE_FUNDING, 3, 3 * MAX_SATOSHIS),
        (PUBLISH, MANY, INT64_MAX),
    ]
    runway = response.runway
    fee = runway.publish_fee_satoshis
    assert fee >= 1
    assert runway.ready_publishes == MANY
    assert runway.funded_publishes == min(MANY * MAX_SATOSHIS // fee, INT64_MAX)
    assert runway.funded_publishes_with_funding == min((MANY + 3) * MAX_SATOSHIS // fee, INT64_MAX)
    assert runway.spends_last_hour == 1
    assert runway.estimated_remaining.ToTimedelta() == MAX_DURATION
    # The same snapshot feeds the metrics.
    health = await utxo.running.pool.snapshot()
    registry = CollectorRegistry()
    PoolMetrics(registry).update(health)
    labels = {"purpose": "publish", "status": "available"}
    assert registry.get_sample_value("proofline_utxo_pool_satoshis", labels) == float(INT64_MAX)
    assert registry.get_sample_value("proofline_utxo_pool_utxos", labels) == MANY
    assert registry.get_sample_value("proofline_utxo_runway_seconds") == MAX_DURATION / timedelta(seconds=1)
