"""The requests a hostile run sent to the pool, answered with a reason and changing nothing
(issue 12: classes 1, 3, 4, 5 and 9 over the real server)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from proofline.common.v1 import common_pb2
from proofline.utxo.v1 import utxo_pb2

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
    seed,
)

INT64_MAX = 2**63 - 1
SUPPLY = 2_100_000_000_000_000


async def pool_rows(db: asyncpg.Connection) -> list[tuple[object, ...]]:
    rows = await db.fetch("SELECT txid, vout, satoshis, status, fencing_token FROM utxos ORDER BY txid, vout")
    return [tuple(row) for row in rows]


def new_output(satoshis: int, vout: int = 0) -> utxo_pb2.NewOutput:
    return utxo_pb2.NewOutput(
        outpoint=common_pb2.Outpoint(txid=random_txid(), vout=vout),
        satoshis=satoshis,
        locking_script=P2PKH,
        owner_key_id=OWNER,
        purpose=PUBLISH,
    )


@pytest.mark.parametrize("satoshis", [INT64_MAX, SUPPLY + 1])
async def test_an_amount_beyond_the_supply_is_refused_and_health_stays_readable(
    utxo: UtxoUnderTest, db: asyncpg.Connection, satoshis: int
) -> None:
    await seed(db, [1000])
    before = await pool_rows(db)
    request = utxo_pb2.AddOutputsRequest(request_id="add-1", outputs=[new_output(satoshis)])
    refused = utxo.stub.AddOutputs(request, metadata=WALLET)
    await expect_rpc_error(refused, grpc.StatusCode.INVALID_ARGUMENT, "SATOSHIS_INVALID")
    assert await pool_rows(db) == before
    health = await utxo.stub.GetPoolHealth(utxo_pb2.GetPoolHealthRequest(), metadata=PUBLISHER)
    assert sum(bucket.satoshis for bucket in health.buckets) == 1000


async def test_the_supply_in_one_output_is_accepted_and_health_sums_it(utxo: UtxoUnderTest) -> None:
    outputs = [new_output(SUPPLY)]
    await utxo.stub.AddOutputs(utxo_pb2.AddOutputsRequest(request_id="add-1", outputs=outputs), metadata=WALLET)
    health = await utxo.stub.GetPoolHealth(utxo_pb2.GetPoolHealthRequest(), metadata=PUBLISHER)
    assert sum(bucket.satoshis for bucket in health.buckets) == SUPPLY


async def test_list_utxos_max_satoshis_beyond_the_supply_is_refused(
    utxo: UtxoUnderTest, db: asyncpg.Connection
) -> None:
    await seed(db, [5000])
    request = utxo_pb2.ListUtxosRequest(max_satoshis=SUPPLY + 1)
    await expect_rpc_error(
        utxo.stub.ListUtxos(request, metadata=PUBLISHER), grpc.StatusCode.INVALID_ARGUMENT, "MAX_SATOSHIS_INVALID"
    )
    listed = await utxo.stub.ListUtxos(utxo_pb2.ListUtxosRequest(max_satoshis=SUPPLY), metadata=PUBLISHER)
    assert [u.satoshis for u in listed.utxos] == [5000]


@pytest.mark.parametrize("duration", [Duration(seconds=INT64_MAX), Duration(seconds=10, nanos=-5)])
async def test_lease_durations_that_overflow_are_lease_duration_invalid(
    utxo: UtxoUnderTest, db: asyncpg.Connection, duration: Duration
) -> None:
    await seed(db, [1000])
    before = await pool_rows(db)
    await expect_rpc_error(
        utxo.stub.LeaseUtxos(lease_request("l-1", count=1, lease_duration=duration), metadata=PUBLISHER),
        grpc.StatusCode.INVALID_ARGUMENT,
        "LEASE_DURATION_INVALID",
    )
    lease = (await utxo.stub.LeaseUtxos(lease_request("l-2", count=1), metadata=PUBLISHER)).lease
    leased = await pool_rows(db)
    renew = utxo_pb2.RenewLeaseRequest(
        request_id="r-1", lease_id=lease.lease_id, fencing_token=lease.fencing_token, lease_duration=duration
    )
    await expect_rpc_error(
        utxo.stub.RenewLease(renew, metadata=PUBLISHER), grpc.StatusCode.INVALID_ARGUMENT, "LEASE_DURATION_INVALID"
    )
    assert await pool_rows(db) == leased != before


async def test_nul_bytes_in_lease_ids_and_holder_are_refused(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    outpoints = await seed(db, [1000])
    before = await pool_rows(db)
    bad = "lease\x00id"
    calls: list[Awaitable[Any]] = [
        utxo.stub.RenewLease(utxo_pb2.RenewLeaseRequest(request_id="n-1", lease_id=bad), metadata=PUBLISHER),
        utxo.stub.ReleaseLease(
            utxo_pb2.ReleaseLeaseRequest(request_id="n-2", lease_id=bad, outpoints=outpoints), metadata=PUBLISHER
        ),
        utxo.stub.ReportConflict(
            utxo_pb2.ReportConflictRequest(request_id="n-3", lease_id=bad, outpoints=outpoints), metadata=PUBLISHER
        ),
        utxo.stub.CommitSpend(utxo_pb2.CommitSpendRequest(request_id="n-4", lease_id=bad), metadata=PUBLISHER),
    ]
    for call in calls:
        await expect_rpc_error(call, grpc.StatusCode.INVALID_ARGUMENT, "LEASE_ID_INVALID")
    await expect_rpc_error(
        utxo.stub.LeaseUtxos(lease_request("n-5", count=1, holder="worker\x00"), metadata=PUBLISHER),
        grpc.StatusCode.INVALID_ARGUMENT,
        "HOLDER_INVALID",
    )
    assert await pool_rows(db) == before


@pytest.mark.parametrize("value", [-1, 99, 2147483647])
async def test_unknown_enum_values_are_refused(utxo: UtxoUnderTest, db: asyncpg.Connection, value: int) -> None:
    await seed(db, [1000])
    before = await pool_rows(db)
    await expect_rpc_error(
        utxo.stub.LeaseUtxos(lease_request("e-1", count=1, strategy=value), metadata=PUBLISHER),
        grpc.StatusCode.INVALID_ARGUMENT,
        "STRATEGY_INVALID",
    )
    await expect_rpc_error(
        utxo.stub.ListUtxos(utxo_pb2.ListUtxosRequest(statuses=[value]), metadata=PUBLISHER),  # type: ignore[list-item]
        grpc.StatusCode.INVALID_ARGUMENT,
        "STATUSES_INVALID",
    )
    assert await pool_rows(db) == before
