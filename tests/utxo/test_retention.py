"""Retention (UTXO_RETENTION_MS): old terminal outpoints, their events and finished leases are
pruned in bounded batches; live rows and recent history are kept whatever their age."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import pytest
from proofline.utxo.v1 import utxo_pb2

from proofline_kit.settings import EnvReader
from services.utxo.domain.models import PruneResult
from services.utxo.settings import read_utxo_settings
from services.utxo.store import UtxoStore
from tests.harness.grpc_errors import expect_rpc_error
from tests.utxo.chain_stack import chain_stack
from tests.utxo.conftest import (
    ADMIN,
    OWNER,
    P2PKH,
    PUBLISH,
    PUBLISHER,
    UtxoUnderTest,
    lease_request,
    random_txid,
    seed,
    start_utxo_under_test,
    stop_utxo_under_test,
    utxo_env,
)

WEEK = timedelta(days=7)
CHANGE = utxo_pb2.SpendOutput(vout=1, satoshis=90, locking_script=P2PKH, owner_key_id=OWNER, purpose=PUBLISH)


async def age_utxos(db: asyncpg.Connection, txids: list[str], days: int = 8) -> None:
    """Move the outpoints of `txids`, their events and the leases that reserved them `days` into the
    past (the updated_at triggers would otherwise stamp the update with now())."""
    async with db.transaction():
        await db.execute("ALTER TABLE utxos DISABLE TRIGGER utxos_updated_at")
        await db.execute("ALTER TABLE leases DISABLE TRIGGER leases_updated_at")
        back = timedelta(days=days)
        await db.execute(
            "UPDATE utxos SET updated_at = updated_at - $2::interval, created_at = created_at - $2::interval"
            " WHERE txid = ANY($1::text[])",
            txids,
            back,
        )
        await db.execute(
            "UPDATE utxo_events SET at = at - $2::interval"
            " WHERE utxo_id IN (SELECT id FROM utxos WHERE txid = ANY($1::text[]))",
            txids,
            back,
        )
        await db.execute(
            "UPDATE leases SET created_at = created_at - $2::interval, expires_at = expires_at - $2::interval,"
            " updated_at = updated_at - $2::interval"
            " WHERE fencing_token IN (SELECT fencing_token FROM utxos WHERE txid = ANY($1::text[])"
            "                         UNION SELECT e.fencing_token FROM utxo_events e JOIN utxos u ON u.id = e.utxo_id"
            "                         WHERE u.txid = ANY($1::text[]))",
            txids,
            back,
        )
        await db.execute("ALTER TABLE leases ENABLE TRIGGER leases_updated_at")
        await db.execute("ALTER TABLE utxos ENABLE TRIGGER utxos_updated_at")


async def seed_old(db: asyncpg.Connection, status: str, count: int = 1) -> str:
    """`count` outpoints of one new txid in `status`, each with an event, all 8 days old."""
    txid = random_txid()
    await db.executemany(
        """INSERT INTO utxos (txid, vout, satoshis, locking_script, owner_key_id, purpose, status, block_height,
                              spent_at, spent_by_txid, status_reason)
           VALUES ($1, $2, 100, $3, $4, 'publish', $5, 100, $6, $7, $8)""",
        [
            (
                txid,
                vout,
                P2PKH,
                OWNER,
                status,
                datetime.now(UTC) if status == "spent" else None,
                random_txid() if status == "spent" else None,
                "double_spend" if status == "dirty" else "",
            )
            for vout in range(count)
        ],
    )
    await db.execute(
        "INSERT INTO utxo_events (utxo_id, kind, txid, to_status) SELECT id, 'chain', txid, status FROM utxos"
        " WHERE txid = $1",
        txid,
    )
    await age_utxos(db, [txid])
    return txid


async def seed_txid(db: asyncpg.Connection, satoshis: list[int]) -> str:
    return (await seed(db, satoshis))[0].txid


async def counts(db: asyncpg.Connection, txid: str) -> tuple[int, int]:
    row = await db.fetchrow(
        "SELECT (SELECT count(*) FROM utxos WHERE txid = $1) AS utxos,"
        " (SELECT count(*) FROM utxo_events e WHERE e.txid = $1"
        "   OR e.utxo_id IN (SELECT id FROM utxos WHERE txid = $1)) AS events",
        txid,
    )
    assert row is not None
    return int(row["utxos"]), int(row["events"])


@pytest.fixture
async def store(database_url: str, utxo: UtxoUnderTest) -> AsyncIterator[UtxoStore]:
    """A store of the test's own on the service's schema, to run single retention statements."""
    del utxo  # the service has migrated the schema
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4, server_settings={"search_path": "utxo"})
    try:
        yield UtxoStore(pool)
    finally:
        await pool.close()


async def test_old_terminal_rows_and_their_events_go_live_and_recent_rows_stay(
    utxo: UtxoUnderTest, db: asyncpg.Connection
) -> None:
    old_spent = await seed_old(db, "spent", 3)
    old_invalid = await seed_old(db, "invalid", 2)
    live = {status: await seed_old(db, status, 2) for status in ("available", "unconfirmed", "dirty")}
    # A lease taken 8 days ago (its lease row long expired), its outpoints still RESERVED: live.
    reserved_txid = await seed_txid(db, [500, 500])
    held = await utxo.stub.LeaseUtxos(lease_request("held", count=2, min_satoshis=500), metadata=PUBLISHER)
    assert len(held.lease.utxos) == 2
    await age_utxos(db, [reserved_txid])
    live["reserved"] = reserved_txid
    # Recent terminal rows stay.
    recent_spent = await seed_txid(db, [100])
    await db.execute(
        "UPDATE utxos SET status = 'spent', spent_at = now(), spent_by_txid = $2 WHERE txid = $1",
        recent_spent,
        random_txid(),
    )
    before = {txid: await counts(db, txid) for txid in [*live.values(), recent_spent]}

    result = await utxo.running.pool.prune(WEEK)

    assert (result.utxos, result.complete) == (5, True)
    assert result.events >= 5
    assert await counts(db, old_spent) == (0, 0)
    assert await counts(db, old_invalid) == (0, 0)
    for txid, figures in before.items():
        assert await counts(db, txid) == figures, txid
    assert await db.fetchval("SELECT count(*) FROM leases WHERE lease_id = $1", held.lease.lease_id) == 1
    statuses = await db.fetch("SELECT DISTINCT status FROM utxos ORDER BY status")
    assert [r["status"] for r in statuses] == ["available", "dirty", "reserved", "spent", "unconfirmed"]
    # Nothing refers to a pruned outpoint any more.
    assert (
        await db.fetchval(
            "SELECT count(*) FROM utxo_events e WHERE NOT EXISTS (SELECT 1 FROM utxos u WHERE u.id = e.utxo_id)"
        )
        == 0
    )
    # A second prune finds nothing.
    assert await utxo.running.pool.prune(WEEK) == PruneResult()


async def test_finished_leases_go_leases_holding_outpoints_stay(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    txid = await seed_txid(db, [100, 200, 300])
    spent = await utxo.stub.LeaseUtxos(lease_request("l-spent", count=1), metadata=PUBLISHER)
    await utxo.stub.CommitSpend(
        utxo_pb2.CommitSpendRequest(
            request_id="c-spent",
            lease_id=spent.lease.lease_id,
            fencing_token=spent.lease.fencing_token,
            spends=[utxo_pb2.Spend(txid=random_txid(), inputs=[spent.lease.utxos[0].outpoint])],
        ),
        metadata=PUBLISHER,
    )
    released = await utxo.stub.LeaseUtxos(lease_request("l-released", count=1), metadata=PUBLISHER)
    await utxo.stub.ReleaseLease(
        utxo_pb2.ReleaseLeaseRequest(request_id="r1", lease_id=released.lease.lease_id), metadata=PUBLISHER
    )
    # Expired and reaped: its outpoint is AVAILABLE but still carries the token (the late holder may
    # still commit), so the lease stays.
    reaped = await utxo.stub.LeaseUtxos(lease_request("l-reaped", count=1), metadata=PUBLISHER)
    await age_utxos(db, [txid])
    await db.execute("UPDATE utxos SET lease_expires_at = now() - interval '8 days' WHERE status = 'reserved'")
    await utxo.running.pool.reap_expired()

    result = await utxo.running.pool.prune(WEEK)

    remaining = await db.fetch("SELECT lease_id FROM leases ORDER BY lease_id")
    assert [r["lease_id"] for r in remaining] == [reaped.lease.lease_id]
    assert (result.utxos, result.leases) == (1, 2)
    # A recent lease (not aged) is kept even once it holds nothing.
    fresh = await utxo.stub.LeaseUtxos(lease_request("l-fresh", count=1, min_satoshis=300), metadata=PUBLISHER)
    await utxo.stub.ReleaseLease(
        utxo_pb2.ReleaseLeaseRequest(request_id="r2", lease_id=fresh.lease.lease_id), metadata=PUBLISHER
    )
    assert (await utxo.running.pool.prune(WEEK)).leases == 0
    # Once another lease takes the reaped outpoint, the old lease holds nothing and goes.
    await utxo.stub.LeaseUtxos(lease_request("l-taker", count=1), metadata=PUBLISHER)
    assert (await utxo.running.pool.prune(WEEK)).leases == 1
    remaining = await db.fetch("SELECT lease_id FROM leases")
    assert reaped.lease.lease_id not in {r["lease_id"] for r in remaining} and len(remaining) == 2


async def test_batches_are_bounded_and_the_time_budget_stops_a_prune(
    utxo: UtxoUnderTest, db: asyncpg.Connection, store: UtxoStore
) -> None:
    txid = await seed_old(db, "spent", 25)
    async with store.unit_of_work() as uow:
        cutoff = await uow.retention_cutoff(WEEK)
        assert await uow.prune_outpoints(cutoff, 10) == 10
    assert (await counts(db, txid))[0] == 15
    # A prune out of time stops before its next statement and says so.
    stopped = await utxo.running.pool.prune(WEEK, batch=10, budget=timedelta(0))
    assert stopped == PruneResult(complete=False)
    result = await utxo.running.pool.prune(WEEK, batch=4)
    assert (result.utxos, result.events, result.complete) == (15, 25, True)
    assert await counts(db, txid) == (0, 0)


async def test_retention_zero_keeps_everything(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    txid = await seed_old(db, "spent", 3)
    assert await utxo.running.pool.prune(timedelta(0)) == PruneResult()
    assert await counts(db, txid) == (3, 3)
    assert read_utxo_settings(
        EnvReader(utxo_env("postgresql://x/y", "redis://x", UTXO_RETENTION_MS="0"))
    ).retention == (timedelta(0))
    assert read_utxo_settings(EnvReader(utxo_env("postgresql://x/y", "redis://x"))).retention == WEEK


async def test_a_prune_of_an_empty_pool_is_a_no_op(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    assert await utxo.running.pool.prune(WEEK) == PruneResult()
    await seed(db, [100])  # fresh rows only
    assert await utxo.running.pool.prune(WEEK) == PruneResult()
    assert await db.fetchval("SELECT count(*) FROM utxos") == 1


async def test_two_replicas_pruning_at_once_do_not_collide(
    utxo: UtxoUnderTest, db: asyncpg.Connection, database_url: str, redis_url: str
) -> None:
    other = await start_utxo_under_test(utxo_env(database_url, redis_url))
    try:
        txids = [await seed_old(db, "spent", 20) for _ in range(3)]
        first, second = await asyncio.gather(
            utxo.running.pool.prune(WEEK, batch=7), other.running.pool.prune(WEEK, batch=7)
        )
    finally:
        await stop_utxo_under_test(other)
    assert first.utxos + second.utxos == 60
    assert first.events + second.events == 60
    assert first.complete and second.complete
    for txid in txids:
        assert await counts(db, txid) == (0, 0)


async def test_commits_after_their_rows_were_pruned_never_recreate_them(
    utxo: UtxoUnderTest, db: asyncpg.Connection
) -> None:
    await seed(db, [100, 200])
    lease = (await utxo.stub.LeaseUtxos(lease_request("l1", count=2), metadata=PUBLISHER)).lease
    first_input, second_input = lease.utxos[0].outpoint, lease.utxos[1].outpoint
    spend_txid = random_txid()
    spend = utxo_pb2.Spend(txid=spend_txid, inputs=[first_input], outputs=[CHANGE])

    def commit(request_id: str, *spends: utxo_pb2.Spend) -> utxo_pb2.CommitSpendRequest:
        return utxo_pb2.CommitSpendRequest(
            request_id=request_id, lease_id=lease.lease_id, fencing_token=lease.fencing_token, spends=spends
        )

    first = await utxo.stub.CommitSpend(commit("c1", spend), metadata=PUBLISHER)
    # The change is spent in turn, and long ago: it is pruned while the first input (recent) stays.
    await db.execute(
        "UPDATE utxos SET status = 'spent', spent_at = now(), spent_by_txid = $2 WHERE txid = $1",
        spend_txid,
        random_txid(),
    )
    await age_utxos(db, [spend_txid])
    await db.execute("UPDATE leases SET expires_at = now() + interval '5 minutes'")  # the lease stays live
    assert (await utxo.running.pool.prune(WEEK)).utxos == 1
    # The same request answers from its record; the same spend under a new request id is done
    # before and does not bring the pruned change back.
    assert await utxo.stub.CommitSpend(commit("c1", spend), metadata=PUBLISHER) == first
    again = await utxo.stub.CommitSpend(commit("c2", spend), metadata=PUBLISHER)
    assert [u.outpoint for u in again.spent] == [first_input]
    assert list(again.added) == []
    assert await db.fetchval("SELECT count(*) FROM utxos WHERE txid = $1", spend_txid) == 0

    # Now the inputs themselves are pruned: the record still answers, a new request is refused.
    await age_utxos(db, [first_input.txid])
    await db.execute("UPDATE leases SET expires_at = now() + interval '5 minutes'")
    assert (await utxo.running.pool.prune(WEEK)).utxos == 1
    assert await utxo.stub.CommitSpend(commit("c1", spend), metadata=PUBLISHER) == first
    rows = await db.fetchval("SELECT count(*) FROM utxos")
    await expect_rpc_error(
        utxo.stub.CommitSpend(commit("c3", spend), metadata=PUBLISHER),
        grpc.StatusCode.FAILED_PRECONDITION,
        "UTXO_NOT_IN_LEASE",
    )
    assert await db.fetchval("SELECT count(*) FROM utxos") == rows
    # The other input was never spent: it is still RESERVED under the lease.
    assert (
        await db.fetchval(
            "SELECT status FROM utxos WHERE txid = $1 AND vout = $2", second_input.txid, second_input.vout
        )
        == "reserved"
    )


async def test_a_pass_prunes_and_counts_what_it_pruned(
    database_url: str, redis_url: str, db: asyncpg.Connection
) -> None:
    async with chain_stack(database_url, redis_url) as stack:
        txid = await seed_old(db, "spent", 2)
        dry = await stack.admin.RunMaintenance(
            utxo_pb2.RunMaintenanceRequest(action=utxo_pb2.MAINTENANCE_ACTION_PASS, dry_run=True),
            metadata=ADMIN,
            timeout=60,
        )
        assert "retention" not in dry.results[0].detail
        assert (await counts(db, txid))[0] == 2
        response = await stack.admin.RunMaintenance(
            utxo_pb2.RunMaintenanceRequest(request_id="p1", action=utxo_pb2.MAINTENANCE_ACTION_PASS),
            metadata=ADMIN,
            timeout=60,
        )
        reap = response.results[0]
        assert reap.action == utxo_pb2.MAINTENANCE_ACTION_REAP_LEASES
        assert reap.outcome == utxo_pb2.MAINTENANCE_OUTCOME_DONE
        assert "retention pruned 2 outpoints, 2 events, 0 leases" in reap.detail
        assert await counts(db, txid) == (0, 0)
        registry = stack.utxo.running.metrics_registry
        assert registry.get_sample_value("proofline_utxo_pruned_rows_total", {"table": "utxos"}) == 2
        assert registry.get_sample_value("proofline_utxo_pruned_rows_total", {"table": "utxo_events"}) == 2
        assert registry.get_sample_value("proofline_utxo_pruned_rows_total", {"table": "leases"}) == 0
