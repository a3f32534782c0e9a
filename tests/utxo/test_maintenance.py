"""Sync, split, sweep and maintenance passes end to end: real chainsim, real signer_gateway."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from datetime import timedelta

import asyncpg
import grpc
from proofline.utxo.v1 import utxo_pb2

from proofline_kit.cache import create_redis
from services.utxo.adapters.redis_locks import RedisLocks
from services.utxo.domain.maintenance import MAINTENANCE_LOCK
from tests.harness.grpc_errors import expect_rpc_error
from tests.utxo.chain_stack import CHANGE, FUNDING, Stack, chain_stack, list_of, outpoint
from tests.utxo.conftest import ADMIN, PUBLISHER, lease_request, seed, status_of

AVAILABLE = utxo_pb2.UTXO_STATUS_AVAILABLE
UNCONFIRMED = utxo_pb2.UTXO_STATUS_UNCONFIRMED
SPENT = utxo_pb2.UTXO_STATUS_SPENT
DIRTY = utxo_pb2.UTXO_STATUS_DIRTY


async def sync(stack: Stack, request_id: str, *keys: str, dry_run: bool = False) -> utxo_pb2.MaintenanceResult:
    response = await stack.admin.SyncFromChain(
        utxo_pb2.SyncFromChainRequest(request_id=request_id, dry_run=dry_run, owner_key_ids=list(keys)),
        metadata=ADMIN,
        timeout=30,
    )
    return response.result


async def test_sync_converges_on_the_chain(database_url: str, redis_url: str, db: asyncpg.Connection) -> None:
    async with chain_stack(database_url, redis_url) as stack:
        confirmed = await stack.fund(FUNDING, 50_000, count=2)
        pending = await stack.fund(FUNDING, 7_000, confirm=False)
        planned = await sync(stack, "", dry_run=True)
        assert planned.dry_run and planned.sync.added == 3
        assert await db.fetchval("SELECT count(*) FROM utxos") == 0, "a dry run changes nothing"

        first = await sync(stack, "s1")
        assert (first.sync.added, first.outcome) == (3, utxo_pb2.MAINTENANCE_OUTCOME_DONE)
        assert first.sync.tip_height == confirmed["block_height"]
        available = await list_of(stack, AVAILABLE, owner=FUNDING)
        assert sorted(u.satoshis for u in available) == [50_000, 50_000]
        assert all(u.purpose == utxo_pb2.UTXO_PURPOSE_FUNDING and u.confirmations == 1 for u in available)
        [waiting] = await list_of(stack, UNCONFIRMED)
        assert waiting.outpoint.txid == pending["txid"]

        await stack.mine()
        second = await sync(stack, "s2")
        assert second.sync.confirmed == 1 and second.sync.added == 0
        assert [c.reason for c in second.sync.changes] == ["CONFIRMED"]
        assert len(await list_of(stack, AVAILABLE, owner=FUNDING)) == 3

        # A spend made elsewhere (not through the pool) is picked up.
        spent_elsewhere = available[0]
        spender = await stack.spend_elsewhere(
            FUNDING, [(outpoint(spent_elsewhere.outpoint), spent_elsewhere.satoshis)], stack.scripts["publish-key"]
        )
        third = await sync(stack, "s3", FUNDING)
        assert third.sync.marked_spent == 1
        by_outpoint = {(u.outpoint.txid, u.outpoint.vout): u for u in await list_of(stack, owner=FUNDING)}
        gone = by_outpoint[(spent_elsewhere.outpoint.txid, spent_elsewhere.outpoint.vout)]
        assert (gone.status, gone.spent_by_txid) == (SPENT, spender), "the chain names the spender"
        again = await sync(stack, "s4")
        assert again.outcome == utxo_pb2.MAINTENANCE_OUTCOME_NOTHING_TO_DO
        # Replaying a real run returns its first answer.
        assert await sync(stack, "s1") == first


async def test_dirty_outpoints_leave_dirty_only_on_chain_evidence(
    database_url: str, redis_url: str, db: asyncpg.Connection
) -> None:
    async with chain_stack(database_url, redis_url) as stack:
        await stack.fund(FUNDING, 20_000, count=2)
        await sync(stack, "s1")
        lease = (
            await stack.utxo.stub.LeaseUtxos(
                lease_request("l1", count=2, purpose=utxo_pb2.UTXO_PURPOSE_FUNDING), metadata=PUBLISHER
            )
        ).lease
        kept, used = lease.utxos
        # One outpoint's transaction was rejected: it never reached the chain.
        await stack.utxo.stub.ReportConflict(
            utxo_pb2.ReportConflictRequest(
                request_id="c1",
                lease_id=lease.lease_id,
                fencing_token=lease.fencing_token,
                outpoints=[kept.outpoint],
                kind=utxo_pb2.CONFLICT_KIND_REJECTED,
            ),
            metadata=PUBLISHER,
        )
        # The other was reported as a conflict although its spend did reach the chain.
        txid = await stack.spend_elsewhere(FUNDING, [(outpoint(used.outpoint), used.satoshis)], stack.scripts[CHANGE])
        await stack.utxo.stub.ReportConflict(
            utxo_pb2.ReportConflictRequest(
                request_id="c2",
                lease_id=lease.lease_id,
                fencing_token=lease.fencing_token,
                outpoints=[used.outpoint],
                kind=utxo_pb2.CONFLICT_KIND_DOUBLE_SPEND,
                competing_txids=[txid],
            ),
            metadata=PUBLISHER,
        )
        assert len(await list_of(stack, DIRTY)) == 2
        # No timer moves them: only a sync with evidence does.
        await stack.utxo.running.pool.reap_expired()
        assert len(await list_of(stack, DIRTY)) == 2
        result = await sync(stack, "s2", FUNDING)
        assert (result.sync.dirty_to_available, result.sync.dirty_to_spent) == (1, 1)
        by_outpoint = {(u.outpoint.txid, u.outpoint.vout): u for u in await list_of(stack, owner=FUNDING)}
        assert by_outpoint[(kept.outpoint.txid, kept.outpoint.vout)].status == AVAILABLE
        spent = by_outpoint[(used.outpoint.txid, used.outpoint.vout)]
        assert (spent.status, spent.spent_by_txid) == (SPENT, txid)
        token = await db.fetchval(
            "SELECT fencing_token FROM utxos WHERE txid = $1 AND vout = $2", kept.outpoint.txid, kept.outpoint.vout
        )
        assert token is None, "an outpoint back from DIRTY carries no lease rights"


async def test_dirty_outpoints_spent_elsewhere_get_their_real_spender(
    database_url: str, redis_url: str, db: asyncpg.Connection
) -> None:
    """A conflict report naming no spender: the chain's spent lookup names it, mined or in the mempool."""
    async with chain_stack(database_url, redis_url) as stack:
        await stack.fund(FUNDING, 20_000)
        await stack.fund(FUNDING, 30_000)
        await sync(stack, "s1")
        lease = (
            await stack.utxo.stub.LeaseUtxos(
                lease_request("l1", count=2, purpose=utxo_pb2.UTXO_PURPOSE_FUNDING), metadata=PUBLISHER
            )
        ).lease
        first, second = lease.utxos
        mined = await stack.spend_elsewhere(
            FUNDING, [(outpoint(first.outpoint), first.satoshis)], stack.scripts[CHANGE]
        )
        await stack.mine()
        pending = await stack.spend_elsewhere(
            FUNDING, [(outpoint(second.outpoint), second.satoshis)], stack.scripts[CHANGE]
        )
        await stack.utxo.stub.ReportConflict(
            utxo_pb2.ReportConflictRequest(
                request_id="c1",
                lease_id=lease.lease_id,
                fencing_token=lease.fencing_token,
                outpoints=[first.outpoint, second.outpoint],
                kind=utxo_pb2.CONFLICT_KIND_REJECTED,
            ),
            metadata=PUBLISHER,
        )
        assert {u.spent_by_txid for u in await list_of(stack, DIRTY)} == {""}

        result = await sync(stack, "s2", FUNDING)

        assert result.sync.dirty_to_spent == 2
        by_outpoint = {(u.outpoint.txid, u.outpoint.vout): u for u in await list_of(stack, owner=FUNDING)}
        resolved = [by_outpoint[(u.outpoint.txid, u.outpoint.vout)] for u in (first, second)]
        assert [(u.status, u.spent_by_txid) for u in resolved] == [(SPENT, mined), (SPENT, pending)]


