"""Lease semantics one by one: claims, strategies, targets, exhaustion, renewal, release, idempotency."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from proofline.utxo.v1 import utxo_pb2

from proofline_kit.rpc.status import error_reason
from tests.harness.grpc_errors import expect_rpc_error
from tests.utxo.conftest import (
    OWNER,
    PUBLISHER,
    STRANGER,
    WALLET,
    UtxoUnderTest,
    lease_request,
    outpoints_of,
    seed,
    start_utxo_under_test,
    status_of,
    stop_utxo_under_test,
    utxo_env,
)


def seconds(value: float) -> Duration:
    duration = Duration()
    duration.FromMilliseconds(int(value * 1000))
    return duration


def metadata_of(error: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return dict(info.metadata)
    return {}


async def test_count_lease_takes_smallest_first_by_default(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    await seed(db, [500, 100, 300, 100])
    response = await utxo.stub.LeaseUtxos(lease_request("r1", count=3, holder="worker-1"), metadata=PUBLISHER)
    lease = response.lease
    assert [u.satoshis for u in lease.utxos] == [100, 100, 300]
    assert [u.outpoint.vout for u in lease.utxos][:2] == [1, 3], "oldest first among equals"
    assert lease.state == utxo_pb2.LEASE_STATE_LIVE
    assert lease.total_satoshis == 500
    assert lease.caller_id == "publisher"
    assert lease.holder == "worker-1"
    assert lease.fencing_token > 0
    assert all(u.status == utxo_pb2.UTXO_STATUS_RESERVED and u.lease_id == lease.lease_id for u in lease.utxos)
    assert all(u.locking_script and u.owner_key_id == OWNER for u in lease.utxos)
    duration = lease.expire_time.ToDatetime() - lease.create_time.ToDatetime()
    assert 299 <= duration.total_seconds() <= 301


async def test_largest_first_and_server_default_strategy(
    utxo: UtxoUnderTest, db: asyncpg.Connection, database_url: str, redis_url: str
) -> None:
    await seed(db, [500, 100, 300, 500])
    response = await utxo.stub.LeaseUtxos(
        lease_request("r1", count=3, strategy=utxo_pb2.LEASE_STRATEGY_LARGEST_FIRST), metadata=PUBLISHER
    )
    assert [u.satoshis for u in response.lease.utxos] == [500, 500, 300]
    assert [u.outpoint.vout for u in response.lease.utxos][:2] == [0, 3]
    other = await start_utxo_under_test(utxo_env(database_url, redis_url, UTXO_LEASE_STRATEGY="largest_first"))
    try:
        await seed(db, [50, 70])
        response = await other.stub.LeaseUtxos(lease_request("r2", count=1), metadata=PUBLISHER)
        assert [u.satoshis for u in response.lease.utxos] == [100]
    finally:
        await stop_utxo_under_test(other)


async def test_filters_purpose_owner_and_min_satoshis(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    await seed(db, [10, 20])
    await seed(db, [30], owner="other-key")
    await seed(db, [40], purpose="wallet")
    response = await utxo.stub.LeaseUtxos(lease_request("r1", count=1, owner_key_id="other-key"), metadata=PUBLISHER)
    assert [u.satoshis for u in response.lease.utxos] == [30]
    response = await utxo.stub.LeaseUtxos(lease_request("r2", count=1, min_satoshis=15), metadata=PUBLISHER)
    assert [u.satoshis for u in response.lease.utxos] == [20]
    response = await utxo.stub.LeaseUtxos(
        lease_request("r3", count=1, purpose=utxo_pb2.UTXO_PURPOSE_WALLET), metadata=WALLET
    )
    assert [u.satoshis for u in response.lease.utxos] == [40]


async def test_only_available_outpoints_are_leasable(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    for status in ("unconfirmed", "invalid"):
        await seed(db, [100], status=status)
    await db.execute(
        "INSERT INTO utxos (txid, vout, satoshis, locking_script, owner_key_id, purpose, status, status_reason) "
        "VALUES ($1, 0, 100, '\\x51', $2, 'publish', 'dirty', 'DOUBLE_SPEND')",
        "ab" * 32,
        OWNER,
    )
    error = await expect_rpc_error(
        utxo.stub.LeaseUtxos(lease_request("r1", count=1), metadata=PUBLISHER),
        grpc.StatusCode.FAILED_PRECONDITION,
        "POOL_EXHAUSTED",
    )
    assert metadata_of(error)["availableCount"] == "0"


async def test_all_or_nothing_unless_allow_partial(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    outpoints = await seed(db, [100, 200])
    error = await expect_rpc_error(
        utxo.stub.LeaseUtxos(lease_request("r1", count=3), metadata=PUBLISHER),
        grpc.StatusCode.FAILED_PRECONDITION,
        "POOL_EXHAUSTED",
    )
    assert metadata_of(error) == {"availableCount": "2", "availableSatoshis": "300", "purpose": "publish"}
    assert [await status_of(db, o) for o in outpoints] == ["available", "available"], "nothing changed"
    assert await db.fetchval("SELECT count(*) FROM leases") == 0
    response = await utxo.stub.LeaseUtxos(lease_request("r2", count=3, allow_partial=True), metadata=PUBLISHER)
    assert len(response.lease.utxos) == 2
    await expect_rpc_error(
        utxo.stub.LeaseUtxos(lease_request("r3", count=3, allow_partial=True), metadata=PUBLISHER),
        grpc.StatusCode.FAILED_PRECONDITION,
        "POOL_EXHAUSTED",
    )


async def test_target_lease_covers_the_amount_and_input_fees(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    await seed(db, [1_000, 2_000, 4_000, 8_000, 100])
    response = await utxo.stub.LeaseUtxos(
        lease_request("r1", target_satoshis=3_000, strategy=utxo_pb2.LEASE_STRATEGY_LARGEST_FIRST),
        metadata=PUBLISHER,
    )
    assert [u.satoshis for u in response.lease.utxos] == [8_000]
    # 100 sat/kB: each input costs ceil(148 * 100 / 1000) = 15 sat, and the 100-sat coin is still worth it.
    response = await utxo.stub.LeaseUtxos(
        lease_request("r2", target_satoshis=3_050, fee_rate_satoshis_per_kb=100), metadata=PUBLISHER
    )
    assert [u.satoshis for u in response.lease.utxos] == [100, 1_000, 2_000]
    assert response.lease.total_satoshis - 3 * 15 >= 3_050


async def test_target_beyond_the_pool_or_max_count_is_exhausted(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    outpoints = await seed(db, [100] * 10)
    error = await expect_rpc_error(
        utxo.stub.LeaseUtxos(lease_request("r1", target_satoshis=1_001), metadata=PUBLISHER),
        grpc.StatusCode.FAILED_PRECONDITION,
        "POOL_EXHAUSTED",
    )
    assert metadata_of(error)["availableSatoshis"] == "1000"
    await expect_rpc_error(
        utxo.stub.LeaseUtxos(lease_request("r2", target_satoshis=500, max_count=4), metadata=PUBLISHER),
        grpc.StatusCode.FAILED_PRECONDITION,
        "POOL_EXHAUSTED",
    )
    assert {await status_of(db, o) for o in outpoints} == {"available"}
    response = await utxo.stub.LeaseUtxos(lease_request("r3", target_satoshis=500, max_count=5), metadata=PUBLISHER)
    assert len(response.lease.utxos) == 5


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"count": 0}, "COUNT_INVALID"),
        ({"count": 1001}, "COUNT_INVALID"),
        ({"target_satoshis": 0}, "TARGET_SATOSHIS_INVALID"),
        ({"target_satoshis": -5}, "TARGET_SATOSHIS_INVALID"),
        ({}, "QUANTITY_INVALID"),
        ({"count": 1, "purpose": utxo_pb2.UTXO_PURPOSE_UNSPECIFIED}, "PURPOSE_INVALID"),
        ({"count": 1, "lease_duration": seconds(0.5)}, "LEASE_DURATION_INVALID"),
        ({"count": 1, "lease_duration": seconds(3601)}, "LEASE_DURATION_INVALID"),
        ({"count": 1, "min_satoshis": -1}, "MIN_SATOSHIS_INVALID"),
        ({"target_satoshis": 10, "fee_rate_satoshis_per_kb": -1}, "FEE_RATE_SATOSHIS_PER_KB_INVALID"),
        ({"target_satoshis": 10, "max_count": 1001}, "MAX_COUNT_INVALID"),
        ({"count": 1, "holder": "x" * 129}, "HOLDER_INVALID"),
        ({"count": 1, "owner_key_id": "bad key!"}, "OWNER_KEY_ID_INVALID"),
        ({"count": 1, "strategy": 9}, "STRATEGY_INVALID"),
    ],
)
async def test_bad_lease_requests_are_refused_and_change_nothing(
    utxo: UtxoUnderTest, db: asyncpg.Connection, fields: dict[str, object], reason: str
) -> None:
    await seed(db, [100])
    await expect_rpc_error(
        utxo.stub.LeaseUtxos(lease_request("r1", **fields), metadata=PUBLISHER),
        grpc.StatusCode.INVALID_ARGUMENT,
        reason,
    )
    assert await db.fetchval("SELECT count(*) FROM utxos WHERE status = 'available'") == 1
    assert await db.fetchval("SELECT count(*) FROM leases") == 0


async def test_request_id_is_required_and_replays_the_first_answer(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    await seed(db, [100, 200, 300])
    await expect_rpc_error(
        utxo.stub.LeaseUtxos(lease_request("", count=1), metadata=PUBLISHER),
        grpc.StatusCode.INVALID_ARGUMENT,
        "REQUEST_ID_INVALID",
    )
    first = await utxo.stub.LeaseUtxos(lease_request("same", count=1, lease_duration=seconds(1)), metadata=PUBLISHER)
    await asyncio.sleep(1.1)
    again = await utxo.stub.LeaseUtxos(lease_request("same", count=1, lease_duration=seconds(1)), metadata=PUBLISHER)
    assert again == first, "the same lease, even after it expired"
    assert await db.fetchval("SELECT count(*) FROM leases") == 1
    await expect_rpc_error(
        utxo.stub.LeaseUtxos(lease_request("same", count=2), metadata=PUBLISHER),
        grpc.StatusCode.FAILED_PRECONDITION,
        "REQUEST_ID_REUSED",
    )
    # Request ids are per caller: the wallet's "same" is another request.
    other = await utxo.stub.LeaseUtxos(lease_request("same", count=1), metadata=WALLET)
    assert other.lease.lease_id != first.lease.lease_id


async def test_callers_need_the_pool_role_and_a_token(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    await seed(db, [100])
    await expect_rpc_error(
        utxo.stub.LeaseUtxos(lease_request("r1", count=1), metadata=STRANGER),
        grpc.StatusCode.PERMISSION_DENIED,
        "ROLE_REQUIRED",
    )
    await expect_rpc_error(utxo.stub.LeaseUtxos(lease_request("r1", count=1)), grpc.StatusCode.UNAUTHENTICATED)


async def test_fencing_tokens_strictly_increase(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    await seed(db, [100] * 5)
    tokens = []
    for index in range(5):
        response = await utxo.stub.LeaseUtxos(lease_request(f"r{index}", count=1), metadata=PUBLISHER)
        tokens.append(response.lease.fencing_token)
    assert tokens == sorted(tokens) and len(set(tokens)) == 5


async def test_renew_extends_and_may_shorten(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    await seed(db, [100, 200])
    lease = (await utxo.stub.LeaseUtxos(lease_request("r1", count=2), metadata=PUBLISHER)).lease
    renewed = (
        await utxo.stub.RenewLease(
            utxo_pb2.RenewLeaseRequest(
                request_id="n1",
                lease_id=lease.lease_id,
                fencing_token=lease.fencing_token,
                lease_duration=seconds(1800),
            ),
            metadata=PUBLISHER,
        )
    ).lease
    assert renewed.fencing_token == lease.fencing_token
    assert (renewed.expire_time.ToDatetime() - lease.expire_time.ToDatetime()).total_seconds() > 1400
    assert all(u.lease_expire_time == renewed.expire_time for u in renewed.utxos)
    shorter = (
        await utxo.stub.RenewLease(
            utxo_pb2.RenewLeaseRequest(
                request_id="n2", lease_id=lease.lease_id, fencing_token=lease.fencing_token, lease_duration=seconds(10)
            ),
            metadata=PUBLISHER,
        )
    ).lease
    assert shorter.expire_time.ToDatetime() < lease.expire_time.ToDatetime()


async def test_renew_refusals(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    await seed(db, [100])
    lease = (await utxo.stub.LeaseUtxos(lease_request("r1", count=1), metadata=PUBLISHER)).lease

    def renew(request_id: str, lease_id: str, token: int) -> utxo_pb2.RenewLeaseRequest:
        return utxo_pb2.RenewLeaseRequest(request_id=request_id, lease_id=lease_id, fencing_token=token)

    await expect_rpc_error(
        utxo.stub.RenewLease(renew("n1", "nope", lease.fencing_token), metadata=PUBLISHER),
        grpc.StatusCode.NOT_FOUND,
        "LEASE_NOT_FOUND",
    )
    await expect_rpc_error(
        utxo.stub.RenewLease(renew("n2", lease.lease_id, lease.fencing_token), metadata=WALLET),
        grpc.StatusCode.PERMISSION_DENIED,
        "LEASE_NOT_OWNED",
    )
    await expect_rpc_error(
        utxo.stub.RenewLease(renew("n3", lease.lease_id, lease.fencing_token + 1), metadata=PUBLISHER),
        grpc.StatusCode.ABORTED,
        "FENCING_TOKEN_STALE",
    )
    await expect_rpc_error(
        utxo.stub.RenewLease(
            utxo_pb2.RenewLeaseRequest(
                request_id="n4",
                lease_id=lease.lease_id,
                fencing_token=lease.fencing_token,
                lease_duration=seconds(7200),
            ),
            metadata=PUBLISHER,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "LEASE_DURATION_INVALID",
    )
    await utxo.stub.ReleaseLease(
        utxo_pb2.ReleaseLeaseRequest(request_id="x1", lease_id=lease.lease_id), metadata=PUBLISHER
    )
    await expect_rpc_error(
        utxo.stub.RenewLease(renew("n5", lease.lease_id, lease.fencing_token), metadata=PUBLISHER),
        grpc.StatusCode.FAILED_PRECONDITION,
        "LEASE_CLOSED",
    )


async def test_release_is_owner_only_idempotent_and_gives_rights_up(
    utxo: UtxoUnderTest, db: asyncpg.Connection
) -> None:
    outpoints = await seed(db, [100, 200, 300])
    lease = (await utxo.stub.LeaseUtxos(lease_request("r1", count=3), metadata=PUBLISHER)).lease
    await expect_rpc_error(
        utxo.stub.ReleaseLease(utxo_pb2.ReleaseLeaseRequest(request_id="x0", lease_id=lease.lease_id), metadata=WALLET),
        grpc.StatusCode.PERMISSION_DENIED,
        "LEASE_NOT_OWNED",
    )
    partial = await utxo.stub.ReleaseLease(
        utxo_pb2.ReleaseLeaseRequest(request_id="x1", lease_id=lease.lease_id, outpoints=[outpoints[0]]),
        metadata=PUBLISHER,
    )
    assert list(partial.released) == [outpoints[0]]
    assert partial.lease.state == utxo_pb2.LEASE_STATE_LIVE
    assert [u.satoshis for u in partial.lease.utxos] == [200, 300]
    assert await status_of(db, outpoints[0]) == "available"
    assert (
        await db.fetchval("SELECT fencing_token FROM utxos WHERE txid = $1 AND vout = 0", outpoints[0].txid) is None
    ), "a release gives the lease's rights up"
    rest = await utxo.stub.ReleaseLease(
        utxo_pb2.ReleaseLeaseRequest(request_id="x2", lease_id=lease.lease_id), metadata=PUBLISHER
    )
    assert list(rest.released) == outpoints[1:]
    assert rest.lease.state == utxo_pb2.LEASE_STATE_CLOSED
    twice = await utxo.stub.ReleaseLease(
        utxo_pb2.ReleaseLeaseRequest(request_id="x3", lease_id=lease.lease_id), metadata=PUBLISHER
    )
    assert list(twice.released) == [] and twice.lease.state == utxo_pb2.LEASE_STATE_CLOSED
    # Renewal after a partial release is fine: the released outpoint is not "lost".
    await seed(db, [50, 60])
    lease2 = (await utxo.stub.LeaseUtxos(lease_request("r2", count=2), metadata=PUBLISHER)).lease
    await utxo.stub.ReleaseLease(
        utxo_pb2.ReleaseLeaseRequest(request_id="x4", lease_id=lease2.lease_id, outpoints=[lease2.utxos[0].outpoint]),
        metadata=PUBLISHER,
    )
    renewed = await utxo.stub.RenewLease(
        utxo_pb2.RenewLeaseRequest(request_id="n1", lease_id=lease2.lease_id, fencing_token=lease2.fencing_token),
        metadata=PUBLISHER,
    )
    assert [u.satoshis for u in renewed.lease.utxos] == [60]


async def test_expired_lease_comes_back_lazily_and_the_late_holder_is_fenced(
    utxo: UtxoUnderTest, db: asyncpg.Connection
) -> None:
    outpoints = await seed(db, [100])
    first = (
        await utxo.stub.LeaseUtxos(lease_request("r1", count=1, lease_duration=seconds(1)), metadata=PUBLISHER)
    ).lease
    await expect_rpc_error(
        utxo.stub.LeaseUtxos(lease_request("r2", count=1), metadata=WALLET),
        grpc.StatusCode.FAILED_PRECONDITION,
        "POOL_EXHAUSTED",
    )
    await asyncio.sleep(1.1)
    second = (await utxo.stub.LeaseUtxos(lease_request("r3", count=1), metadata=WALLET)).lease
    assert outpoints_of(second) == outpoints_of(first)
    assert second.fencing_token > first.fencing_token
    await expect_rpc_error(
        utxo.stub.RenewLease(
            utxo_pb2.RenewLeaseRequest(request_id="n1", lease_id=first.lease_id, fencing_token=first.fencing_token),
            metadata=PUBLISHER,
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "LEASE_CLOSED",
    )
    spend = utxo_pb2.Spend(txid="cd" * 32, inputs=[outpoints[0]])
    error = await expect_rpc_error(
        utxo.stub.CommitSpend(
            utxo_pb2.CommitSpendRequest(
                request_id="c1", lease_id=first.lease_id, fencing_token=first.fencing_token, spends=[spend]
            ),
            metadata=PUBLISHER,
        ),
        grpc.StatusCode.ABORTED,
        "FENCING_TOKEN_STALE",
    )
    assert error_reason(error) == "FENCING_TOKEN_STALE"
    assert await status_of(db, outpoints[0]) == "reserved"
    # Releasing the lost lease is a no-op; the new holder keeps the outpoint.
    released = await utxo.stub.ReleaseLease(
        utxo_pb2.ReleaseLeaseRequest(request_id="x1", lease_id=first.lease_id), metadata=PUBLISHER
    )
    assert list(released.released) == []
    listed = await utxo.stub.ListUtxos(utxo_pb2.ListUtxosRequest(lease_id=second.lease_id), metadata=PUBLISHER)
    assert len(listed.utxos) == 1


async def test_expired_but_not_taken_lease_can_renew_and_commit(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    outpoints = await seed(db, [100, 200])
    lease = (
        await utxo.stub.LeaseUtxos(lease_request("r1", count=2, lease_duration=seconds(1)), metadata=PUBLISHER)
    ).lease
    await asyncio.sleep(1.1)
    reaped = await utxo.running.pool.reap_expired()
    assert (reaped.leases, reaped.utxos) == (1, 2)
    assert await status_of(db, outpoints[0]) == "available"
    listed = await utxo.stub.ListUtxos(utxo_pb2.ListUtxosRequest(lease_id=lease.lease_id), metadata=PUBLISHER)
    assert len(listed.utxos) == 2, "reaped outpoints still carry the token"
    renewed = (
        await utxo.stub.RenewLease(
            utxo_pb2.RenewLeaseRequest(request_id="n1", lease_id=lease.lease_id, fencing_token=lease.fencing_token),
            metadata=PUBLISHER,
        )
    ).lease
    assert renewed.state == utxo_pb2.LEASE_STATE_LIVE
    assert {await status_of(db, o) for o in outpoints} == {"reserved"}, "reaped ones are reserved again"
    await asyncio.sleep(0)
    await db.execute("UPDATE leases SET expires_at = now() - interval '1 second'")
    await db.execute("UPDATE utxos SET lease_expires_at = now() - interval '1 second' WHERE status = 'reserved'")
    committed = await utxo.stub.CommitSpend(
        utxo_pb2.CommitSpendRequest(
            request_id="c1",
            lease_id=lease.lease_id,
            fencing_token=lease.fencing_token,
            spends=[utxo_pb2.Spend(txid="ef" * 32, inputs=[outpoints[0]])],
        ),
        metadata=PUBLISHER,
    )
    assert [u.status for u in committed.spent] == [utxo_pb2.UTXO_STATUS_SPENT]
    assert committed.lease.state == utxo_pb2.LEASE_STATE_EXPIRED


async def test_renewing_after_a_partial_takeover_is_stale(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    await seed(db, [100, 200])
    lease = (
        await utxo.stub.LeaseUtxos(lease_request("r1", count=2, lease_duration=seconds(1)), metadata=PUBLISHER)
    ).lease
    await asyncio.sleep(1.1)
    taken = (await utxo.stub.LeaseUtxos(lease_request("r2", count=1), metadata=WALLET)).lease
    assert [u.satoshis for u in taken.utxos] == [100]
    await expect_rpc_error(
        utxo.stub.RenewLease(
            utxo_pb2.RenewLeaseRequest(request_id="n1", lease_id=lease.lease_id, fencing_token=lease.fencing_token),
            metadata=PUBLISHER,
        ),
        grpc.StatusCode.ABORTED,
        "FENCING_TOKEN_STALE",
    )
