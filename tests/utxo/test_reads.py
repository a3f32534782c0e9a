"""ListUtxos, GetPoolHealth, Prometheus metrics, and what the server adds (reflection, health)."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
from google.protobuf.duration_pb2 import Duration
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from prometheus_client import generate_latest
from proofline.utxo.v1 import utxo_pb2

from tests.harness.grpc_errors import expect_rpc_error
from tests.utxo.conftest import (
    OWNER,
    PUBLISHER,
    STRANGER,
    UtxoUnderTest,
    lease_request,
    random_txid,
    seed,
    start_utxo_under_test,
    stop_utxo_under_test,
    utxo_env,
)


async def test_list_filters_and_pages_in_creation_order(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    first = await seed(db, [100, 200, 300, 400, 500])
    await seed(db, [600], owner="other-key")
    await seed(db, [700], purpose="funding")
    lease = (await utxo.stub.LeaseUtxos(lease_request("r1", count=2), metadata=PUBLISHER)).lease
    everything = await utxo.stub.ListUtxos(utxo_pb2.ListUtxosRequest(), metadata=PUBLISHER)
    assert [u.satoshis for u in everything.utxos] == [100, 200, 300, 400, 500, 600, 700]
    assert everything.next_page_token == ""
    pages: list[int] = []
    token = ""
    while True:
        page = await utxo.stub.ListUtxos(
            utxo_pb2.ListUtxosRequest(page_size=2, page_token=token, owner_key_id=OWNER), metadata=PUBLISHER
        )
        pages.extend(u.satoshis for u in page.utxos)
        token = page.next_page_token
        if not token:
            break
    assert pages == [100, 200, 300, 400, 500, 700]
    reserved = await utxo.stub.ListUtxos(
        utxo_pb2.ListUtxosRequest(statuses=[utxo_pb2.UTXO_STATUS_RESERVED]), metadata=PUBLISHER
    )
    assert [u.lease_id for u in reserved.utxos] == [lease.lease_id] * 2
    bounded = await utxo.stub.ListUtxos(
        utxo_pb2.ListUtxosRequest(min_satoshis=200, max_satoshis=400, purpose=utxo_pb2.UTXO_PURPOSE_PUBLISH),
        metadata=PUBLISHER,
    )
    assert [u.satoshis for u in bounded.utxos] == [200, 300, 400]
    by_txid = await utxo.stub.ListUtxos(utxo_pb2.ListUtxosRequest(txid=first[0].txid), metadata=PUBLISHER)
    assert len(by_txid.utxos) == 5
    unknown_lease = await utxo.stub.ListUtxos(utxo_pb2.ListUtxosRequest(lease_id="nope"), metadata=PUBLISHER)
    assert list(unknown_lease.utxos) == []


async def test_list_refuses_bad_filters_and_foreign_tokens(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    await seed(db, [1, 2, 3])
    page = await utxo.stub.ListUtxos(utxo_pb2.ListUtxosRequest(page_size=1), metadata=PUBLISHER)
    await expect_rpc_error(
        utxo.stub.ListUtxos(
            utxo_pb2.ListUtxosRequest(page_size=1, page_token=page.next_page_token, min_satoshis=2),
            metadata=PUBLISHER,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "PAGE_TOKEN_INVALID",
    )
    for request, reason in [
        (utxo_pb2.ListUtxosRequest(page_token="garbage!"), "PAGE_TOKEN_INVALID"),
        (utxo_pb2.ListUtxosRequest(page_size=-1), "PAGE_SIZE_INVALID"),
        (utxo_pb2.ListUtxosRequest(txid="xyz"), "TXID_INVALID"),
        (utxo_pb2.ListUtxosRequest(min_satoshis=-1), "MIN_SATOSHIS_INVALID"),
        (utxo_pb2.ListUtxosRequest(statuses=[42]), "STATUSES_INVALID"),  # type: ignore[list-item]
        (utxo_pb2.ListUtxosRequest(purpose=42), "PURPOSE_INVALID"),  # type: ignore[arg-type]
    ]:
        await expect_rpc_error(
            utxo.stub.ListUtxos(request, metadata=PUBLISHER), grpc.StatusCode.INVALID_ARGUMENT, reason
        )
    await expect_rpc_error(
        utxo.stub.ListUtxos(utxo_pb2.ListUtxosRequest(), metadata=STRANGER),
        grpc.StatusCode.PERMISSION_DENIED,
        "ROLE_REQUIRED",
    )


async def test_health_counts_buckets_leases_and_runway(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    await seed(db, [1_000] * 4)
    await seed(db, [50_000], purpose="funding")
    await utxo.stub.LeaseUtxos(lease_request("r1", count=1), metadata=PUBLISHER)
    await utxo.stub.LeaseUtxos(lease_request("r2", count=1, lease_duration=Duration(seconds=1)), metadata=PUBLISHER)
    lease = (await utxo.stub.LeaseUtxos(lease_request("r3", count=1), metadata=PUBLISHER)).lease
    await utxo.stub.CommitSpend(
        utxo_pb2.CommitSpendRequest(
            request_id="c1",
            lease_id=lease.lease_id,
            fencing_token=lease.fencing_token,
            spends=[utxo_pb2.Spend(txid=random_txid(), inputs=[lease.utxos[0].outpoint])],
        ),
        metadata=PUBLISHER,
    )
    await asyncio.sleep(1.1)
    health = await utxo.stub.GetPoolHealth(utxo_pb2.GetPoolHealthRequest(), metadata=PUBLISHER)
    buckets = {(b.purpose, b.status): (b.count, b.satoshis) for b in health.buckets}
    assert buckets == {
        (utxo_pb2.UTXO_PURPOSE_PUBLISH, utxo_pb2.UTXO_STATUS_AVAILABLE): (1, 1_000),
        (utxo_pb2.UTXO_PURPOSE_PUBLISH, utxo_pb2.UTXO_STATUS_RESERVED): (2, 2_000),
        (utxo_pb2.UTXO_PURPOSE_PUBLISH, utxo_pb2.UTXO_STATUS_SPENT): (1, 1_000),
        (utxo_pb2.UTXO_PURPOSE_FUNDING, utxo_pb2.UTXO_STATUS_AVAILABLE): (1, 50_000),
    }
    assert health.leases.live_leases == 1 and health.leases.live_reserved_utxos == 1
    assert health.leases.expired_leases == 1 and health.leases.expired_reserved_utxos == 1
    assert health.leases.HasField("oldest_live_lease_create_time")
    runway = health.runway
    # Default: 1 sat/kB (no chain policy configured), 400-byte publish -> 1 sat each.
    assert (runway.fee_rate_satoshis_per_kb, runway.publish_tx_size_bytes, runway.publish_fee_satoshis) == (1, 400, 1)
    assert runway.ready_publishes == 1
    assert runway.funded_publishes == 3_000
    assert runway.funded_publishes_with_funding == 53_000
    assert runway.spends_last_hour == 1
    assert runway.estimated_remaining.seconds == 3_000 * 3600
    assert health.maintenance.low_water_utxos == 50 and health.maintenance.below_low_water
    assert health.chain.state == utxo_pb2.CHAIN_COMPARISON_STATE_NOT_REQUESTED
    only_funding = await utxo.stub.GetPoolHealth(
        utxo_pb2.GetPoolHealthRequest(purpose=utxo_pb2.UTXO_PURPOSE_FUNDING), metadata=PUBLISHER
    )
    assert [(b.purpose, b.count) for b in only_funding.buckets] == [(utxo_pb2.UTXO_PURPOSE_FUNDING, 1)]


async def test_metrics_export_the_pool_figures(database_url: str, redis_url: str, db: asyncpg.Connection) -> None:
    await seed(db, [1_000] * 3)
    under_test = await start_utxo_under_test(utxo_env(database_url, redis_url, UTXO_METRICS_REFRESH_MS="100"))
    try:
        await asyncio.sleep(0.4)
        text = generate_latest(under_test.running.metrics_registry).decode()
        assert 'proofline_utxo_pool_utxos{purpose="publish",status="available"} 3.0' in text
        assert 'proofline_utxo_pool_satoshis{purpose="publish",status="available"} 3000.0' in text
        assert "proofline_utxo_runway_funded_publishes 3000.0" in text
        assert "proofline_utxo_below_low_water 1.0" in text
    finally:
        await stop_utxo_under_test(under_test)


def _list_services(port: int) -> set[str]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        return set(ProtoReflectionDescriptorDatabase(channel).get_services())


async def test_reflection_and_health_are_open(utxo: UtxoUnderTest) -> None:
    services = await asyncio.to_thread(_list_services, utxo.running.port)
    assert {"proofline.utxo.v1.UtxoService", "grpc.health.v1.Health"} <= services
    health = health_pb2_grpc.HealthStub(utxo.channel)
    for name in ["", "proofline.utxo.v1.UtxoService"]:
        response = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