async def test_sync_converges_when_the_spender_lookup_is_unavailable(
    database_url: str, redis_url: str, db: asyncpg.Connection
) -> None:
    async with chain_stack(database_url, redis_url) as stack:
        await stack.fund(FUNDING, 20_000)
        await sync(stack, "s1")
        [coin] = await list_of(stack, AVAILABLE, owner=FUNDING)
        await stack.spend_elsewhere(FUNDING, [(outpoint(coin.outpoint), coin.satoshis)], stack.scripts[CHANGE])
        await stack.faults({"rules": [{"face": "woc", "match": {"path": "/utxos/spent"}, "action": "http:503"}]})

        result = await sync(stack, "s2", FUNDING)

        assert (result.outcome, result.sync.marked_spent) == (utxo_pb2.MAINTENANCE_OUTCOME_DONE, 1)
        [rule] = stack.sim.faults.rules
        assert rule.used >= 1, "the lookup was tried"
        [spent] = await list_of(stack, SPENT, owner=FUNDING)
        assert (spent.outpoint, spent.spent_by_txid) == (coin.outpoint, "")
        assert await db.fetchval("SELECT last_run_at FROM maintenance_state WHERE action = 'sync'") is not None
        await stack.faults({})
        again = await sync(stack, "s3", FUNDING)
        assert again.outcome == utxo_pb2.MAINTENANCE_OUTCOME_NOTHING_TO_DO


