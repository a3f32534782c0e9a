"""LeaseUtxos of exact outpoints: the caller's own coin selection, leased all or nothing."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator, Sequence

import asyncpg
import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from proofline.common.v1 import common_pb2
from proofline.utxo.v1 import utxo_pb2

from proofline_kit.rpc.status import error_reason
from services.utxo.store.unit_of_work import UtxoUnitOfWork
from tests.harness.grpc_errors import expect_rpc_error
from tests.harness.schema_snapshot import SchemaSnapshot, changed_tables
from tests.utxo.conftest import (
    OWNER,
    PUBLISHER,
    WALLET,
    UtxoUnderTest,
    lease_request,
    outpoints_of,
    random_txid,
    seed,
    status_of,
)
from tests.utxo.test_concurrency import replay

WALLET_PURPOSE = utxo_pb2.UTXO_PURPOSE_WALLET
Metadata = tuple[tuple[str, str], ...]


def exact(request_id: str, outpoints: Sequence[common_pb2.Outpoint], **fields: object) -> utxo_pb2.LeaseUtxosRequest:
    return lease_request(request_id, outpoints=utxo_pb2.OutpointList(outpoints=list(outpoints)), **fields)


def info_of(error: grpc.aio.AioRpcError) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """ErrorInfo metadata, and the BadRequest violations as (field, reason)."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    metadata: dict[str, str] = {}
    violations: list[tuple[str, str]] = []
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(info):
            metadata = dict(info.metadata)
        elif detail.Unpack(bad):
            violations = [(v.field, v.reason) for v in bad.field_violations]
    return metadata, violations


def key(outpoint: common_pb2.Outpoint) -> str:
    return f"{outpoint.txid}:{outpoint.vout}"


@pytest.fixture
def snapshot(database_url: str) -> Iterator[SchemaSnapshot]:
    """Digests of every table of the utxo schema, to prove that a refusal changed nothing."""
    taken = SchemaSnapshot(database_url, "utxo")
    try:
        yield taken
    finally:
        taken.close()


async def refused_unchanged(
    snapshot: SchemaSnapshot,
    utxo: UtxoUnderTest,
    request: utxo_pb2.LeaseUtxosRequest,
    code: grpc.StatusCode,
    reason: str,
    metadata: Metadata = PUBLISHER,
) -> grpc.aio.AioRpcError:
    before = snapshot.take()
    error = await expect_rpc_error(utxo.stub.LeaseUtxos(request, metadata=metadata, timeout=10), code, reason)
    assert changed_tables(before, snapshot.take()) == [], "a refusal must change nothing"
    return error


