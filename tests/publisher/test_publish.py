"""Publish: the happy path, every refusal (with nothing stored), deduplication and idempotency."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from proofline.publisher.v1 import publisher_pb2

from proofline_kit.rpc.status import error_reason
from tests.harness.grpc_errors import expect_rpc_error
from tests.publisher.conftest import (
    CLIENT,
    WALLET,
    IdentityKey,
    PublisherUnderTest,
    canonical,
    error_metadata,
    high_s,
    new_nonce,
    publish,
    register,
)


async def test_publish_queues_a_job_at_once(publisher: PublisherUnderTest) -> None:
    key = await register(publisher)
    body = key.payload({"doc": "sha256:9f86d0", "n": 1})
    intent = key.intent(body)
    response = await publish(publisher, intent)
    job = response.job
    assert not response.deduplicated
    assert job.status == publisher_pb2.JOB_STATUS_QUEUED
    assert job.job_id.startswith("job_") and len(job.job_id) <= 64
    assert job.intent_digest == hashlib.sha256(intent.signed_payload).digest()
    assert job.identity_pubkey == key.pubkey
    assert job.nonce == body["nonce"]
    assert job.intent_expire_time.seconds == body["exp"]
    assert job.txid == "" and job.raw_tx == b"" and not job.HasField("intent")
    assert await publisher.stored() == (1, 1, 1)

    full = await publisher.stub.GetJob(
        publisher_pb2.GetJobRequest(job_id=job.job_id, view=publisher_pb2.JOB_VIEW_FULL), metadata=WALLET, timeout=5
    )
    assert full.job.intent == intent
    async with publisher.running.store.reader() as uow:
        events = await uow.job_events(job.job_id)
    assert [(e.from_status, e.to_status, e.actor, e.reason) for e in events] == [("", "queued", "client", "ACCEPTED")]


async def _refused(
    publisher: PublisherUnderTest,
    intent: publisher_pb2.SignedIntent,
    code: grpc.StatusCode,
    reason: str,
) -> grpc.aio.AioRpcError:
    before = await publisher.stored()
    error = await expect_rpc_error(publish(publisher, intent), code, reason)
    assert await publisher.stored() == before, "a refused intent must store nothing"
    return error


async def test_malformed_fields_are_refused(publisher: PublisherUnderTest) -> None:
    key = await register(publisher)
    good = key.intent()
    cases: list[tuple[publisher_pb2.SignedIntent, str]] = [
        (publisher_pb2.SignedIntent(signed_payload=good.signed_payload, signature=good.signature), "PUBKEY_INVALID"),
        (
            publisher_pb2.SignedIntent(
                signed_payload=good.signed_payload, signature=good.signature, pubkey=b"\x04" + key.pubkey[1:]
            ),
            "PUBKEY_INVALID",
        ),
        (
            publisher_pb2.SignedIntent(
                signed_payload=good.signed_payload, signature=good.signature, pubkey=b"\x02" + b"\xff" * 32
            ),
            "PUBKEY_INVALID",
        ),
        (
            publisher_pb2.SignedIntent(signed_payload=good.signed_payload, signature=b"", pubkey=key.pubkey),
            "SIGNATURE_MALFORMED",
        ),
        (
            publisher_pb2.SignedIntent(
                signed_payload=good.signed_payload, signature=good.signature + b"\x41", pubkey=key.pubkey
            ),
            "SIGNATURE_MALFORMED",
        ),
        (
            publisher_pb2.SignedIntent(
                signed_payload=good.signed_payload, signature=high_s(good.signature), pubkey=key.pubkey
            ),
            "SIGNATURE_HIGH_S",
        ),
    ]
    for intent, reason in cases:
        await _refused(publisher, intent, grpc.StatusCode.INVALID_ARGUMENT, reason)


async def test_a_payload_above_the_limit_is_refused(publisher: PublisherUnderTest) -> None:
    key = await register(publisher)
    big = key.payload({"blob": "x" * (64 * 1024)})
    await _refused(publisher, key.intent(big), grpc.StatusCode.INVALID_ARGUMENT, "PAYLOAD_TOO_LARGE")


async def test_a_signature_by_another_key_or_over_other_bytes_is_invalid(publisher: PublisherUnderTest) -> None:
    key = await register(publisher)
    other = await register(publisher)
    intent = key.intent()
    forged = publisher_pb2.SignedIntent(
        signed_payload=intent.signed_payload, signature=other.sign(intent.signed_payload), pubkey=key.pubkey
    )
    await _refused(publisher, forged, grpc.StatusCode.INVALID_ARGUMENT, "SIGNATURE_INVALID")
    altered = publisher_pb2.SignedIntent(
        signed_payload=intent.signed_payload.replace(b"sha256:", b"sha256:0"),
        signature=intent.signature,
        pubkey=key.pubkey,
    )
    await _refused(publisher, altered, grpc.StatusCode.INVALID_ARGUMENT, "SIGNATURE_INVALID")


async def test_unknown_and_revoked_keys_are_refused(publisher: PublisherUnderTest) -> None:
    stranger = IdentityKey.generate()
    await _refused(publisher, stranger.intent(), grpc.StatusCode.PERMISSION_DENIED, "IDENTITY_UNKNOWN")
    key = await register(publisher)
    await publisher.stub.RevokeIdentity(
        publisher_pb2.RevokeIdentityRequest(request_id="revoke-1", pubkey=key.pubkey, reason="leaked"),
        metadata=WALLET,
        timeout=5,
    )
    await _refused(publisher, key.intent(), grpc.StatusCode.PERMISSION_DENIED, "IDENTITY_REVOKED")


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xff\xfe{}",
        b"not json",
        b"[1,2]",
        b'{"exp":2,"iat":1,"nonce":"aaaaaaaaaaaaaaaa","record":{"a":1},"record":{"a":1}}',
        b'{"exp":NaN,"iat":1,"nonce":"aaaaaaaaaaaaaaaa","record":{"a":1}}',
        b'{"exp":1e400,"iat":1,"nonce":"aaaaaaaaaaaaaaaa","record":{"a":1}}',
        b'{"exp":2,"iat":1,"nonce":"aaaaaaaaaaaaaaaa","record":{"a":"\\ud800"}}',
    ],
)
async def test_payloads_that_are_not_i_json_are_malformed(publisher: PublisherUnderTest, payload: bytes) -> None:
    key = await register(publisher)
    await _refused(publisher, key.intent(payload), grpc.StatusCode.INVALID_ARGUMENT, "PAYLOAD_MALFORMED")


@pytest.mark.parametrize(
    ("change", "member"),
    [
        ({"extra": 1}, "extra"),
        ({"nonce": "short"}, "nonce"),
        ({"nonce": "has spaces in it!!"}, "nonce"),
        ({"nonce": 1234567890123456}, "nonce"),
        ({"iat": "1767225600"}, "iat"),
        ({"iat": 1.5}, "iat"),
        ({"exp": True}, "exp"),
        ({"record": "text"}, "record"),
        ({"record": [1, 2]}, "record"),
        ({"aud": 7}, "aud"),
    ],
)
async def test_a_wrong_envelope_is_malformed(
    publisher: PublisherUnderTest, change: dict[str, Any], member: str
) -> None:
    key = await register(publisher)
    body = key.payload()
    body.update(change)
    error = await _refused(publisher, key.intent(body), grpc.StatusCode.INVALID_ARGUMENT, "PAYLOAD_MALFORMED")
    assert member in (error.details() or "")


async def test_missing_members_and_exp_before_iat_are_malformed(publisher: PublisherUnderTest) -> None:
    key = await register(publisher)
    for member in ("nonce", "iat", "exp", "record"):
        body = key.payload()
        del body[member]
        await _refused(publisher, key.intent(body), grpc.StatusCode.INVALID_ARGUMENT, "PAYLOAD_MALFORMED")
    now = int(time.time())
    body = key.payload(iat=now, exp=now)
    await _refused(publisher, key.intent(body), grpc.StatusCode.INVALID_ARGUMENT, "PAYLOAD_MALFORMED")


@pytest.mark.parametrize(
    "render",
    [
        # Members out of order.
        lambda b: b"".join(
            [
                b'{"record":',
                canonical(b["record"]),
                b',"nonce":',
                canonical(b["nonce"]),
                b',"iat":',
                canonical(b["iat"]),
                b',"exp":',
                canonical(b["exp"]),
                b',"aud":"proofline-test"}',
            ]
        ),
        # Whitespace.
        lambda b: canonical(b).replace(b",", b", "),
        lambda b: canonical(b) + b"\n",
        # Numbers not in ECMAScript form.
        lambda b: canonical(b).replace(b'"iat":%d' % b["iat"], b'"iat":%d.0' % b["iat"]),
        lambda b: canonical(b).replace(b'"iat":%d' % b["iat"], b'"iat":%de0' % b["iat"]),
        # Escapes where JCS writes the character, and the other way round.
        lambda b: canonical(b).replace(b'"aud"', b'"\\u0061ud"'),
        lambda b: canonical(b).replace(b"sha256:", b"sha256\\/"),
    ],
)
async def test_non_canonical_bytes_are_refused(publisher: PublisherUnderTest, render: Any) -> None:
    key = await register(publisher)
    body = key.payload()
    payload = render(body)
    assert payload != canonical(body)
    await _refused(publisher, key.intent(payload), grpc.StatusCode.INVALID_ARGUMENT, "PAYLOAD_NOT_CANONICAL")


@pytest.mark.parametrize(
    "record",
    [
        {},
        # 17 levels of objects and arrays; the default limit is 16.
        {"deep": [{"level": [{"a": [{"b": [{"c": [{"d": [{"e": [{"f": [{"g": 1}]}]}]}]}]}]}]}]},
        {"": "empty name"},
    ],
)
async def test_a_record_failing_the_schema_is_refused(publisher: PublisherUnderTest, record: dict[str, Any]) -> None:
    key = await register(publisher)
    sixteen_levels: dict[str, Any] = {"leaf": 1}
    for _ in range(15):
        sixteen_levels = {"x": sixteen_levels}
    await publish(publisher, key.intent(key.payload(sixteen_levels)))
    await _refused(publisher, key.intent(key.payload(record)), grpc.StatusCode.INVALID_ARGUMENT, "RECORD_INVALID")


async def test_an_intent_for_another_audience_is_refused(publisher: PublisherUnderTest) -> None:
    key = await register(publisher)
    await _refused(
        publisher,
        key.intent(key.payload(aud="other-deployment")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "AUDIENCE_MISMATCH",
    )
    # aud is optional.
    await publish(publisher, key.intent(key.payload(aud=None)))


async def test_the_time_window_is_enforced_with_clock_skew(publisher: PublisherUnderTest) -> None:
    key = await register(publisher)
    now = int(time.time())
    await _refused(
        publisher, key.intent(iat=now - 600, exp=now - 61), grpc.StatusCode.FAILED_PRECONDITION, "INTENT_EXPIRED"
    )
    await _refused(
        publisher, key.intent(iat=now + 120, exp=now + 600), grpc.StatusCode.FAILED_PRECONDITION, "INTENT_NOT_YET_VALID"
    )
    await _refused(
        publisher, key.intent(iat=now, exp=now + 3601), grpc.StatusCode.INVALID_ARGUMENT, "INTENT_TTL_TOO_LONG"
    )
    # Within the 60 s skew on both sides.
    await publish(publisher, key.intent(iat=now - 600, exp=now - 30))
    await publish(publisher, key.intent(iat=now + 30, exp=now + 600))


async def test_a_replayed_nonce_is_refused_by_redis_and_by_postgresql(publisher: PublisherUnderTest) -> None:
    key = await register(publisher)
    nonce = new_nonce()
    await publish(publisher, key.intent(nonce=nonce))
    assert any(b":nonce:" in k for k in await publisher.redis_keys())
    error = await _refused(publisher, key.intent(nonce=nonce), grpc.StatusCode.ALREADY_EXISTS, "NONCE_REPLAYED")
    assert error_metadata(error) == {"nonce": nonce}
    await publisher.forget_nonces()
    await _refused(publisher, key.intent(nonce=nonce), grpc.StatusCode.ALREADY_EXISTS, "NONCE_REPLAYED")
    # The nonce is per key.
    other = await register(publisher)
    await publish(publisher, other.intent(nonce=nonce))


async def test_the_same_intent_again_is_deduplicated_even_after_revocation_and_expiry(
    publisher: PublisherUnderTest,
) -> None:
    key = await register(publisher)
    now = int(time.time())
    intent = key.intent(iat=now - 30, exp=now + 2)
    first = await publish(publisher, intent)
    await publisher.stub.RevokeIdentity(
        publisher_pb2.RevokeIdentityRequest(request_id="rv", pubkey=key.pubkey), metadata=WALLET, timeout=5
    )
    again = await publish(publisher, intent)
    assert again.deduplicated and again.job.job_id == first.job.job_id
    assert await publisher.stored() == (1, 1, 2)


async def test_request_id_replays_the_first_answer_and_refuses_reuse(publisher: PublisherUnderTest) -> None:
    key = await register(publisher)
    intent = key.intent()
    first = await publish(publisher, intent, request_id="same-id")
    again = await publish(publisher, intent, request_id="same-id")
    assert again.job.job_id == first.job.job_id and not again.deduplicated
    assert await publisher.stored() == (1, 1, 1)
    await expect_rpc_error(
        publish(publisher, key.intent(), request_id="same-id"), grpc.StatusCode.FAILED_PRECONDITION, "REQUEST_ID_REUSED"
    )
    for bad in ["", "x" * 65, "bad id"]:
        await expect_rpc_error(
            publisher.stub.Publish(publisher_pb2.PublishRequest(request_id=bad, intent=intent), metadata=CLIENT),
            grpc.StatusCode.INVALID_ARGUMENT,
            "REQUEST_ID_INVALID",
        )


async def test_wait_for_returns_current_state_when_the_wait_runs_out(publisher: PublisherUnderTest) -> None:
    key = await register(publisher)
    started = time.monotonic()
    response = await publish(
        publisher,
        key.intent(),
        wait_for=publisher_pb2.JOB_STATUS_SENT,
        wait_timeout=Duration(nanos=300_000_000),
    )
    assert response.job.status == publisher_pb2.JOB_STATUS_QUEUED
    assert 0.25 <= time.monotonic() - started < 5
    await expect_rpc_error(
        publish(publisher, key.intent(), wait_for=publisher_pb2.JOB_STATUS_FAILED),
        grpc.StatusCode.INVALID_ARGUMENT,
        "WAIT_FOR_INVALID",
    )


async def test_wait_for_stops_before_the_call_deadline(publisher: PublisherUnderTest) -> None:
    key = await register(publisher)
    started = time.monotonic()
    response = await publisher.stub.Publish(
        publisher_pb2.PublishRequest(request_id="w1", intent=key.intent(), wait_for=publisher_pb2.JOB_STATUS_SENT),
        metadata=CLIENT,
        timeout=1.5,
    )
    assert response.job.status == publisher_pb2.JOB_STATUS_QUEUED
    assert time.monotonic() - started < 1.5


async def test_concurrent_copies_of_one_intent_make_one_job(publisher: PublisherUnderTest) -> None:
    key = await register(publisher)
    intent = key.intent()
    answers = await asyncio.gather(*(publish(publisher, intent) for _ in range(10)))
    assert len({a.job.job_id for a in answers}) == 1
    assert sorted(a.deduplicated for a in answers) == [False] + [True] * 9
    assert (await publisher.stored())[:2] == (1, 1)


async def test_concurrent_payloads_with_one_nonce_queue_exactly_one(publisher: PublisherUnderTest) -> None:
    key = await register(publisher)
    nonce = new_nonce()
    results = await asyncio.gather(
        *(publish(publisher, key.intent(nonce=nonce)) for _ in range(10)), return_exceptions=True
    )
    accepted = [r for r in results if isinstance(r, publisher_pb2.PublishResponse)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(accepted) == 1 and len(refused) == 9
    assert {error_reason(r) for r in refused} == {"NONCE_REPLAYED"}
    assert (await publisher.stored())[:2] == (1, 1)