async def test_an_outpoint_the_chain_does_not_know_is_written_off_only_after_a_second_look(
    database_url: str, redis_url: str, db: asyncpg.Connection
) -> None:
    """One answer from the chain is not enough to make a coin INVALID: it must still be missing at a
    sync UTXO_INVALID_AFTER_MS after the one that first found it missing; seeing it clears that."""
    async with chain_stack(database_url, redis_url, UTXO_INVALID_AFTER_MS="400") as stack:
        await stack.fund(FUNDING, 20_000)
        await sync(stack, "s1")
        real = (await list_of(stack, AVAILABLE, owner=FUNDING))[0]
        ghost = (await seed(db, [5_000], purpose="funding", owner=FUNDING))[0]
        where = "WHERE txid = $1 AND vout = $2"
        # The real coin carries a stale mark (as if an earlier sync had missed it): seeing it clears it.
        await db.execute(f"UPDATE utxos SET missing_since = now() {where}", real.outpoint.txid, real.outpoint.vout)
        first = await sync(stack, "s2")
        assert first.sync.invalidated == 0 and "1 missing from the chain" in first.detail
        assert await status_of(db, ghost) == "available"
        assert await db.fetchval(f"SELECT missing_since FROM utxos {where}", ghost.txid, ghost.vout) is not None
        assert (
            await db.fetchval(f"SELECT missing_since FROM utxos {where}", real.outpoint.txid, real.outpoint.vout)
            is None
        )
        second = await sync(stack, "s3")
        assert second.sync.invalidated == 0 and await status_of(db, ghost) == "available"
        await asyncio.sleep(0.5)
        third = await sync(stack, "s4")
        assert third.sync.invalidated == 1
        assert [(c.outpoint.txid, c.reason) for c in third.sync.changes] == [(ghost.txid, "NOT_ON_CHAIN")]
        assert await status_of(db, ghost) == "invalid"
        assert await status_of(db, real.outpoint) == "available"