async def test_leases_exactly_the_outpoints_in_request_order(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    coins = await seed(db, [100, 200, 300, 400, 500])
    earlier = (await utxo.stub.LeaseUtxos(lease_request("r0", count=1), metadata=PUBLISHER)).lease
    assert outpoints_of(earlier) == [(coins[0].txid, 0)]
    chosen = [coins[3], coins[1], coins[4]]
    lease = (await utxo.stub.LeaseUtxos(exact("r1", chosen, holder="wallet/send-7"), metadata=PUBLISHER)).lease
    assert [key(u.outpoint) for u in lease.utxos] == [key(o) for o in chosen], "request order"
    assert [u.satoshis for u in lease.utxos] == [400, 200, 500]
    assert lease.total_satoshis == 1_100
    assert lease.state == utxo_pb2.LEASE_STATE_LIVE and lease.holder == "wallet/send-7"
    assert lease.fencing_token > earlier.fencing_token
    assert all(u.status == utxo_pb2.UTXO_STATUS_RESERVED and u.lease_id == lease.lease_id for u in lease.utxos)
    assert all(u.lease_expire_time == lease.expire_time and u.owner_key_id == OWNER for u in lease.utxos)
    assert [await status_of(db, o) for o in coins] == ["reserved", "reserved", "available", "reserved", "reserved"]
    tokens = await db.fetch("SELECT vout, fencing_token FROM utxos WHERE status = 'reserved' ORDER BY vout")
    assert {r["vout"]: r["fencing_token"] for r in tokens} == {
        0: earlier.fencing_token,
        1: lease.fencing_token,
        3: lease.fencing_token,
        4: lease.fencing_token,
    }
    events = await db.fetch(
        "SELECT utxo_id, from_status, to_status FROM utxo_events WHERE fencing_token = $1 AND kind = 'lease'",
        lease.fencing_token,
    )
    assert len(events) == 3 and {(e["from_status"], e["to_status"]) for e in events} == {("available", "reserved")}

    # The lease is a lease like any other: renewed, listed, committed under its token.
    renewed = await utxo.stub.RenewLease(
        utxo_pb2.RenewLeaseRequest(request_id="n1", lease_id=lease.lease_id, fencing_token=lease.fencing_token),
        metadata=PUBLISHER,
    )
    assert [u.satoshis for u in renewed.lease.utxos] == [200, 400, 500], "later answers: default strategy order"
    listed = await utxo.stub.ListUtxos(utxo_pb2.ListUtxosRequest(lease_id=lease.lease_id), metadata=PUBLISHER)
    assert len(listed.utxos) == 3
    committed = await utxo.stub.CommitSpend(
        utxo_pb2.CommitSpendRequest(
            request_id="c1",
            lease_id=lease.lease_id,
            fencing_token=lease.fencing_token,
            spends=[utxo_pb2.Spend(txid=random_txid(), inputs=chosen)],
        ),
        metadata=PUBLISHER,
    )
    assert len(committed.spent) == 3 and committed.lease.state == utxo_pb2.LEASE_STATE_CLOSED


async def test_owner_key_and_purpose_must_match(
    utxo: UtxoUnderTest, db: asyncpg.Connection, snapshot: SchemaSnapshot
) -> None:
    mine = await seed(db, [100, 200], purpose="wallet", owner="wallet-key-1")
    other_owner = await seed(db, [300], purpose="wallet", owner="wallet-key-2")
    publish = await seed(db, [400])
    error = await refused_unchanged(
        snapshot,
        utxo,
        exact("r1", [mine[0], *other_owner, mine[1]], purpose=WALLET_PURPOSE, owner_key_id="wallet-key-1"),
        grpc.StatusCode.FAILED_PRECONDITION,
        "UTXO_MISMATCH",
        WALLET,
    )
    assert info_of(error)[0] == {
        "outpoint": key(other_owner[0]),
        "purpose": "wallet",
        "ownerKeyId": "wallet-key-2",
        "mismatchCount": "1",
    }
    error = await refused_unchanged(
        snapshot,
        utxo,
        exact("r2", [*publish, mine[0], *other_owner], purpose=WALLET_PURPOSE),
        grpc.StatusCode.FAILED_PRECONDITION,
        "UTXO_MISMATCH",
        WALLET,
    )
    assert info_of(error)[0]["outpoint"] == key(publish[0]) and info_of(error)[0]["purpose"] == "publish"
    assert info_of(error)[0]["mismatchCount"] == "1", "without owner_key_id, any owner of the purpose matches"
    lease = (
        await utxo.stub.LeaseUtxos(
            exact("r3", [mine[1], *other_owner], purpose=WALLET_PURPOSE, lease_duration=Duration(seconds=60)),
            metadata=WALLET,
        )
    ).lease
    assert [u.owner_key_id for u in lease.utxos] == ["wallet-key-1", "wallet-key-2"]
    assert [u.purpose for u in lease.utxos] == [WALLET_PURPOSE, WALLET_PURPOSE]


async def _seed_dirty(db: asyncpg.Connection) -> common_pb2.Outpoint:
    txid = random_txid()
    await db.execute(
        "INSERT INTO utxos (txid, vout, satoshis, locking_script, owner_key_id, purpose, status, status_reason) "
        "VALUES ($1, 0, 100, '\\x51', $2, 'publish', 'dirty', 'DOUBLE_SPEND')",
        txid,
        OWNER,
    )
    return common_pb2.Outpoint(txid=txid, vout=0)


async def _seed_spent(db: asyncpg.Connection) -> common_pb2.Outpoint:
    outpoint = (await seed(db, [100]))[0]
    await db.execute(
        "UPDATE utxos SET status = 'spent', spent_at = now(), spent_by_txid = $2 WHERE txid = $1",
        outpoint.txid,
        random_txid(),
    )
    return outpoint


async def _seed_leased(utxo: UtxoUnderTest, db: asyncpg.Connection) -> common_pb2.Outpoint:
    outpoint = (await seed(db, [100]))[0]
    await utxo.stub.LeaseUtxos(exact("holder-1", [outpoint]), metadata=WALLET)
    return outpoint


@pytest.mark.parametrize("kind", ["reserved", "spent", "dirty", "unconfirmed", "invalid"])
async def test_one_unleasable_outpoint_refuses_them_all(
    utxo: UtxoUnderTest, db: asyncpg.Connection, snapshot: SchemaSnapshot, kind: str
) -> None:
    good = await seed(db, [100, 200, 300])
    if kind == "reserved":
        bad = await _seed_leased(utxo, db)
    elif kind == "spent":
        bad = await _seed_spent(db)
    elif kind == "dirty":
        bad = await _seed_dirty(db)
    else:
        bad = (await seed(db, [100], status=kind, block_height=None))[0]
    error = await refused_unchanged(
        snapshot,
        utxo,
        exact("r1", [good[0], good[1], bad, good[2]]),
        grpc.StatusCode.FAILED_PRECONDITION,
        "UTXO_NOT_AVAILABLE",
    )
    assert info_of(error)[0] == {"outpoint": key(bad), "unavailableCount": "1"}
    assert {await status_of(db, o) for o in good} == {"available"}
    # Without the bad one, the same coins lease fine.
    lease = (await utxo.stub.LeaseUtxos(exact("r2", good), metadata=PUBLISHER)).lease
    assert len(lease.utxos) == 3


async def test_an_unknown_outpoint_is_not_found(
    utxo: UtxoUnderTest, db: asyncpg.Connection, snapshot: SchemaSnapshot
) -> None:
    good = await seed(db, [100, 200])
    unknown = [common_pb2.Outpoint(txid=random_txid(), vout=1), common_pb2.Outpoint(txid=good[0].txid, vout=7)]
    spent = await _seed_spent(db)
    error = await refused_unchanged(
        snapshot,
        utxo,
        exact("r1", [good[0], spent, unknown[0], good[1], unknown[1]]),
        grpc.StatusCode.NOT_FOUND,
        "UTXO_NOT_FOUND",
    )
    assert info_of(error)[0] == {"outpoint": key(unknown[0]), "missingCount": "2"}, "checked before availability"


async def test_the_first_unavailable_in_request_order_is_named_with_the_count(
    utxo: UtxoUnderTest, db: asyncpg.Connection, snapshot: SchemaSnapshot
) -> None:
    spent = await _seed_spent(db)
    good = await seed(db, [100])
    leased = await _seed_leased(utxo, db)
    dirty = await _seed_dirty(db)
    error = await refused_unchanged(
        snapshot,
        utxo,
        exact("r1", [good[0], dirty, spent, leased]),
        grpc.StatusCode.FAILED_PRECONDITION,
        "UTXO_NOT_AVAILABLE",
    )
    assert info_of(error)[0] == {"outpoint": key(dirty), "unavailableCount": "3"}


async def test_a_row_another_transaction_holds_is_unavailable_at_once(
    utxo: UtxoUnderTest, db: asyncpg.Connection, database_url: str, snapshot: SchemaSnapshot
) -> None:
    coins = await seed(db, [100, 200, 300])
    spent = await _seed_spent(db)
    other = await asyncpg.connect(database_url, server_settings={"search_path": "utxo"})
    try:
        transaction = other.transaction()
        await transaction.start()
        await other.execute("SELECT 1 FROM utxos WHERE txid = $1 AND vout = 2 FOR UPDATE", coins[2].txid)
        # Never waits: the held row is not available, and it is named even though the spent row, which
        # comes before it in id order, is unavailable too.
        error = await asyncio.wait_for(
            refused_unchanged(
                snapshot,
                utxo,
                exact("r1", [coins[0], coins[2], spent]),
                grpc.StatusCode.FAILED_PRECONDITION,
                "UTXO_NOT_AVAILABLE",
            ),
            timeout=5,
        )
        assert info_of(error)[0] == {"outpoint": key(coins[2]), "unavailableCount": "2"}
        error = await expect_rpc_error(
            utxo.stub.LeaseUtxos(exact("r2", [coins[1], coins[2]]), metadata=PUBLISHER, timeout=5),
            grpc.StatusCode.FAILED_PRECONDITION,
            "UTXO_NOT_AVAILABLE",
        )
        assert info_of(error)[0] == {"outpoint": key(coins[2]), "unavailableCount": "1"}
        await transaction.rollback()
    finally:
        await other.close()
    assert {await status_of(db, o) for o in coins} == {"available"}, "the locks a refused claim took are gone"
    lease = (await utxo.stub.LeaseUtxos(exact("r3", [coins[2], coins[1]]), metadata=PUBLISHER)).lease
    assert [u.satoshis for u in lease.utxos] == [300, 200]


async def _can_lock_now(conn: asyncpg.Connection, row_id: int) -> bool:
    async with conn.transaction():
        try:
            await conn.execute("SELECT 1 FROM utxos WHERE id = $1 FOR UPDATE NOWAIT", row_id)
        except asyncpg.LockNotAvailableError:
            return False
    return True


async def test_a_claim_that_meets_a_held_row_stops_there_and_holds_nothing(
    db: asyncpg.Connection, database_url: str
) -> None:
    """Why exactly one of two overlapping claims wins: a claim locks in id order and, at the first
    row it cannot have, stops and lets go of what it took, so it never holds a row another claim
    still has to reach. (SKIP LOCKED would go on past the held row and could block the other claim,
    and both would be refused.)"""
    coins = await seed(db, [100 + i for i in range(10)])
    ids = [r["id"] for r in await db.fetch("SELECT id FROM utxos WHERE txid = $1 ORDER BY id", coins[0].txid)]
    holder, claimer, prober = [
        await asyncpg.connect(database_url, server_settings={"search_path": "utxo"}) for _ in range(3)
    ]
    try:
        held = holder.transaction()
        await held.start()
        await holder.execute("SELECT 1 FROM utxos WHERE id = ANY($1::bigint[]) FOR UPDATE", [ids[2], ids[7]])
        claim = claimer.transaction()
        await claim.start()
        uow = UtxoUnitOfWork(claimer)
        assert await uow.lock_rows_nowait(list(reversed(ids))) == ids[2], "in id order, whatever the given order"
        assert [await _can_lock_now(prober, i) for i in ids] == [i not in (ids[2], ids[7]) for i in ids]
        await held.rollback()
        assert await uow.lock_rows_nowait(ids) is None
        assert [await _can_lock_now(prober, i) for i in ids] == [False] * 10, "all held until the claim ends"
        await claim.rollback()
    finally:
        for conn in (holder, claimer, prober):
            await conn.close()


async def test_an_expired_reservation_is_leasable(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    coins = await seed(db, [100, 200, 300])
    first = (
        await utxo.stub.LeaseUtxos(exact("r1", coins[:2], lease_duration=Duration(seconds=60)), metadata=PUBLISHER)
    ).lease
    await expect_rpc_error(
        utxo.stub.LeaseUtxos(exact("r2", coins), metadata=WALLET),
        grpc.StatusCode.FAILED_PRECONDITION,
        "UTXO_NOT_AVAILABLE",
    )
    await db.execute("UPDATE leases SET expires_at = now() - interval '1 second'")
    await db.execute("UPDATE utxos SET lease_expires_at = now() - interval '1 second' WHERE status = 'reserved'")
    # One of the two is reaped (AVAILABLE, still carrying the token), the other still RESERVED, expired.
    reaped = await db.fetchval(
        "UPDATE utxos SET status = 'available', lease_expires_at = NULL WHERE txid = $1 AND vout = 0 RETURNING id",
        coins[0].txid,
    )
    assert reaped is not None
    second = (await utxo.stub.LeaseUtxos(exact("r3", coins), metadata=WALLET)).lease
    assert outpoints_of(second) == [(o.txid, o.vout) for o in coins]
    assert second.fencing_token > first.fencing_token
    assert {await status_of(db, o) for o in coins} == {"reserved"}
    froms = await db.fetch(
        "SELECT e.from_status FROM utxo_events e JOIN utxos u ON u.id = e.utxo_id "
        "WHERE e.fencing_token = $1 AND e.kind = 'lease' ORDER BY u.vout",
        second.fencing_token,
    )
    assert [r["from_status"] for r in froms] == ["available", "reserved", "available"]
    # The late holder is fenced: nothing carries its token any more.
    await expect_rpc_error(
        utxo.stub.RenewLease(
            utxo_pb2.RenewLeaseRequest(request_id="n1", lease_id=first.lease_id, fencing_token=first.fencing_token),
            metadata=PUBLISHER,
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "LEASE_CLOSED",
    )
    await expect_rpc_error(
        utxo.stub.CommitSpend(
            utxo_pb2.CommitSpendRequest(
                request_id="c1",
                lease_id=first.lease_id,
                fencing_token=first.fencing_token,
                spends=[utxo_pb2.Spend(txid=random_txid(), inputs=coins[:1])],
            ),
            metadata=PUBLISHER,
        ),
        grpc.StatusCode.ABORTED,
        "FENCING_TOKEN_STALE",
    )


async def test_two_concurrent_leases_of_overlapping_sets_exactly_one_wins(
    utxo: UtxoUnderTest, db: asyncpg.Connection
) -> None:
    rng = random.Random(7)
    for round_ in range(12):
        coins = await seed(db, [1_000 + i for i in range(600)])
        common = coins[200:400]
        first = coins[:200] + common
        second = common + coins[400:]
        rng.shuffle(first)
        rng.shuffle(second)
        answers = await asyncio.gather(
            utxo.stub.LeaseUtxos(exact(f"a{round_}", first), metadata=PUBLISHER, timeout=10),
            utxo.stub.LeaseUtxos(exact(f"b{round_}", second), metadata=WALLET, timeout=10),
            return_exceptions=True,
        )
        won = [a for a in answers if isinstance(a, utxo_pb2.LeaseUtxosResponse)]
        lost = [a for a in answers if isinstance(a, grpc.aio.AioRpcError)]
        assert len(won) == 1 and len(lost) == 1, answers
        assert error_reason(lost[0]) == "UTXO_NOT_AVAILABLE"
        assert info_of(lost[0])[0]["outpoint"] in {key(o) for o in common}
        lease = won[0].lease
        assert len(lease.utxos) == 400
        rows = await db.fetch("SELECT status, fencing_token FROM utxos WHERE txid = $1", coins[0].txid)
        reserved = [r for r in rows if r["status"] == "reserved"]
        assert len(reserved) == 400 and {r["fencing_token"] for r in reserved} == {lease.fencing_token}
        assert sum(r["status"] == "available" for r in rows) == 200, "the loser took nothing"
    assert await db.fetchval("SELECT count(*) FROM leases") == 12


async def test_request_id_replays_the_same_lease(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    coins = await seed(db, [100, 200, 300])
    first = await utxo.stub.LeaseUtxos(exact("same", [coins[2], coins[0]]), metadata=PUBLISHER)
    await utxo.stub.ReleaseLease(
        utxo_pb2.ReleaseLeaseRequest(request_id="x1", lease_id=first.lease.lease_id), metadata=PUBLISHER
    )
    again = await utxo.stub.LeaseUtxos(exact("same", [coins[2], coins[0]]), metadata=PUBLISHER)
    assert again == first, "the first answer, even after the lease was released"
    assert await db.fetchval("SELECT count(*) FROM leases") == 1
    for changed in ([coins[0], coins[2]], [coins[2]], [coins[2], coins[0], coins[1]]):
        await expect_rpc_error(
            utxo.stub.LeaseUtxos(exact("same", changed), metadata=PUBLISHER),
            grpc.StatusCode.FAILED_PRECONDITION,
            "REQUEST_ID_REUSED",
        )
    await expect_rpc_error(
        utxo.stub.LeaseUtxos(lease_request("same", count=2), metadata=PUBLISHER),
        grpc.StatusCode.FAILED_PRECONDITION,
        "REQUEST_ID_REUSED",
    )


async def test_a_concurrent_retry_gets_the_first_answer(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    """A retry while the first attempt is still running must not find the outpoints "taken" by it."""
    for round_ in range(10):
        coins = await seed(db, [100 + i for i in range(200)])
        request = exact(f"retry-{round_}", coins)
        answers = await asyncio.gather(
            *(utxo.stub.LeaseUtxos(request, metadata=PUBLISHER, timeout=10) for _ in range(3)),
            return_exceptions=True,
        )
        assert all(isinstance(a, utxo_pb2.LeaseUtxosResponse) for a in answers), answers
        assert len({a.lease.lease_id for a in answers if isinstance(a, utxo_pb2.LeaseUtxosResponse)}) == 1
    assert await db.fetchval("SELECT count(*) FROM leases") == 10


@pytest.mark.timeout(60)
async def test_concurrent_exact_and_count_leases_never_share_an_outpoint(
    utxo: UtxoUnderTest, db: asyncpg.Connection
) -> None:
    """Wallet-style exact leases over random windows, racing count leases and each other; the
    database's own history must show no outpoint in two live leases."""
    coins = await seed(db, [1_000 + i for i in range(60)])
    stop_at = asyncio.get_running_loop().time() + 3.0
    outcomes: dict[str, int] = {}

    async def worker(index: int) -> None:
        rng = random.Random(index)
        metadata = PUBLISHER if index % 2 else WALLET
        n = 0
        while asyncio.get_running_loop().time() < stop_at:
            n += 1
            if index % 4 == 0:
                request = lease_request(f"w{index}-{n}", count=rng.randint(1, 3), allow_partial=True)
            else:
                request = exact(f"w{index}-{n}", rng.sample(coins, rng.randint(1, 6)))
            try:
                lease = (await utxo.stub.LeaseUtxos(request, metadata=metadata, timeout=10)).lease
            except grpc.aio.AioRpcError as error:
                reason = error_reason(error)
                if reason not in {"UTXO_NOT_AVAILABLE", "POOL_EXHAUSTED"}:
                    raise
                outcomes[reason] = outcomes.get(reason, 0) + 1
                continue
            outcomes["leased"] = outcomes.get("leased", 0) + 1
            if rng.random() < 0.5:
                await utxo.stub.ReleaseLease(
                    utxo_pb2.ReleaseLeaseRequest(request_id=f"w{index}-{n}-x", lease_id=lease.lease_id),
                    metadata=metadata,
                    timeout=10,
                )
            else:
                # Commit one coin; the rest stays reserved until released at the next turn or never.
                spend = utxo_pb2.Spend(txid=random_txid(), inputs=[lease.utxos[0].outpoint])
                await utxo.stub.CommitSpend(
                    utxo_pb2.CommitSpendRequest(
                        request_id=f"w{index}-{n}-c",
                        lease_id=lease.lease_id,
                        fencing_token=lease.fencing_token,
                        spends=[spend],
                        release_unspent=True,
                    ),
                    metadata=metadata,
                    timeout=10,
                )

    await asyncio.gather(*(worker(i) for i in range(8)))
    assert outcomes.get("leased", 0) > 20 and outcomes.get("UTXO_NOT_AVAILABLE", 0) > 0, outcomes
    events = await db.fetch(
        "SELECT id, at, utxo_id, kind, fencing_token, lease_expires_at FROM utxo_events ORDER BY id"
    )
    replay([dict(e) for e in events])
    committed = await db.fetch("SELECT utxo_id, count(*) AS n FROM utxo_events WHERE kind = 'commit' GROUP BY 1")
    assert committed and all(r["n"] == 1 for r in committed)


def _many(count: int) -> list[common_pb2.Outpoint]:
    txid = "ab" * 32
    return [common_pb2.Outpoint(txid=txid, vout=vout) for vout in range(count)]


GOOD = common_pb2.Outpoint(txid="cd" * 32, vout=0)


@pytest.mark.parametrize(
    ("outpoints", "fields", "reason", "field"),
    [
        ([], {}, "OUTPOINTS_INVALID", "outpoints.outpoints"),
        (_many(1001), {}, "OUTPOINTS_INVALID", "outpoints.outpoints"),
        (_many(10_001), {}, "OUTPOINTS_INVALID", "outpoints.outpoints"),
        ([GOOD, *_many(2), GOOD], {}, "OUTPOINTS_INVALID", "outpoints.outpoints[3]"),
        ([GOOD, common_pb2.Outpoint(txid="xyz", vout=0)], {}, "OUTPOINT_INVALID", "outpoints.outpoints[1].txid"),
        ([common_pb2.Outpoint(txid="AB" * 32, vout=0)], {}, "OUTPOINT_INVALID", "outpoints.outpoints[0].txid"),
        ([common_pb2.Outpoint(vout=3)], {}, "OUTPOINT_INVALID", "outpoints.outpoints[0].txid"),
        ([GOOD], {"strategy": utxo_pb2.LEASE_STRATEGY_LARGEST_FIRST}, "STRATEGY_INVALID", "strategy"),
        ([GOOD], {"allow_partial": True}, "ALLOW_PARTIAL_INVALID", "allow_partial"),
        ([GOOD], {"min_satoshis": 1}, "MIN_SATOSHIS_INVALID", "min_satoshis"),
        ([GOOD], {"fee_rate_satoshis_per_kb": 1}, "FEE_RATE_SATOSHIS_PER_KB_INVALID", "fee_rate_satoshis_per_kb"),
        ([GOOD], {"max_count": 1}, "MAX_COUNT_INVALID", "max_count"),
        ([GOOD], {"purpose": utxo_pb2.UTXO_PURPOSE_UNSPECIFIED}, "PURPOSE_INVALID", "purpose"),
        ([GOOD], {"lease_duration": Duration(seconds=7200)}, "LEASE_DURATION_INVALID", "lease_duration"),
    ],
)
async def test_bad_outpoint_lists_are_refused_with_their_reasons(
    utxo: UtxoUnderTest,
    db: asyncpg.Connection,
    snapshot: SchemaSnapshot,
    outpoints: list[common_pb2.Outpoint],
    fields: dict[str, object],
    reason: str,
    field: str,
) -> None:
    await db.execute(
        "INSERT INTO utxos (txid, vout, satoshis, locking_script, owner_key_id, purpose, status, block_height) "
        "VALUES ($1, 0, 100, '\\x51', $2, 'publish', 'available', 100)",
        GOOD.txid,
        OWNER,
    )
    error = await refused_unchanged(
        snapshot, utxo, exact("r1", outpoints, **fields), grpc.StatusCode.INVALID_ARGUMENT, reason
    )
    assert info_of(error)[1][:1] == [(field, reason)]
