"""PublishBatch: one answer per intent, batch-level refusals, capacity."""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
from proofline.publisher.v1 import publisher_pb2

from tests.harness.grpc_errors import expect_rpc_error
from tests.publisher.conftest import (
    CLIENT,
    WALLET,
    IdentityKey,
    PublisherUnderTest,
    high_s,
    new_nonce,
    publish,
    publisher_env,
    register,
    retry_after_ms,
    start_publisher_under_test,
    stop_publisher_under_test,
)


async def _batch(
    publisher: PublisherUnderTest, intents: list[publisher_pb2.SignedIntent], request_id: str | None = None
) -> list[publisher_pb2.PublishResult]:
    response = await publisher.stub.PublishBatch(
        publisher_pb2.PublishBatchRequest(request_id=request_id or uuid.uuid4().hex, intents=intents),
        metadata=CLIENT,
        timeout=10,
    )
    return list(response.results)


def _reason(result: publisher_pb2.PublishResult) -> str:
    return result.error.reason if result.WhichOneof("outcome") == "error" else "OK"


async def test_a_batch_answers_each_intent_in_order(publisher: PublisherUnderTest) -> None:
    key = await register(publisher)
    revoked = await register(publisher)
    await publisher.stub.RevokeIdentity(
        publisher_pb2.RevokeIdentityRequest(request_id="rv", pubkey=revoked.pubkey), metadata=WALLET, timeout=5
    )
    earlier_intent = key.intent()
    earlier = await publish(publisher, earlier_intent)
    now = int(time.time())
    good = key.intent()
    nonce = new_nonce()
    flipped = key.intent()
    intents = [
        good,
        IdentityKey.generate().intent(),
        revoked.intent(),
        publisher_pb2.SignedIntent(
            signed_payload=flipped.signed_payload, signature=high_s(flipped.signature), pubkey=key.pubkey
        ),
        key.intent(iat=now - 900, exp=now - 300),
        earlier_intent,
        key.intent(nonce=nonce),
        key.intent(nonce=nonce),
        good,
        key.intent(b'{"not":"canonical" }'),
    ]
    before = await publisher.stored()
    results = await _batch(publisher, intents)
    assert [_reason(r) for r in results] == [
        "OK",
        "IDENTITY_UNKNOWN",
        "IDENTITY_REVOKED",
        "SIGNATURE_HIGH_S",
        "INTENT_EXPIRED",
        "OK",
        "OK",
        "NONCE_REPLAYED",
        "OK",
        "PAYLOAD_MALFORMED",
    ]
    assert [r.deduplicated for r in results] == [False, False, False, False, False, True, False, False, True, False]
    assert results[5].job.job_id == earlier.job.job_id
    assert results[8].job.job_id == results[0].job.job_id
    assert results[0].job.status == publisher_pb2.JOB_STATUS_QUEUED
    expired = results[4].error
    assert expired.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert expired.domain == "proofline.publisher" and "expiredAt" in expired.metadata
    high = results[3].error
    assert high.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert [(v.field, v.reason) for v in high.field_violations] == [("signature", "SIGNATURE_HIGH_S")]
    # Two new jobs (the rest were refused or deduplicated), each with its creation audit row.
    assert await publisher.stored() == (before[0] + 2, before[1] + 2, before[2] + 1)


