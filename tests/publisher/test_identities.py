"""RegisterIdentity, RevokeIdentity, ListIdentities, and who may call what."""

from __future__ import annotations

import grpc
from proofline.publisher.v1 import publisher_pb2

from services.publisher.domain.models import Actor
from tests.harness.grpc_errors import expect_rpc_error
from tests.publisher.conftest import (
    ADMIN,
    CLIENT,
    STRANGER,
    WALLET,
    IdentityKey,
    PublisherUnderTest,
    publish,
    register,
)


def _register(
    key: IdentityKey, request_id: str = "r1", label: str = "k", owner_ref: str = ""
) -> publisher_pb2.RegisterIdentityRequest:
    return publisher_pb2.RegisterIdentityRequest(
        request_id=request_id, pubkey=key.pubkey, label=label, owner_ref=owner_ref
    )


async def test_register_returns_the_active_identity(publisher: PublisherUnderTest) -> None:
    key = IdentityKey.generate()
    response = await publisher.stub.RegisterIdentity(
        _register(key, label="alice's phone", owner_ref="acct-1"), metadata=WALLET, timeout=5
    )
    identity = response.identity
    assert identity.pubkey == key.pubkey
    assert identity.label == "alice's phone" and identity.owner_ref == "acct-1"
    assert identity.status == publisher_pb2.IDENTITY_STATUS_ACTIVE
    assert identity.registered_by == "wallet"
    assert identity.create_time.seconds > 0 and not identity.HasField("revoke_time")


async def test_register_is_idempotent_on_request_id_and_refuses_a_second_registration(
    publisher: PublisherUnderTest,
) -> None:
    key = IdentityKey.generate()
    first = await publisher.stub.RegisterIdentity(_register(key), metadata=WALLET, timeout=5)
    again = await publisher.stub.RegisterIdentity(_register(key), metadata=WALLET, timeout=5)
    assert again.identity == first.identity
    await expect_rpc_error(
        publisher.stub.RegisterIdentity(_register(key, request_id="r2"), metadata=WALLET, timeout=5),
        grpc.StatusCode.ALREADY_EXISTS,
        "IDENTITY_ALREADY_REGISTERED",
    )
    await expect_rpc_error(
        publisher.stub.RegisterIdentity(_register(key, label="other"), metadata=WALLET, timeout=5),
        grpc.StatusCode.FAILED_PRECONDITION,
        "REQUEST_ID_REUSED",
    )