async def test_sync_with_the_chain_unreachable_changes_nothing(
    database_url: str, redis_url: str, db: asyncpg.Connection
) -> None:
    async with chain_stack(
        database_url, redis_url, WOC_URL="http://127.0.0.1:9", ARC_URL="http://127.0.0.1:9"
    ) as stack:
        await stack.fund(FUNDING, 20_000)
        await expect_rpc_error(sync(stack, "s1"), grpc.StatusCode.UNAVAILABLE, "CHAIN_UNAVAILABLE")
        assert await db.fetchval("SELECT count(*) FROM utxos") == 0
        assert await db.fetchval("SELECT last_run_at FROM maintenance_state WHERE action = 'sync'") is None
        health = await stack.utxo.stub.GetPoolHealth(
            utxo_pb2.GetPoolHealthRequest(compare_with_chain=True), metadata=PUBLISHER
        )
        assert health.chain.state == utxo_pb2.CHAIN_COMPARISON_STATE_UNAVAILABLE


async def test_split_end_to_end(database_url: str, redis_url: str, db: asyncpg.Connection) -> None:
    async with chain_stack(database_url, redis_url) as stack:
        await stack.fund(FUNDING, 100_000)
        await sync(stack, "s1")
        plan = (
            await stack.admin.Split(utxo_pb2.SplitRequest(request_id="", dry_run=True), metadata=ADMIN, timeout=30)
        ).result
        [planned] = plan.transactions
        assert planned.broadcast_outcome == utxo_pb2.BROADCAST_OUTCOME_NOT_BROADCAST and planned.txid == ""
        assert [o.satoshis for o in planned.outputs[:10]] == [1_000] * 10
        assert planned.outputs[10].address == stack.addresses[CHANGE]
        assert planned.input_satoshis == planned.output_satoshis + planned.fee_satoshis
        assert await db.fetchval("SELECT count(*) FROM leases") == 0, "a dry run leases nothing"

        made = (await stack.admin.Split(utxo_pb2.SplitRequest(request_id="x1"), metadata=ADMIN, timeout=30)).result
        [tx] = made.transactions
        assert tx.broadcast_outcome == utxo_pb2.BROADCAST_OUTCOME_ACCEPTED, tx.broadcast_detail
        assert (len(tx.outputs), tx.fee_satoshis) == (len(planned.outputs), planned.fee_satoshis)
        assert made.HasField("next_allowed_time")
        assert len(await list_of(stack, UNCONFIRMED, purpose=utxo_pb2.UTXO_PURPOSE_PUBLISH)) == 10
        await stack.mine()
        result = await sync(stack, "s2")
        assert result.sync.confirmed == 11
        publish = await list_of(stack, AVAILABLE, purpose=utxo_pb2.UTXO_PURPOSE_PUBLISH)
        assert [u.satoshis for u in publish] == [1_000] * 10 and {u.outpoint.txid for u in publish} == {tx.txid}
        [change] = await list_of(stack, AVAILABLE, purpose=utxo_pb2.UTXO_PURPOSE_CHANGE)
        assert change.owner_key_id == CHANGE
        assert change.satoshis == 100_000 - 10_000 - tx.fee_satoshis
        # The new coins pay for publishes.
        leased = await stack.utxo.stub.LeaseUtxos(lease_request("l1", count=3), metadata=PUBLISHER)
        assert len(leased.lease.utxos) == 3

        cooling = (
            await stack.admin.Split(utxo_pb2.SplitRequest(request_id="x2", output_count=2), metadata=ADMIN)
        ).result
        assert cooling.outcome == utxo_pb2.MAINTENANCE_OUTCOME_SKIPPED_COOLDOWN
        full = (
            await stack.admin.Split(utxo_pb2.SplitRequest(request_id="x3", ignore_cooldown=True), metadata=ADMIN)
        ).result
        assert full.outcome == utxo_pb2.MAINTENANCE_OUTCOME_NOTHING_TO_DO, "7 available is above low water (5)"
        error = await expect_rpc_error(
            stack.admin.Split(
                utxo_pb2.SplitRequest(request_id="x4", output_count=500, output_satoshis=1_000, ignore_cooldown=True),
                metadata=ADMIN,
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
            "INSUFFICIENT_FUNDS",
        )
        assert "the plan needs" in (error.details() or "")
        await expect_rpc_error(
            stack.admin.Split(utxo_pb2.SplitRequest(request_id="x5"), metadata=PUBLISHER),
            grpc.StatusCode.PERMISSION_DENIED,
            "ADMIN_REQUIRED",
        )


async def test_rejected_split_marks_inputs_dirty_and_outputs_invalid(
    database_url: str, redis_url: str, db: asyncpg.Connection
) -> None:
    async with chain_stack(database_url, redis_url) as stack:
        await stack.fund(FUNDING, 60_000)
        await sync(stack, "s1")
        [coin] = await list_of(stack, AVAILABLE, owner=FUNDING)
        # Spent elsewhere and the pool has not synced since: the split's broadcast is refused.
        await stack.spend_elsewhere(FUNDING, [(outpoint(coin.outpoint), coin.satoshis)], stack.scripts["publish-key"])
        made = (await stack.admin.Split(utxo_pb2.SplitRequest(request_id="x1", output_count=3), metadata=ADMIN)).result
        [tx] = made.transactions
        assert tx.broadcast_outcome == utxo_pb2.BROADCAST_OUTCOME_REJECTED
        [dirty] = await list_of(stack, DIRTY)
        assert dirty.outpoint == coin.outpoint and dirty.spent_by_txid == tx.txid
        invalid = await list_of(stack, utxo_pb2.UTXO_STATUS_INVALID)
        assert len(invalid) == 4 and {u.outpoint.txid for u in invalid} == {tx.txid}
        assert await db.fetchval("SELECT state FROM maintenance_txs WHERE txid = $1", tx.txid) == "rejected"
        result = await sync(stack, "s2", FUNDING)
        assert result.sync.dirty_to_spent == 1
        [settled] = [u for u in await list_of(stack, owner=FUNDING) if u.outpoint == coin.outpoint]
        assert settled.status == SPENT


async def test_split_broadcast_pending_while_the_chain_is_down_then_resent(
    database_url: str, redis_url: str, db: asyncpg.Connection
) -> None:
    async with chain_stack(database_url, redis_url) as stack:
        await stack.fund(FUNDING, 30_000)
        await sync(stack, "s1")
        down = {"error_rate": 1.0, "error_statuses": [503]}
        await stack.faults({"arc": down, "woc": down})
        made = (
            await stack.admin.Split(utxo_pb2.SplitRequest(request_id="x1", output_count=2), metadata=ADMIN, timeout=60)
        ).result
        [tx] = made.transactions
        assert tx.broadcast_outcome == utxo_pb2.BROADCAST_OUTCOME_PENDING
        assert tx.broadcast_attempts == 2
        assert await db.fetchval("SELECT state FROM maintenance_txs WHERE txid = $1", tx.txid) == "pending"
        [coin] = await list_of(stack, SPENT, owner=FUNDING)
        assert coin.spent_by_txid == tx.txid, "the inputs stay committed to the signed transaction"
        await stack.faults({})
        result = await sync(stack, "s2")
        assert "re-broadcast 1 pending" in result.detail
        assert await db.fetchval("SELECT state FROM maintenance_txs WHERE txid = $1", tx.txid) == "accepted"
        await stack.mine()
        await sync(stack, "s3")
        assert len(await list_of(stack, AVAILABLE, purpose=utxo_pb2.UTXO_PURPOSE_PUBLISH)) == 2


async def test_sweep_end_to_end(database_url: str, redis_url: str, db: asyncpg.Connection) -> None:
    async with chain_stack(database_url, redis_url) as stack:
        await stack.fund(CHANGE, 700, count=6)
        await stack.fund(FUNDING, 5_000)
        await sync(stack, "s1")
        change_address, funding_address = stack.addresses[CHANGE], stack.addresses[FUNDING]
        request = utxo_pb2.SweepRequest(
            change_address=change_address,
            change_key_id=CHANGE,
            destination_address=funding_address,
            max_inputs_per_transaction=4,
            max_transactions=5,
        )
        request.dry_run = True
        plan = (await stack.admin.Sweep(request, metadata=ADMIN)).result
        assert [len(t.inputs) for t in plan.transactions] == [4, 2]
        assert all(t.outputs[0].address == funding_address for t in plan.transactions)
        assert await db.fetchval("SELECT count(*) FROM leases") == 0

        request.dry_run, request.request_id = False, "w1"
        done = (await stack.admin.Sweep(request, metadata=ADMIN, timeout=60)).result
        assert [t.broadcast_outcome for t in done.transactions] == [utxo_pb2.BROADCAST_OUTCOME_ACCEPTED] * 2
        assert done.total_fee_satoshis == sum(t.fee_satoshis for t in done.transactions)
        request.request_id = "w2"
        nothing = (await stack.admin.Sweep(request, metadata=ADMIN)).result
        assert nothing.outcome == utxo_pb2.MAINTENANCE_OUTCOME_NOTHING_TO_DO
        await stack.mine()
        await sync(stack, "s2")
        funding = await list_of(stack, AVAILABLE, owner=FUNDING, purpose=utxo_pb2.UTXO_PURPOSE_FUNDING)
        assert sorted(u.satoshis for u in funding) == sorted([5_000, *(t.output_satoshis for t in done.transactions)])
        assert await list_of(stack, AVAILABLE, owner=CHANGE) == []

        mismatch = utxo_pb2.SweepRequest(request_id="w3", change_address=funding_address, change_key_id=CHANGE)
        await expect_rpc_error(
            stack.admin.Sweep(mismatch, metadata=ADMIN), grpc.StatusCode.INVALID_ARGUMENT, "ADDRESS_KEY_MISMATCH"
        )
        bad = utxo_pb2.SweepRequest(request_id="w4", change_key_id=CHANGE, destination_address="1NotAnAddress")
        await expect_rpc_error(
            stack.admin.Sweep(bad, metadata=ADMIN), grpc.StatusCode.INVALID_ARGUMENT, "ADDRESS_INVALID"
        )


async def test_locks_keep_hosts_from_colliding(database_url: str, redis_url: str, db: asyncpg.Connection) -> None:
    async with chain_stack(database_url, redis_url) as stack:
        await stack.fund(CHANGE, 5_000)
        await sync(stack, "s1")
        redis = create_redis(redis_url)
        other_host = RedisLocks(redis, stack.utxo.env["REDIS_KEY_PREFIX"], "other-host/1", _counter())
        try:
            held = await other_host.acquire(MAINTENANCE_LOCK, timedelta(seconds=30))
            assert held is not None
            error = await expect_rpc_error(
                stack.admin.RunMaintenance(
                    utxo_pb2.RunMaintenanceRequest(request_id="r1", action=utxo_pb2.MAINTENANCE_ACTION_PASS),
                    metadata=ADMIN,
                ),
                grpc.StatusCode.ABORTED,
                "MAINTENANCE_IN_PROGRESS",
            )
            assert "other-host/1" in (error.details() or "")
            health = await stack.utxo.stub.GetPoolHealth(utxo_pb2.GetPoolHealthRequest(), metadata=PUBLISHER)
            assert health.maintenance.maintenance_holder == "other-host/1"
            # Dry runs take no lock.
            dry = await stack.admin.RunMaintenance(
                utxo_pb2.RunMaintenanceRequest(action=utxo_pb2.MAINTENANCE_ACTION_PASS, dry_run=True), metadata=ADMIN
            )
            assert [r.action for r in dry.results] == [
                utxo_pb2.MAINTENANCE_ACTION_REAP_LEASES,
                utxo_pb2.MAINTENANCE_ACTION_SYNC,
                utxo_pb2.MAINTENANCE_ACTION_SPLIT,
            ]
            await other_host.release(held)
            sweep_lock = await other_host.acquire(f"sweep-address-{stack.addresses[CHANGE]}", timedelta(seconds=30))
            assert sweep_lock is not None
            await expect_rpc_error(
                stack.admin.Sweep(utxo_pb2.SweepRequest(request_id="w1"), metadata=ADMIN),
                grpc.StatusCode.ABORTED,
                "MAINTENANCE_IN_PROGRESS",
            )
            await other_host.release(sweep_lock)
            swept = await stack.admin.Sweep(utxo_pb2.SweepRequest(request_id="w2"), metadata=ADMIN, timeout=30)
            assert swept.result.outcome == utxo_pb2.MAINTENANCE_OUTCOME_DONE
        finally:
            await redis.aclose()


async def test_run_maintenance_pass_reaps_syncs_and_splits(
    database_url: str, redis_url: str, db: asyncpg.Connection
) -> None:
    async with chain_stack(database_url, redis_url) as stack:
        await stack.fund(FUNDING, 40_000)
        response = await stack.admin.RunMaintenance(
            utxo_pb2.RunMaintenanceRequest(request_id="p1", action=utxo_pb2.MAINTENANCE_ACTION_PASS),
            metadata=ADMIN,
            timeout=60,
        )
        reap, synced, split = response.results
        assert reap.outcome == utxo_pb2.MAINTENANCE_OUTCOME_NOTHING_TO_DO
        assert synced.sync.added == 1
        assert split.outcome == utxo_pb2.MAINTENANCE_OUTCOME_DONE
        assert split.transactions[0].broadcast_outcome == utxo_pb2.BROADCAST_OUTCOME_ACCEPTED
        await expect_rpc_error(
            stack.admin.RunMaintenance(utxo_pb2.RunMaintenanceRequest(request_id="p2"), metadata=ADMIN),
            grpc.StatusCode.INVALID_ARGUMENT,
            "ACTION_INVALID",
        )
        health = await stack.utxo.stub.GetPoolHealth(
            utxo_pb2.GetPoolHealthRequest(compare_with_chain=True), metadata=PUBLISHER
        )
        assert health.chain.state == utxo_pb2.CHAIN_COMPARISON_STATE_OK
        funding = next(a for a in health.chain.addresses if a.owner_key_id == FUNDING)
        # The split's outputs are in the pool and in the chain's mempool.
        assert funding.only_in_pool == 0 and funding.chain_utxos == funding.pool_utxos == 10
        assert health.maintenance.HasField("last_sync_time") and health.maintenance.HasField("last_split_time")


async def test_background_loop_maintains_on_its_own(database_url: str, redis_url: str) -> None:
    overrides = {"UTXO_MAINTENANCE_ENABLED": "1", "UTXO_MAINTENANCE_INTERVAL_MS": "200"}
    async with chain_stack(database_url, redis_url, **overrides) as stack:
        await stack.fund(FUNDING, 40_000)
        for _ in range(100):
            if len(await list_of(stack, UNCONFIRMED, purpose=utxo_pb2.UTXO_PURPOSE_PUBLISH)) == 10:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the loop did not split")
        await stack.mine()
        for _ in range(100):
            if len(await list_of(stack, AVAILABLE, purpose=utxo_pb2.UTXO_PURPOSE_PUBLISH)) == 10:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the loop did not sync the split outputs")


def _counter() -> Callable[[], Awaitable[int]]:
    """Lock tokens for a second, simulated host."""
    tokens = itertools.count(10**12)

    async def next_token() -> int:
        return next(tokens)

    return next_token


async def test_split_refuses_funding_coins_its_key_cannot_sign_before_leasing_anything(
    database_url: str, redis_url: str, db: asyncpg.Connection
) -> None:
    """The fuzz found it: a FUNDING coin added with another script was leased, then refused by the
    signer, leaving a lease, events and a recorded run behind."""
    async with chain_stack(database_url, redis_url) as stack:
        [foreign] = await seed(db, [500_000], purpose="funding", owner=FUNDING)
        tables = ("leases", "utxo_events", "maintenance_state", "idempotency_keys")

        async def snapshot() -> list[object]:
            rows = [await db.fetch(f"SELECT * FROM {table}") for table in tables]
            return [*rows, await db.fetch("SELECT * FROM utxos ORDER BY id")]

        before = await snapshot()
        error = await expect_rpc_error(
            stack.admin.Split(utxo_pb2.SplitRequest(request_id="x1", output_count=2), metadata=ADMIN, timeout=30),
            grpc.StatusCode.FAILED_PRECONDITION,
            "FUNDING_NOT_SPENDABLE",
        )
        assert f"{foreign.txid}:{foreign.vout}" in str(error.trailing_metadata())
        assert await snapshot() == before
