"""Sign: batched blind signing of 32-byte digests, all or nothing."""

from __future__ import annotations

import os

import asyncpg
import grpc
import orjson
from bsv import PublicKey
from proofline.signer.v1 import signer_pb2

from proofline_kit.idempotency import request_fingerprint
from services.signer_gateway.domain.ecdsa import is_low_s
from tests.harness.fake_kms import FakeKms
from tests.harness.grpc_errors import expect_rpc_error
from tests.signer_gateway.conftest import ADMIN, PUBLISHER, STRANGER, SignerUnderTest, create_key


async def audit_rows(signer: SignerUnderTest) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(signer.env["DATABASE_URL"])
    try:
        return list(await conn.fetch("SELECT * FROM signer.signing_audit ORDER BY id"))
    finally:
        await conn.close()


def sign_request(request_id: str, *items: tuple[str, bytes]) -> signer_pb2.SignRequest:
    return signer_pb2.SignRequest(
        request_id=request_id, items=[signer_pb2.SignItem(key_id=k, digest=d) for k, d in items]
    )


async def test_sign_batch_returns_verifiable_low_s_signatures_in_order(signer: SignerUnderTest) -> None:
    one = await create_key(signer, "publish-1")
    two = await create_key(signer, "publish-2")
    items = [("publish-1" if i % 2 else "publish-2", os.urandom(32)) for i in range(20)]
    response = await signer.stub.Sign(sign_request("s1", *items), metadata=PUBLISHER)
    assert len(response.signatures) == 20
    publics = {"publish-1": one.public_key, "publish-2": two.public_key}
    for (key_id, digest), signature in zip(items, response.signatures, strict=True):
        assert signature.key_id == key_id
        assert signature.public_key == publics[key_id]
        assert is_low_s(signature.signature_der)
        assert PublicKey(signature.public_key).verify(signature.signature_der, digest, hasher=None)
    rows = await audit_rows(signer)
    assert [(r["key_id"], bytes(r["digest"]), r["outcome"]) for r in rows] == [(k, d, "signed") for k, d in items]
    assert {r["caller_id"] for r in rows} == {"publisher"}


async def test_sign_replays_the_first_answer_for_a_request_id(signer: SignerUnderTest) -> None:
    await create_key(signer, "publish-1")
    request = sign_request("s1", ("publish-1", os.urandom(32)))
    first = await signer.stub.Sign(request, metadata=PUBLISHER)
    again = await signer.stub.Sign(request, metadata=PUBLISHER)
    assert again == first
    assert len(await audit_rows(signer)) == 1
    await expect_rpc_error(
        signer.stub.Sign(sign_request("s1", ("publish-1", os.urandom(32))), metadata=PUBLISHER),
        grpc.StatusCode.FAILED_PRECONDITION,
        "REQUEST_ID_REUSED",
    )


