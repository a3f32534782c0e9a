"""ReportAccepted and unconfirmed_depth: our own accepted change spendable before it is mined,
leases bounded by max_unconfirmed_depth, and ReportConflict's cascade over dead descendants."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import asyncpg
import grpc
import pytest
from proofline.common.v1 import common_pb2
from proofline.utxo.v1 import utxo_pb2

from services.utxo.domain.models import Purpose, Strategy
from services.utxo.store.unit_of_work import UtxoUnitOfWork
from tests.harness.grpc_errors import expect_rpc_error
from tests.harness.schema_snapshot import SchemaSnapshot
from tests.utxo.chain_stack import CHANGE, FUNDING, chain_stack, list_of, outpoint
from tests.utxo.conftest import (
    OWNER,
    P2PKH,
    PUBLISH,
    PUBLISHER,
    STRANGER,
    WALLET,
    UtxoUnderTest,
    lease_request,
    random_txid,
    seed,
    start_utxo_under_test,
    status_of,
    stop_utxo_under_test,
    utxo_env,
)
from tests.utxo.test_maintenance import sync

AVAILABLE = utxo_pb2.UTXO_STATUS_AVAILABLE
UNCONFIRMED = utxo_pb2.UTXO_STATUS_UNCONFIRMED
INVALID = utxo_pb2.UTXO_STATUS_INVALID
DIRTY = utxo_pb2.UTXO_STATUS_DIRTY


def output(vout: int, satoshis: int) -> utxo_pb2.SpendOutput:
    return utxo_pb2.SpendOutput(vout=vout, satoshis=satoshis, locking_script=P2PKH, owner_key_id=OWNER, purpose=PUBLISH)


def exact(request_id: str, outpoints: Sequence[common_pb2.Outpoint], **fields: object) -> utxo_pb2.LeaseUtxosRequest:
    return lease_request(request_id, outpoints=utxo_pb2.OutpointList(outpoints=list(outpoints)), **fields)


async def spend(
    utxo: UtxoUnderTest, inputs: Sequence[common_pb2.Outpoint], outputs: Sequence[int], depth: int = 0
) -> tuple[str, list[common_pb2.Outpoint]]:
    """Lease exactly `inputs` (coins up to `depth`), commit one transaction spending them with
    outputs of these values; its txid and its outputs (UNCONFIRMED)."""
    lease = (
        await utxo.stub.LeaseUtxos(exact(random_txid()[:16], inputs, max_unconfirmed_depth=depth), metadata=WALLET)
    ).lease
    txid = random_txid()
    response = await utxo.stub.CommitSpend(
        utxo_pb2.CommitSpendRequest(
            request_id=random_txid()[:16],
            lease_id=lease.lease_id,
            fencing_token=lease.fencing_token,
            spends=[
                utxo_pb2.Spend(txid=txid, inputs=list(inputs), outputs=[output(v, s) for v, s in enumerate(outputs)])
            ],
        ),
        metadata=WALLET,
    )
    assert all(u.status == UNCONFIRMED for u in response.added)
    return txid, [u.outpoint for u in response.added]


async def accept(utxo: UtxoUnderTest, *txids: str, request_id: str = "") -> utxo_pb2.ReportAcceptedResponse:
    request = utxo_pb2.ReportAcceptedRequest(request_id=request_id or random_txid()[:16], txids=list(txids))
    response: utxo_pb2.ReportAcceptedResponse = await utxo.stub.ReportAccepted(request, metadata=WALLET)
    return response


async def depth_of(db: asyncpg.Connection, outpoint: common_pb2.Outpoint) -> tuple[str, int]:
    row = await db.fetchrow(
        "SELECT status, unconfirmed_depth FROM utxos WHERE txid = $1 AND vout = $2", outpoint.txid, outpoint.vout
    )
    assert row is not None
    return row["status"], row["unconfirmed_depth"]


async def seed_deep(db: asyncpg.Connection, satoshis: Sequence[int], depth: int) -> list[common_pb2.Outpoint]:
    """AVAILABLE coins of an accepted, unmined transaction of ours at `depth`."""
    outpoints = await seed(db, satoshis, block_height=None)
    await db.execute("UPDATE utxos SET unconfirmed_depth = $2 WHERE txid = $1", outpoints[0].txid, depth)
    return outpoints


@pytest.fixture
async def shallow_utxo(database_url: str, redis_url: str) -> AsyncIterator[UtxoUnderTest]:
    """A pool whose UTXO_MAX_UNCONFIRMED_DEPTH is 2."""
    under_test = await start_utxo_under_test(utxo_env(database_url, redis_url, UTXO_MAX_UNCONFIRMED_DEPTH="2"))
    try:
        yield under_test
    finally:
        await stop_utxo_under_test(under_test)


# --- ReportAccepted --------------------------------------------------------------------------------


async def test_accepted_change_is_available_at_depth_one_and_a_chain_deepens(
    utxo: UtxoUnderTest, db: asyncpg.Connection
) -> None:
    [coin] = await seed(db, [10_000])
    t1, [o1, o1b] = await spend(utxo, [coin], [9_000, 500])
    first = await accept(utxo, t1)
    assert [(u.outpoint, u.status, u.unconfirmed_depth) for u in first.available] == [
        (o1, AVAILABLE, 1),
        (o1b, AVAILABLE, 1),
    ]
    assert list(first.skipped_txids) == []
    events = await db.fetch(
        "SELECT kind, from_status, to_status, reason FROM utxo_events WHERE txid = $1 AND kind = 'accepted'", t1
    )
    assert [tuple(e) for e in events] == [("accepted", "unconfirmed", "available", "ACCEPTED")] * 2

    t2, [o2] = await spend(utxo, [o1], [8_000], depth=1)
    assert [(u.outpoint, u.unconfirmed_depth) for u in (await accept(utxo, t2)).available] == [(o2, 2)]
    t3, [o3] = await spend(utxo, [o2], [7_000], depth=2)
    [chain_coin] = await seed(db, [5_000])
    t5, [o5] = await spend(utxo, [chain_coin], [4_000])
    # Both in one call: each gets 1 + its deepest input's depth.
    both = await accept(utxo, t3, t5)
    assert [(u.outpoint, u.unconfirmed_depth) for u in both.available] == [(o3, 3), (o5, 1)]
    assert await depth_of(db, o3) == ("available", 3)
    # The spent inputs keep their depth (what the next depth is computed from).
    assert await depth_of(db, o1) == ("spent", 1)
    # A chain coin (depth 0) next to a depth-1 input: 1 + the deepest input.
    [fresh] = await seed(db, [3_000])
    t4, [o4] = await spend(utxo, [fresh, o1b], [3_400], depth=1)
    assert [u.unconfirmed_depth for u in (await accept(utxo, t4)).available] == [2]
    assert await depth_of(db, o4) == ("available", 2)


async def test_beyond_the_max_depth_outputs_stay_unconfirmed(
    shallow_utxo: UtxoUnderTest, db: asyncpg.Connection
) -> None:
    utxo = shallow_utxo
    [coin] = await seed(db, [10_000])
    t1, [o1] = await spend(utxo, [coin], [9_000])
    await accept(utxo, t1)
    t2, [o2] = await spend(utxo, [o1], [8_000], depth=1)
    await accept(utxo, t2)
    t3, [o3] = await spend(utxo, [o2], [7_000], depth=2)
    third = await accept(utxo, t3)
    assert list(third.available) == [] and list(third.skipped_txids) == [], "alive, only too deep"
    assert await depth_of(db, o3) == ("unconfirmed", 0)
    await expect_rpc_error(
        utxo.stub.LeaseUtxos(lease_request("l3", count=1, max_unconfirmed_depth=3), metadata=WALLET),
        grpc.StatusCode.INVALID_ARGUMENT,
        "MAX_UNCONFIRMED_DEPTH_INVALID",
    )


async def test_a_max_depth_of_zero_turns_the_feature_off(database_url: str, redis_url: str) -> None:
    utxo = await start_utxo_under_test(utxo_env(database_url, redis_url, UTXO_MAX_UNCONFIRMED_DEPTH="0"))
    try:
        db = await asyncpg.connect(database_url, server_settings={"search_path": "utxo"})
        try:
            [coin] = await seed(db, [10_000])
            t1, [o1] = await spend(utxo, [coin], [9_000])
            assert list((await accept(utxo, t1)).available) == []
            assert await depth_of(db, o1) == ("unconfirmed", 0)
            await expect_rpc_error(
                utxo.stub.LeaseUtxos(lease_request("l1", count=1, max_unconfirmed_depth=1), metadata=WALLET),
                grpc.StatusCode.INVALID_ARGUMENT,
                "MAX_UNCONFIRMED_DEPTH_INVALID",
            )
        finally:
            await db.close()
    finally:
        await stop_utxo_under_test(utxo)


async def test_unknown_and_dead_transactions_are_skipped(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    coins = await seed(db, [10_000, 20_000])
    alive, [kept] = await spend(utxo, [coins[0]], [9_000])
    dead, [lost] = await spend(utxo, [coins[1]], [19_000])
    await utxo.stub.ReportConflict(
        utxo_pb2.ReportConflictRequest(
            request_id="c1", outpoints=[coins[1]], kind=utxo_pb2.CONFLICT_KIND_REJECTED, spending_txid=dead
        ),
        metadata=WALLET,
    )
    unknown = random_txid()
    # The conflict's outputs went INVALID; put one back to UNCONFIRMED to prove the input check alone skips.
    await db.execute("UPDATE utxos SET status = 'unconfirmed' WHERE txid = $1", dead)
    response = await accept(utxo, unknown, alive, dead)
    assert [u.outpoint for u in response.available] == [kept]
    assert list(response.skipped_txids) == [unknown, dead]
    assert await status_of(db, lost) == "unconfirmed"
    # An output (a txid) the pool tracks but never committed a spend to is no committed spend either.
    assert list((await accept(utxo, coins[0].txid)).skipped_txids) == [coins[0].txid]


async def test_report_accepted_replays_and_is_naturally_idempotent(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    [coin] = await seed(db, [10_000])
    t1, [o1] = await spend(utxo, [coin], [9_000])
    first = await accept(utxo, t1, request_id="a1")
    assert [u.outpoint for u in first.available] == [o1]
    assert await accept(utxo, t1, request_id="a1") == first
    again = await accept(utxo, t1, request_id="a2")
    assert list(again.available) == [] and list(again.skipped_txids) == []
    assert await db.fetchval("SELECT count(*) FROM utxo_events WHERE kind = 'accepted'") == 1
    await expect_rpc_error(
        accept(utxo, t1, random_txid(), request_id="a1"), grpc.StatusCode.FAILED_PRECONDITION, "REQUEST_ID_REUSED"
    )


@pytest.mark.parametrize(
    ("txids", "reason"),
    [
        ([], "TXIDS_INVALID"),
        (["nope"], "TXIDS_INVALID"),
        (["AB" * 32], "TXIDS_INVALID"),
        (["ab" * 32, "ab" * 32], "TXIDS_INVALID"),
        ([f"{i:064x}" for i in range(1001)], "TXIDS_INVALID"),
    ],
)
async def test_bad_report_accepted_requests_change_nothing(
    utxo: UtxoUnderTest, db: asyncpg.Connection, database_url: str, txids: list[str], reason: str
) -> None:
    [coin] = await seed(db, [10_000])
    t1, _ = await spend(utxo, [coin], [9_000])
    snapshot = SchemaSnapshot(database_url, "utxo")
    before = snapshot.take()
    await expect_rpc_error(
        utxo.stub.ReportAccepted(
            utxo_pb2.ReportAcceptedRequest(request_id="bad", txids=txids),
            metadata=WALLET,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        reason,
    )
    await expect_rpc_error(
        utxo.stub.ReportAccepted(utxo_pb2.ReportAcceptedRequest(txids=[t1]), metadata=WALLET),
        grpc.StatusCode.INVALID_ARGUMENT,
        "REQUEST_ID_INVALID",
    )
    await expect_rpc_error(
        utxo.stub.ReportAccepted(utxo_pb2.ReportAcceptedRequest(request_id="r", txids=[t1]), metadata=STRANGER),
        grpc.StatusCode.PERMISSION_DENIED,
        "ROLE_REQUIRED",
    )
    assert snapshot.take() == before


# --- leases and max_unconfirmed_depth ----------------------------------------------------------------


async def test_default_leases_never_take_deep_coins_in_any_mode(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    shallow = await seed(db, [500, 600])
    deep = await seed_deep(db, [100, 200], depth=1)
    count = (await utxo.stub.LeaseUtxos(lease_request("l1", count=2), metadata=WALLET)).lease
    assert sorted(u.satoshis for u in count.utxos) == [500, 600]
    assert all(u.unconfirmed_depth == 0 for u in count.utxos)
    await utxo.stub.ReleaseLease(
        utxo_pb2.ReleaseLeaseRequest(request_id="r1", lease_id=count.lease_id), metadata=WALLET
    )
    await expect_rpc_error(
        utxo.stub.LeaseUtxos(lease_request("l2", count=3), metadata=WALLET),
        grpc.StatusCode.FAILED_PRECONDITION,
        "POOL_EXHAUSTED",
    )
    await expect_rpc_error(
        utxo.stub.LeaseUtxos(lease_request("l3", target_satoshis=1_200), metadata=WALLET),
        grpc.StatusCode.FAILED_PRECONDITION,
        "POOL_EXHAUSTED",
    )
    await expect_rpc_error(
        utxo.stub.LeaseUtxos(exact("l4", [shallow[0], deep[0]]), metadata=WALLET),
        grpc.StatusCode.FAILED_PRECONDITION,
        "UTXO_NOT_AVAILABLE",
    )
    assert [await status_of(db, o) for o in [*shallow, *deep]] == ["available"] * 4


async def test_a_higher_max_takes_deep_coins_shallow_first(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    await seed(db, [500, 600])
    await seed_deep(db, [100, 200], depth=1)
    await seed_deep(db, [50], depth=2)
    count = (await utxo.stub.LeaseUtxos(lease_request("l1", count=4, max_unconfirmed_depth=1), metadata=WALLET)).lease
    assert [(u.satoshis, u.unconfirmed_depth) for u in count.utxos] == [(500, 0), (600, 0), (100, 1), (200, 1)]
    await utxo.stub.ReleaseLease(
        utxo_pb2.ReleaseLeaseRequest(request_id="r1", lease_id=count.lease_id), metadata=WALLET
    )
    largest = (
        await utxo.stub.LeaseUtxos(
            lease_request("l2", count=5, max_unconfirmed_depth=2, strategy=utxo_pb2.LEASE_STRATEGY_LARGEST_FIRST),
            metadata=WALLET,
        )
    ).lease
    assert [(u.satoshis, u.unconfirmed_depth) for u in largest.utxos] == [
        (600, 0),
        (500, 0),
        (200, 1),
        (100, 1),
        (50, 2),
    ]
    await utxo.stub.ReleaseLease(
        utxo_pb2.ReleaseLeaseRequest(request_id="r2", lease_id=largest.lease_id), metadata=WALLET
    )
    # Target mode: the shallow coins first, then deeper ones until the target is covered.
    target = (
        await utxo.stub.LeaseUtxos(lease_request("l3", target_satoshis=1_150, max_unconfirmed_depth=2), metadata=WALLET)
    ).lease
    assert [(u.satoshis, u.unconfirmed_depth) for u in target.utxos] == [(500, 0), (600, 0), (100, 1)]


async def test_outpoints_mode_refuses_a_coin_deeper_than_the_max(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    [one] = await seed_deep(db, [100], depth=1)
    [two] = await seed_deep(db, [200], depth=2)
    await expect_rpc_error(
        utxo.stub.LeaseUtxos(exact("l1", [one, two], max_unconfirmed_depth=1), metadata=WALLET),
        grpc.StatusCode.FAILED_PRECONDITION,
        "UTXO_NOT_AVAILABLE",
    )
    lease = (await utxo.stub.LeaseUtxos(exact("l2", [two, one], max_unconfirmed_depth=2), metadata=WALLET)).lease
    assert [(u.outpoint, u.unconfirmed_depth) for u in lease.utxos] == [(two, 2), (one, 1)]
    await expect_rpc_error(
        utxo.stub.LeaseUtxos(lease_request("l3", count=1, max_unconfirmed_depth=26), metadata=WALLET),
        grpc.StatusCode.INVALID_ARGUMENT,
        "MAX_UNCONFIRMED_DEPTH_INVALID",
    )


async def test_lease_replays_tell_depths_apart(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    await seed(db, [500])
    await utxo.stub.LeaseUtxos(lease_request("l1", count=1), metadata=WALLET)
    again = await utxo.stub.LeaseUtxos(lease_request("l1", count=1), metadata=WALLET)
    assert [u.satoshis for u in again.lease.utxos] == [500]
    await expect_rpc_error(
        utxo.stub.LeaseUtxos(lease_request("l1", count=1, max_unconfirmed_depth=1), metadata=WALLET),
        grpc.StatusCode.FAILED_PRECONDITION,
        "REQUEST_ID_REUSED",
    )


# --- ReportConflict's cascade ------------------------------------------------------------------------


async def test_a_dead_transaction_takes_its_descendants_with_it(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    root, other_b, other_c = await seed(db, [10_000, 3_000, 4_000])
    t1, [o1] = await spend(utxo, [root], [9_000])
    await accept(utxo, t1)
    t2, [o2] = await spend(utxo, [o1, other_b], [11_000], depth=1)
    await accept(utxo, t2)
    t3, [o3a, o3b] = await spend(utxo, [o2, other_c], [10_000, 4_000], depth=2)
    await accept(utxo, t3)
    held = (await utxo.stub.LeaseUtxos(exact("h1", [o3a], max_unconfirmed_depth=3), metadata=PUBLISHER)).lease
    [mined] = await seed(db, [777])  # a chain coin unrelated to the dead chain stays as it is

    response = await utxo.stub.ReportConflict(
        utxo_pb2.ReportConflictRequest(
            request_id="c1", outpoints=[root], kind=utxo_pb2.CONFLICT_KIND_DOUBLE_SPEND, spending_txid=t1
        ),
        metadata=WALLET,
    )
    assert [(u.outpoint, u.status) for u in response.dirty] == [(root, DIRTY)]
    assert [(u.outpoint, u.status, u.status_reason) for u in response.invalidated] == [
        (o1, INVALID, "PARENT_DEAD"),
        (o2, INVALID, "PARENT_DEAD"),
        (o3a, INVALID, "PARENT_DEAD"),
        (o3b, INVALID, "PARENT_DEAD"),
    ]
    assert list(response.invalidated_txids) == [t2, t3]
    # The descendants' other inputs: DIRTY (PARENT_DEAD), still naming their dead spender.
    for other, spender in ((other_b, t2), (other_c, t3)):
        row = await db.fetchrow(
            "SELECT status, status_reason, spent_by_txid FROM utxos WHERE txid = $1 AND vout = $2",
            other.txid,
            other.vout,
        )
        assert row is not None and tuple(row) == ("dirty", "PARENT_DEAD", spender)
    events = await db.fetch(
        """SELECT e.kind, e.from_status, e.to_status, e.reason FROM utxo_events e JOIN utxos u ON u.id = e.utxo_id
           WHERE e.kind IN ('invalid', 'dirty') ORDER BY e.utxo_id""",
    )
    assert sorted(tuple(e) for e in events) == sorted(
        [
            ("dirty", "spent", "dirty", "DOUBLE_SPEND"),  # root, reported
            ("dirty", "spent", "dirty", "PARENT_DEAD"),
            ("dirty", "spent", "dirty", "PARENT_DEAD"),
            ("invalid", "spent", "invalid", "PARENT_DEAD"),
            ("invalid", "spent", "invalid", "PARENT_DEAD"),
            ("invalid", "reserved", "invalid", "PARENT_DEAD"),
            ("invalid", "available", "invalid", "PARENT_DEAD"),
        ]
    )
    listed = await utxo.stub.ListUtxos(utxo_pb2.ListUtxosRequest(lease_id=held.lease_id), metadata=PUBLISHER)
    assert list(listed.utxos) == [], "the dead coin left the lease"
    assert await status_of(db, mined) == "available"
    # Dead transactions are no committed spends any more.
    assert sorted((await accept(utxo, t2, t3)).skipped_txids) == sorted([t2, t3])

    # The caller then reports its own later transaction: its input from the dead ancestor (INVALID)
    # is skipped, the other one gets the new evidence.
    again = await utxo.stub.ReportConflict(
        utxo_pb2.ReportConflictRequest(
            request_id="c2",
            outpoints=[o1, other_b],
            kind=utxo_pb2.CONFLICT_KIND_MISSING_INPUTS,
            spending_txid=t2,
        ),
        metadata=WALLET,
    )
    assert [(u.outpoint, u.status, u.status_reason) for u in again.dirty] == [(other_b, DIRTY, "MISSING_INPUTS")]
    assert list(again.invalidated) == [] and list(again.invalidated_txids) == []
    # And the first report replays its answer.
    replay = await utxo.stub.ReportConflict(
        utxo_pb2.ReportConflictRequest(
            request_id="c1", outpoints=[root], kind=utxo_pb2.CONFLICT_KIND_DOUBLE_SPEND, spending_txid=t1
        ),
        metadata=WALLET,
    )
    assert replay == response


async def test_a_conflict_leaves_coins_the_chain_vouched_for(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    """Outputs of spending_txid that are AVAILABLE at depth 0 (seen on chain) are not invalidated,
    nor is anything that spent them."""
    [coin] = await seed(db, [10_000])
    t1, [o1, o1b] = await spend(utxo, [coin], [9_000, 500])
    await db.execute("UPDATE utxos SET status = 'available', block_height = 101 WHERE txid = $1 AND vout = 1", t1)
    response = await utxo.stub.ReportConflict(
        utxo_pb2.ReportConflictRequest(
            request_id="c1", outpoints=[coin], kind=utxo_pb2.CONFLICT_KIND_REJECTED, spending_txid=t1
        ),
        metadata=WALLET,
    )
    assert [u.outpoint for u in response.invalidated] == [o1]
    assert await status_of(db, o1b) == "available"


# --- sync --------------------------------------------------------------------------------------------


async def test_sync_keeps_accepted_change_in_the_mempool_and_zeroes_its_depth_once_mined(
    database_url: str, redis_url: str, db: asyncpg.Connection
) -> None:
    async with chain_stack(database_url, redis_url) as stack:
        await stack.fund(FUNDING, 20_000)
        await sync(stack, "s1")
        lease = (
            await stack.utxo.stub.LeaseUtxos(
                lease_request("l1", count=1, purpose=utxo_pb2.UTXO_PURPOSE_FUNDING), metadata=PUBLISHER
            )
        ).lease
        [coin] = lease.utxos
        # A real transaction in the mempool, paying the change key, committed and reported accepted.
        txid = await stack.spend_elsewhere(FUNDING, [(outpoint(coin.outpoint), coin.satoshis)], stack.scripts[CHANGE])
        change = utxo_pb2.SpendOutput(
            vout=0,
            satoshis=coin.satoshis - 1,
            locking_script=stack.scripts[CHANGE],
            owner_key_id=CHANGE,
            purpose=utxo_pb2.UTXO_PURPOSE_CHANGE,
        )
        await stack.utxo.stub.CommitSpend(
            utxo_pb2.CommitSpendRequest(
                request_id="c1",
                lease_id=lease.lease_id,
                fencing_token=lease.fencing_token,
                spends=[utxo_pb2.Spend(txid=txid, inputs=[coin.outpoint], outputs=[change])],
            ),
            metadata=PUBLISHER,
        )
        [accepted] = (await accept(stack.utxo, txid)).available
        assert (accepted.status, accepted.unconfirmed_depth) == (AVAILABLE, 1)

        in_mempool = await sync(stack, "s2", FUNDING, CHANGE)
        assert [c.reason for c in in_mempool.sync.changes] == []
        assert await depth_of(db, accepted.outpoint) == ("available", 1)
        assert await db.fetchval("SELECT block_height FROM utxos WHERE txid = $1", txid) is None

        await stack.mine()
        await sync(stack, "s3", FUNDING, CHANGE)
        assert await depth_of(db, accepted.outpoint) == ("available", 0)
        [mined] = await list_of(stack, AVAILABLE, owner=CHANGE)
        assert (mined.unconfirmed_depth, mined.confirmations) == (0, 1)


async def test_maintenance_sees_depth_zero_coins_only(db: asyncpg.Connection) -> None:
    """Split and sweep plan over peek_available and count the low water with count_available."""
    await seed(db, [500], purpose="funding")
    await seed_deep(db, [900], depth=1)
    await db.execute("UPDATE utxos SET purpose = 'funding' WHERE unconfirmed_depth > 0")
    await seed(db, [100])
    await seed_deep(db, [200], depth=1)
    uow = UtxoUnitOfWork(db)
    coins = await uow.peek_available(Purpose.FUNDING, OWNER, Strategy.LARGEST_FIRST, 1, 10)
    assert [c.satoshis for c in coins] == [500]
    assert await uow.count_available(Purpose.PUBLISH, "") == 1