async def test_a_batch_is_idempotent_on_request_id(publisher: PublisherUnderTest) -> None:
    key = await register(publisher)
    intents = [key.intent(), IdentityKey.generate().intent(), key.intent()]
    first = await _batch(publisher, intents, request_id="batch-1")
    stored = await publisher.stored()
    again = await _batch(publisher, intents, request_id="batch-1")
    assert [_reason(r) for r in again] == [_reason(r) for r in first] == ["OK", "IDENTITY_UNKNOWN", "OK"]
    assert [r.job.job_id for r in again] == [r.job.job_id for r in first]
    assert again[1].error == first[1].error
    assert await publisher.stored() == stored
    await expect_rpc_error(
        publisher.stub.PublishBatch(
            publisher_pb2.PublishBatchRequest(request_id="batch-1", intents=intents[:2]), metadata=CLIENT
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "REQUEST_ID_REUSED",
    )


async def test_batch_level_refusals_store_nothing(publisher: PublisherUnderTest) -> None:
    key = await register(publisher)
    await expect_rpc_error(
        publisher.stub.PublishBatch(publisher_pb2.PublishBatchRequest(request_id="b", intents=[]), metadata=CLIENT),
        grpc.StatusCode.INVALID_ARGUMENT,
        "BATCH_EMPTY",
    )
    intent = key.intent()
    await expect_rpc_error(
        publisher.stub.PublishBatch(
            publisher_pb2.PublishBatchRequest(request_id="b", intents=[intent] * 1001), metadata=CLIENT
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "BATCH_TOO_LARGE",
    )
    await expect_rpc_error(
        publisher.stub.PublishBatch(
            publisher_pb2.PublishBatchRequest(
                request_id="b", intents=[intent], wait_for=publisher_pb2.JOB_STATUS_FAILED
            ),
            metadata=CLIENT,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "WAIT_FOR_INVALID",
    )
    assert await publisher.stored() == (0, 0, 0)


async def test_a_full_batch_of_1000_is_accepted(publisher: PublisherUnderTest) -> None:
    keys = [await register(publisher) for _ in range(4)]
    intents = [keys[i % 4].intent() for i in range(1000)]
    started = time.monotonic()
    results = await _batch(publisher, intents)
    elapsed = time.monotonic() - started
    assert all(r.WhichOneof("outcome") == "job" for r in results)
    assert len({r.job.job_id for r in results}) == 1000
    assert (await publisher.stored())[:2] == (1000, 1000)
    assert elapsed < 10, f"1000 intents took {elapsed:.1f} s"


async def test_queue_full_refuses_the_whole_batch_and_single_publishes(database_url: str, redis_url: str) -> None:
    under_test = await start_publisher_under_test(
        publisher_env(database_url, redis_url, PUBLISHER_MAX_QUEUED_JOBS="3"), redis_url
    )
    try:
        key = await register(under_test)
        first = key.intent()
        await _batch(under_test, [first, key.intent()])
        stored = await under_test.stored()
        error = await expect_rpc_error(
            under_test.stub.PublishBatch(
                publisher_pb2.PublishBatchRequest(request_id="full", intents=[key.intent(), key.intent()]),
                metadata=CLIENT,
            ),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "QUEUE_FULL",
        )
        assert retry_after_ms(error) == 1000
        assert await under_test.stored() == stored
        await publish(under_test, key.intent())
        await expect_rpc_error(publish(under_test, key.intent()), grpc.StatusCode.RESOURCE_EXHAUSTED, "QUEUE_FULL")
        # Deduplication needs no room.
        [again] = await _batch(under_test, [first])
        assert again.deduplicated
    finally:
        await stop_publisher_under_test(under_test)


async def test_rate_limit_per_identity_key(database_url: str, redis_url: str) -> None:
    under_test = await start_publisher_under_test(
        publisher_env(database_url, redis_url, PUBLISHER_RATE_LIMIT_PER_KEY_PER_S="3"), redis_url
    )
    try:
        busy, quiet = await register(under_test), await register(under_test)
        # Start at the beginning of a one-second window so the batch falls into one window.
        await _sleep_to_next_second()
        results = await _batch(under_test, [busy.intent() for _ in range(5)] + [quiet.intent()])
        assert [_reason(r) for r in results] == ["OK", "OK", "OK", "RATE_LIMITED", "RATE_LIMITED", "OK"]
        assert results[3].error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        assert (await under_test.stored())[0] == 4
    finally:
        await stop_publisher_under_test(under_test)


async def _sleep_to_next_second() -> None:
    await asyncio.sleep(1.02 - time.time() % 1)
