"""The requests a hostile run sent to the publisher, answered with a reason and changing nothing
(issue 12: classes 4, 5, 6 and 9 over the real server)."""

from __future__ import annotations

from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from proofline.publisher.v1 import publisher_pb2

from tests.harness.grpc_errors import expect_rpc_error
from tests.publisher.conftest import CLIENT, WALLET, PublisherUnderTest, register

BAD = grpc.StatusCode.INVALID_ARGUMENT


async def identities(publisher: PublisherUnderTest) -> list[tuple[object, ...]]:
    conn = await asyncpg.connect(publisher.database_url, server_settings={"search_path": "publisher"})
    try:
        return [tuple(r) for r in await conn.fetch("SELECT * FROM identities ORDER BY pubkey")]
    finally:
        await conn.close()


@pytest.mark.parametrize("wait_for", [-1, 99, 2147483647])
async def test_publish_with_an_unknown_wait_for_creates_no_job(publisher: PublisherUnderTest, wait_for: int) -> None:
    key = await register(publisher)
    request = publisher_pb2.PublishRequest(request_id="p-1", intent=key.intent(), wait_for=wait_for)  # type: ignore[arg-type]
    await expect_rpc_error(publisher.stub.Publish(request, metadata=CLIENT), BAD, "WAIT_FOR_INVALID")
    batch = publisher_pb2.PublishBatchRequest(request_id="p-2", intents=[key.intent()], wait_for=wait_for)  # type: ignore[arg-type]
    await expect_rpc_error(publisher.stub.PublishBatch(batch, metadata=CLIENT), BAD, "WAIT_FOR_INVALID")
    assert await publisher.stored() == (0, 0, 0)


@pytest.mark.parametrize(
    "stamp", [Timestamp(seconds=253_402_300_800), Timestamp(seconds=1, nanos=-1), Timestamp(seconds=1, nanos=10**9)]
)
async def test_list_jobs_with_a_time_out_of_range(publisher: PublisherUnderTest, stamp: Timestamp) -> None:
    request = publisher_pb2.ListJobsRequest(end_time=stamp)
    await expect_rpc_error(publisher.stub.ListJobs(request, metadata=CLIENT), BAD, "END_TIME_INVALID")


async def test_nul_bytes_in_job_ids_and_identity_strings(publisher: PublisherUnderTest) -> None:
    key = await register(publisher)
    before = await identities(publisher)
    await expect_rpc_error(
        publisher.stub.GetJob(publisher_pb2.GetJobRequest(job_id="job\x00"), metadata=CLIENT), BAD, "JOB_ID_INVALID"
    )
    watch = publisher.stub.WatchJob(publisher_pb2.WatchJobRequest(job_id="job\x00"), metadata=CLIENT)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for _ in watch:
            pass
    assert raised.value.code() == BAD
    cases: list[tuple[Any, str]] = [
        (publisher_pb2.RegisterIdentityRequest(request_id="i-1", pubkey=key.pubkey, label="a\x00"), "LABEL_INVALID"),
        (
            publisher_pb2.RegisterIdentityRequest(request_id="i-2", pubkey=key.pubkey, label="k", owner_ref="o\x00"),
            "OWNER_REF_INVALID",
        ),
    ]
    for request, reason in cases:
        await expect_rpc_error(publisher.stub.RegisterIdentity(request, metadata=WALLET), BAD, reason)
    revoke = publisher_pb2.RevokeIdentityRequest(request_id="i-3", pubkey=key.pubkey, reason="stolen\x00")
    await expect_rpc_error(publisher.stub.RevokeIdentity(revoke, metadata=WALLET), BAD, "REASON_INVALID")
    listing = publisher_pb2.ListIdentitiesRequest(owner_ref="o\x00")
    await expect_rpc_error(publisher.stub.ListIdentities(listing, metadata=WALLET), BAD, "OWNER_REF_INVALID")
    assert await identities(publisher) == before


async def call_raw(publisher: PublisherUnderTest, path: str, streaming: bool, data: bytes) -> None:
    if streaming:
        stream: Any = publisher.channel.unary_stream(path)
        async for _ in stream(data, metadata=CLIENT, timeout=5):
            pass
        return
    unary: Any = publisher.channel.unary_unary(path)
    await unary(data, metadata=CLIENT, timeout=5)


# An invalid tag and a length that runs past the end: no message type decodes either.
@pytest.mark.parametrize("data", [b"\xff\xff\xff\xff", b"\x0a\x05ab"])
async def test_undecodable_bytes_on_every_publisher_rpc(publisher: PublisherUnderTest, data: bytes) -> None:
    service = publisher_pb2.DESCRIPTOR.services_by_name["PublisherService"]
    for method in service.methods:
        path = f"/{service.full_name}/{method.name}"
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call_raw(publisher, path, method.server_streaming, data)
        assert (raised.value.code(), raised.value.details()) == (
            BAD,
            f"REQUEST_MALFORMED: the request bytes are not a {method.name} request",
        ), path
    assert await publisher.stored() == (0, 0, 0)