async def test_bad_batches_sign_nothing(signer: SignerUnderTest) -> None:
    await create_key(signer, "publish-1")
    good = ("publish-1", os.urandom(32))
    cases = [
        (sign_request("b1"), grpc.StatusCode.INVALID_ARGUMENT, "BATCH_EMPTY"),
        (
            sign_request("b2", good, ("publish-1", b"\x01" * 31)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "DIGEST_LENGTH_INVALID",
        ),
        (
            sign_request("b3", good, ("publish-1", b"\x01" * 33)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "DIGEST_LENGTH_INVALID",
        ),
        (
            sign_request("b4", good, ("publish-unknown", os.urandom(32))),
            grpc.StatusCode.NOT_FOUND,
            "KEY_NOT_FOUND",
        ),
        (sign_request("b5", *([good] * 1025)), grpc.StatusCode.INVALID_ARGUMENT, "BATCH_TOO_LARGE"),
        (sign_request("", good), grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_INVALID"),
    ]
    for request, code, reason in cases:
        await expect_rpc_error(signer.stub.Sign(request, metadata=PUBLISHER), code, reason)
    assert await audit_rows(signer) == []


async def test_acl_denies_keys_outside_the_callers_patterns(signer: SignerUnderTest) -> None:
    await create_key(signer, "publish-1")
    await create_key(signer, "wallet-1")
    await expect_rpc_error(
        signer.stub.Sign(
            sign_request("a1", ("publish-1", os.urandom(32)), ("wallet-1", os.urandom(32))),
            metadata=PUBLISHER,
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "KEY_ACCESS_DENIED",
    )
    await expect_rpc_error(
        signer.stub.Sign(sign_request("a2", ("publish-1", os.urandom(32))), metadata=STRANGER),
        grpc.StatusCode.PERMISSION_DENIED,
        "KEY_ACCESS_DENIED",
    )
    rows = await audit_rows(signer)
    assert [(r["caller_id"], r["key_id"], r["outcome"], r["reason"]) for r in rows] == [
        ("publisher", "wallet-1", "denied", "KEY_ACCESS_DENIED"),
        ("stranger", "publish-1", "denied", "KEY_ACCESS_DENIED"),
    ]
    admin = await signer.stub.Sign(sign_request("a3", ("wallet-1", os.urandom(32))), metadata=ADMIN)
    assert len(admin.signatures) == 1


async def test_keys_in_policy_mode_refuse_blind_signing(signer: SignerUnderTest) -> None:
    await create_key(signer, "publish-1", policy=signer_pb2.KeyPolicy(require_policy_mode=True))
    await expect_rpc_error(
        signer.stub.Sign(sign_request("p1", ("publish-1", os.urandom(32))), metadata=PUBLISHER),
        grpc.StatusCode.PERMISSION_DENIED,
        "POLICY_DENIED",
    )
    rows = await audit_rows(signer)
    assert [(r["outcome"], r["reason"]) for r in rows] == [("denied", "POLICY_DENIED")]


async def test_calls_without_a_valid_token_are_unauthenticated(signer: SignerUnderTest) -> None:
    await create_key(signer, "publish-1")
    for metadata in [(), (("authorization", "Bearer wrong-token-123"),), (("authorization", "Basic abc"),)]:
        await expect_rpc_error(
            signer.stub.Sign(sign_request("u1", ("publish-1", os.urandom(32))), metadata=metadata),
            grpc.StatusCode.UNAUTHENTICATED,
        )


async def test_external_kms_signatures_are_normalised_and_verified(signer: SignerUnderTest, fake_kms: FakeKms) -> None:
    fake_kms.add_key("publish-kms")
    key = await create_key(signer, "publish-kms", backend=signer_pb2.KEY_BACKEND_EXTERNAL_KMS)
    fake_kms.mode = "high_s"
    digest = os.urandom(32)
    response = await signer.stub.Sign(sign_request("k1", ("publish-kms", digest)), metadata=PUBLISHER)
    [signature] = response.signatures
    assert is_low_s(signature.signature_der)
    assert PublicKey(key.public_key).verify(signature.signature_der, digest, hasher=None)
    assert fake_kms.requests[-1] == [{"keyIdentifier": "publish-kms", "sighash": digest.hex()}]


async def test_external_kms_answers_that_fail_the_check_are_errors(signer: SignerUnderTest, fake_kms: FakeKms) -> None:
    fake_kms.add_key("publish-kms")
    await create_key(signer, "publish-kms", backend=signer_pb2.KEY_BACKEND_EXTERNAL_KMS)
    await create_key(signer, "publish-local")
    cases = [
        ("wrong_key", grpc.StatusCode.INTERNAL, "SIGNATURE_CHECK_FAILED"),
        ("wrong_pubkey", grpc.StatusCode.INTERNAL, "KMS_BAD_RESPONSE"),
        ("short", grpc.StatusCode.INTERNAL, "KMS_BAD_RESPONSE"),
        ("garbage", grpc.StatusCode.INTERNAL, "KMS_BAD_RESPONSE"),
    ]
    for index, (mode, code, reason) in enumerate(cases):
        fake_kms.mode = mode
        await expect_rpc_error(
            signer.stub.Sign(
                sign_request(f"m{index}", ("publish-local", os.urandom(32)), ("publish-kms", os.urandom(32))),
                metadata=PUBLISHER,
            ),
            code,
            reason,
        )
    assert [r["outcome"] for r in await audit_rows(signer)] == []


async def test_an_external_key_the_kms_does_not_know_is_refused_not_internal(signer: SignerUnderTest) -> None:
    request = signer_pb2.CreateKeyRequest(
        request_id="c-unknown", key_id="publish-nowhere", backend=signer_pb2.KEY_BACKEND_EXTERNAL_KMS
    )
    await expect_rpc_error(
        signer.stub.CreateKey(request, metadata=ADMIN), grpc.StatusCode.FAILED_PRECONDITION, "KMS_KEY_NOT_FOUND"
    )
    listed = await signer.stub.ListKeys(signer_pb2.ListKeysRequest(), metadata=ADMIN)
    assert [k.key_id for k in listed.keys] == []


async def test_external_kms_is_retried_on_5xx_then_gives_up(signer: SignerUnderTest, fake_kms: FakeKms) -> None:
    fake_kms.add_key("publish-kms")
    await create_key(signer, "publish-kms", backend=signer_pb2.KEY_BACKEND_EXTERNAL_KMS)
    calls_before = len(fake_kms.requests)
    fake_kms.failures_before_success = 2
    response = await signer.stub.Sign(sign_request("r1", ("publish-kms", os.urandom(32))), metadata=PUBLISHER)
    assert len(response.signatures) == 1
    assert len(fake_kms.requests) == calls_before + 3
    fake_kms.failures_before_success = 10
    await expect_rpc_error(
        signer.stub.Sign(sign_request("r2", ("publish-kms", os.urandom(32))), metadata=PUBLISHER),
        grpc.StatusCode.UNAVAILABLE,
        "KMS_UNAVAILABLE",
    )


async def test_sign_replays_answers_recorded_in_the_earlier_json_form(signer: SignerUnderTest) -> None:
    one = await create_key(signer, "publish-1")
    two = await create_key(signer, "publish-2")
    items = [("publish-1", os.urandom(32)), ("publish-2", os.urandom(32)), ("publish-1", os.urandom(32))]
    fresh = await signer.stub.Sign(sign_request("new-form", *items), metadata=PUBLISHER)
    assert await signer.stub.Sign(sign_request("new-form", *items), metadata=PUBLISHER) == fresh
    legacy = orjson.dumps([[s.key_id, s.signature_der.hex(), s.public_key.hex()] for s in fresh.signatures])
    conn = await asyncpg.connect(signer.env["DATABASE_URL"])
    try:
        await conn.execute(
            """INSERT INTO signer.idempotency_keys (caller_id, method, request_id, request_hash, response)
               VALUES ('publisher', 'Sign', 'old-form', $1, $2)""",
            request_fingerprint("Sign", *((k, d.hex()) for k, d in items)),
            legacy,
        )
    finally:
        await conn.close()
    replayed = await signer.stub.Sign(sign_request("old-form", *items), metadata=PUBLISHER)
    assert list(replayed.signatures) == list(fresh.signatures)
    assert {s.public_key for s in replayed.signatures} == {one.public_key, two.public_key}
    assert len(await audit_rows(signer)) == 3