async def test_register_validates_its_fields(publisher: PublisherUnderTest) -> None:
    key = IdentityKey.generate()
    for pubkey in [b"", key.pubkey[:32], b"\x04" + key.pubkey[1:], b"\x03" + b"\xff" * 32]:
        await expect_rpc_error(
            publisher.stub.RegisterIdentity(
                publisher_pb2.RegisterIdentityRequest(request_id="r", pubkey=pubkey, label="k"), metadata=WALLET
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "PUBKEY_INVALID",
        )
    for label in ["", "x" * 129]:
        await expect_rpc_error(
            publisher.stub.RegisterIdentity(_register(key, label=label), metadata=WALLET),
            grpc.StatusCode.INVALID_ARGUMENT,
            "LABEL_INVALID",
        )
    await expect_rpc_error(
        publisher.stub.RegisterIdentity(_register(key, owner_ref="o" * 129), metadata=WALLET),
        grpc.StatusCode.INVALID_ARGUMENT,
        "OWNER_REF_INVALID",
    )
    await expect_rpc_error(
        publisher.stub.RegisterIdentity(_register(key, request_id=""), metadata=WALLET),
        grpc.StatusCode.INVALID_ARGUMENT,
        "REQUEST_ID_INVALID",
    )


async def test_revocation_is_final_and_idempotent(publisher: PublisherUnderTest) -> None:
    key = await register(publisher)
    revoke = publisher_pb2.RevokeIdentityRequest(request_id="rv1", pubkey=key.pubkey, reason="device lost")
    response = await publisher.stub.RevokeIdentity(revoke, metadata=WALLET, timeout=5)
    assert response.identity.status == publisher_pb2.IDENTITY_STATUS_REVOKED
    assert response.identity.revoke_reason == "device lost" and response.identity.HasField("revoke_time")
    again = await publisher.stub.RevokeIdentity(
        publisher_pb2.RevokeIdentityRequest(request_id="rv2", pubkey=key.pubkey, reason="again"),
        metadata=WALLET,
        timeout=5,
    )
    assert again.identity == response.identity
    await expect_rpc_error(
        publisher.stub.RegisterIdentity(_register(key, request_id="back"), metadata=WALLET, timeout=5),
        grpc.StatusCode.FAILED_PRECONDITION,
        "IDENTITY_PREVIOUSLY_REVOKED",
    )
    await expect_rpc_error(
        publisher.stub.RevokeIdentity(
            publisher_pb2.RevokeIdentityRequest(request_id="rv3", pubkey=IdentityKey.generate().pubkey),
            metadata=WALLET,
        ),
        grpc.StatusCode.NOT_FOUND,
        "IDENTITY_NOT_FOUND",
    )


async def test_revocation_keeps_accepted_jobs_unless_asked_to_cancel_queued_ones(
    publisher: PublisherUnderTest,
) -> None:
    key = await register(publisher)
    queued = [await publish(publisher, key.intent()) for _ in range(3)]
    async with publisher.running.store.unit_of_work() as uow:
        [claimed] = await uow.claim_queued("worker-1", 1, 30, "batch-1", _actor())
    response = await publisher.stub.RevokeIdentity(
        publisher_pb2.RevokeIdentityRequest(
            request_id="b", pubkey=key.pubkey, reason="leaked", cancel_queued_jobs=True
        ),
        metadata=WALLET,
        timeout=5,
    )
    assert response.cancelled_jobs == 2
    statuses = {}
    for answer in queued:
        got = await publisher.stub.GetJob(publisher_pb2.GetJobRequest(job_id=answer.job.job_id), metadata=CLIENT)
        statuses[answer.job.job_id] = (got.job.status, got.job.error_reason)
    assert statuses.pop(claimed.job.job_id) == (publisher_pb2.JOB_STATUS_PROCESSING, "")
    assert set(statuses.values()) == {(publisher_pb2.JOB_STATUS_FAILED, "IDENTITY_REVOKED")}
    async with publisher.running.store.reader() as uow:
        events = await uow.job_events(next(iter(statuses)))
    assert [(e.to_status, e.actor, e.reason, e.request_id) for e in events][-1] == (
        "failed",
        "wallet",
        "IDENTITY_REVOKED",
        "b",
    )

    kept_key = await register(publisher)
    kept = await publish(publisher, kept_key.intent())
    await publisher.stub.RevokeIdentity(
        publisher_pb2.RevokeIdentityRequest(request_id="a", pubkey=kept_key.pubkey), metadata=WALLET, timeout=5
    )
    job = await publisher.stub.GetJob(publisher_pb2.GetJobRequest(job_id=kept.job.job_id), metadata=CLIENT, timeout=5)
    assert job.job.status == publisher_pb2.JOB_STATUS_QUEUED


async def test_list_identities_pages_oldest_first_with_filters(publisher: PublisherUnderTest) -> None:
    keys = [await register(publisher, owner_ref="acct-a" if i % 2 else "acct-b") for i in range(5)]
    await publisher.stub.RevokeIdentity(
        publisher_pb2.RevokeIdentityRequest(request_id="x", pubkey=keys[0].pubkey), metadata=WALLET, timeout=5
    )
    seen: list[bytes] = []
    token = ""
    while True:
        page = await publisher.stub.ListIdentities(
            publisher_pb2.ListIdentitiesRequest(page_size=2, page_token=token), metadata=WALLET, timeout=5
        )
        assert len(page.identities) <= 2
        seen += [i.pubkey for i in page.identities]
        token = page.next_page_token
        if not token:
            break
    assert seen == [k.pubkey for k in keys]
    active_a = await publisher.stub.ListIdentities(
        publisher_pb2.ListIdentitiesRequest(status=publisher_pb2.IDENTITY_STATUS_ACTIVE, owner_ref="acct-b"),
        metadata=ADMIN,
        timeout=5,
    )
    assert [i.pubkey for i in active_a.identities] == [keys[2].pubkey, keys[4].pubkey]
    first = await publisher.stub.ListIdentities(
        publisher_pb2.ListIdentitiesRequest(page_size=1), metadata=WALLET, timeout=5
    )
    await expect_rpc_error(
        publisher.stub.ListIdentities(
            publisher_pb2.ListIdentitiesRequest(page_size=1, owner_ref="acct-a", page_token=first.next_page_token),
            metadata=WALLET,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "PAGE_TOKEN_INVALID",
    )
    await expect_rpc_error(
        publisher.stub.ListIdentities(publisher_pb2.ListIdentitiesRequest(page_token="garbage!"), metadata=WALLET),
        grpc.StatusCode.INVALID_ARGUMENT,
        "PAGE_TOKEN_INVALID",
    )


async def test_roles(publisher: PublisherUnderTest) -> None:
    key = IdentityKey.generate()
    for metadata in (CLIENT, STRANGER):
        await expect_rpc_error(
            publisher.stub.RegisterIdentity(_register(key), metadata=metadata),
            grpc.StatusCode.PERMISSION_DENIED,
            "ROLE_REQUIRED",
        )
        await expect_rpc_error(
            publisher.stub.RevokeIdentity(
                publisher_pb2.RevokeIdentityRequest(request_id="r", pubkey=key.pubkey), metadata=metadata
            ),
            grpc.StatusCode.PERMISSION_DENIED,
            "ROLE_REQUIRED",
        )
        await expect_rpc_error(
            publisher.stub.ListIdentities(publisher_pb2.ListIdentitiesRequest(), metadata=metadata),
            grpc.StatusCode.PERMISSION_DENIED,
            "ROLE_REQUIRED",
        )
    await expect_rpc_error(publisher.stub.RegisterIdentity(_register(key)), grpc.StatusCode.UNAUTHENTICATED)
    await publisher.stub.RegisterIdentity(_register(key), metadata=ADMIN, timeout=5)
    # Publishing needs `publish` (or admin); the wallet (registrar) may read jobs but not publish.
    for metadata in (WALLET, STRANGER):
        await expect_rpc_error(
            publisher.stub.Publish(
                publisher_pb2.PublishRequest(request_id="p", intent=key.intent()), metadata=metadata
            ),
            grpc.StatusCode.PERMISSION_DENIED,
            "ROLE_REQUIRED",
        )
        await expect_rpc_error(
            publisher.stub.PublishBatch(
                publisher_pb2.PublishBatchRequest(request_id="p", intents=[key.intent()]), metadata=metadata
            ),
            grpc.StatusCode.PERMISSION_DENIED,
            "ROLE_REQUIRED",
        )
    job = (
        await publisher.stub.Publish(
            publisher_pb2.PublishRequest(request_id="p", intent=key.intent()), metadata=ADMIN, timeout=5
        )
    ).job
    for metadata in (WALLET, CLIENT, ADMIN):
        got = await publisher.stub.GetJob(publisher_pb2.GetJobRequest(job_id=job.job_id), metadata=metadata)
        assert got.job.job_id == job.job_id
        listed = await publisher.stub.ListJobs(publisher_pb2.ListJobsRequest(), metadata=metadata)
        assert [j.job_id for j in listed.jobs] == [job.job_id]
    await expect_rpc_error(
        publisher.stub.GetJob(publisher_pb2.GetJobRequest(job_id=job.job_id), metadata=STRANGER),
        grpc.StatusCode.PERMISSION_DENIED,
        "ROLE_REQUIRED",
    )
    await expect_rpc_error(
        publisher.stub.ListJobs(publisher_pb2.ListJobsRequest(), metadata=STRANGER),
        grpc.StatusCode.PERMISSION_DENIED,
        "ROLE_REQUIRED",
    )
    watch = publisher.stub.WatchJob(publisher_pb2.WatchJobRequest(job_id=job.job_id), metadata=STRANGER, timeout=5)
    await expect_rpc_error(watch.read(), grpc.StatusCode.PERMISSION_DENIED, "ROLE_REQUIRED")


def _actor() -> Actor:
    return Actor("test-worker", "claim-1")
