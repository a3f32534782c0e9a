"""The wallet's identity side, forwarded to a real publisher: signer_gateway, utxo, the publisher (with
a funded publish pool on chainsim) and the wallet in process, real gRPC between them, one database
(each service its own schema) and Redis. Intents are made with the tools' signer
(proofline_tools.signed_intents). Nothing is mocked."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from proofline.publisher.v1 import publisher_pb2
from proofline.wallet.v1 import wallet_pb2

from proofline_tools.signed_intents import IdentityKey, intent_body
from tests.chain_clients.sim import SimControl
from tests.publisher_e2e.conftest import Suite as PublisherSuite
from tests.signer_gateway.conftest import stop_signer_under_test
from tests.utxo.conftest import stop_utxo_under_test
from tests.wallet.conftest import ADMIN, ADMIN_TOKEN, FRONTEND, STRANGER, WalletSuite, start_signer_and_pool

# The wallet's own token at the publisher: what the identity side needs there.
WALLET_AT_PUBLISHER = "wallet-at-publisher-01"
AUTH_TOKENS = (
    f"admin:admin:{ADMIN_TOKEN},frontend:wallet:frontend-token-0001,stranger:service:stranger-token-01,"
    f"walletsvc:registrar+publish:{WALLET_AT_PUBLISHER}"
)
QUEUED_OR_LATER = (
    publisher_pb2.JOB_STATUS_QUEUED,
    publisher_pb2.JOB_STATUS_PROCESSING,
    publisher_pb2.JOB_STATUS_SIGNED,
    publisher_pb2.JOB_STATUS_SENT,
)


@dataclass
class Stack:
    wallet: WalletSuite
    publisher: PublisherSuite

    @property
    def stub(self) -> Any:
        return self.wallet.stub

    async def start_wallet(self) -> None:
        assert self.publisher.publisher is not None
        await self.wallet.start_wallet(
            AUTH_TOKENS=AUTH_TOKENS,
            WALLET_PUBLISHER_ADDR=f"127.0.0.1:{self.publisher.publisher.port}",
            WALLET_PUBLISHER_TOKEN=WALLET_AT_PUBLISHER,
            WALLET_RPC_TIMEOUT_MS="2000",
        )

    async def account(self) -> str:
        return (await self.wallet.account()).account_id

    async def register(self, account_id: str, key: IdentityKey | None = None, label: str = "my key") -> IdentityKey:
        key = key or IdentityKey.generate()
        await self.stub.RegisterIdentity(register_request(account_id, key, label), metadata=FRONTEND, timeout=10)
        return key

    async def submit(self, account_id: str, intent: publisher_pb2.SignedIntent) -> wallet_pb2.SubmitIntentResponse:
        response: wallet_pb2.SubmitIntentResponse = await self.stub.SubmitIntent(
            wallet_pb2.SubmitIntentRequest(request_id=f"sub-{uuid.uuid4().hex}", account_id=account_id, intent=intent),
            metadata=FRONTEND,
            timeout=10,
        )
        return response

    async def publisher_jobs(self) -> list[publisher_pb2.Job]:
        listed = await self.publisher.stub.ListJobs(publisher_pb2.ListJobsRequest(page_size=1000), metadata=ADMIN)
        return list(listed.jobs)

    async def publisher_identities(self) -> list[publisher_pb2.Identity]:
        listed = await self.publisher.stub.ListIdentities(
            publisher_pb2.ListIdentitiesRequest(page_size=1000), metadata=ADMIN
        )
        return list(listed.identities)

    async def links(self) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.wallet.database_url, server_settings={"search_path": "wallet"})
        try:
            return list(await conn.fetch("SELECT * FROM identities ORDER BY seq"))
        finally:
            await conn.close()


def consent(key: IdentityKey, account_id: str, **fields: Any) -> publisher_pb2.SignedIntent:
    return key.intent(intent_body({"accountId": account_id, "type": "proofline.identity.register"}, **fields))


def register_request(
    account_id: str, key: IdentityKey, label: str = "my key", proof: publisher_pb2.SignedIntent | None = None
) -> wallet_pb2.RegisterIdentityRequest:
    return wallet_pb2.RegisterIdentityRequest(
        request_id=f"reg-{uuid.uuid4().hex}",
        account_id=account_id,
        pubkey=key.pubkey,
        label=label,
        proof=proof or consent(key, account_id),
    )


def record_intent(key: IdentityKey, note: str = "") -> publisher_pb2.SignedIntent:
    return key.intent(intent_body({"doc": f"sha256:{uuid.uuid4().hex}", "note": note}))


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    infos = [info for d in status.details if d.Unpack(info := error_details_pb2.ErrorInfo())]
    assert len(infos) == 1
    return infos[0]


async def refused(call: Any) -> tuple[grpc.StatusCode, str, str]:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    info = error_info(raised.value)
    return raised.value.code(), info.reason, info.domain


@pytest.fixture
async def stack(sim: SimControl, database_url: str, redis_url: str) -> AsyncIterator[Stack]:
    signer, utxo = await start_signer_and_pool(sim, database_url, redis_url, UTXO_MIN_CONFIRMATIONS="1")
    publisher = PublisherSuite(sim, signer, utxo, database_url, redis_url)
    wallet = WalletSuite(sim, signer, utxo, database_url, redis_url)
    try:
        await publisher.fund_pool(*([5_000] * 8))
        await publisher.start_publisher(
            AUTH_TOKENS=AUTH_TOKENS, PUBLISHER_UTXO_TOKEN=ADMIN_TOKEN, PUBLISHER_SIGNER_TOKEN=ADMIN_TOKEN
        )
        under_test = Stack(wallet, publisher)
        await under_test.start_wallet()
        yield under_test
    finally:
        await wallet.stop_wallet()
        await publisher.stop_publisher()
        await stop_utxo_under_test(utxo)
        await stop_signer_under_test(signer)


async def _next(stream: Any, timeout_s: float = 20.0) -> publisher_pb2.Job:
    message = await asyncio.wait_for(stream.read(), timeout_s)
    assert isinstance(message, wallet_pb2.WatchIntentJobResponse), message
    return message.job


async def test_register_submit_watch_to_confirmed_and_the_same_intent_is_the_same_job(stack: Stack) -> None:
    account = await stack.account()
    key = IdentityKey.generate()
    registered = await stack.stub.RegisterIdentity(register_request(account, key), metadata=FRONTEND, timeout=10)
    identity = registered.identity
    assert (identity.pubkey, identity.label, identity.owner_ref) == (key.pubkey, "my key", account)
    assert identity.status == publisher_pb2.IDENTITY_STATUS_ACTIVE and identity.registered_by == "walletsvc"
    listed = await stack.stub.ListIdentities(wallet_pb2.ListIdentitiesRequest(account_id=account), metadata=FRONTEND)
    assert [i.pubkey for i in listed.identities] == [key.pubkey]
    assert listed.identities[0] == identity
    # The same key for the same account again: unchanged, no second registration.
    again = await stack.stub.RegisterIdentity(register_request(account, key), metadata=FRONTEND, timeout=10)
    assert again.identity == identity

    intent = record_intent(key)
    first = await stack.submit(account, intent)
    assert first.job.status in QUEUED_OR_LATER and first.job.identity_pubkey == key.pubkey
    assert not first.deduplicated
    # The publisher's dedup passes through: the same intent is the same job.
    second = await stack.submit(account, intent)
    assert second.deduplicated and second.job.job_id == first.job.job_id
    assert len(await stack.publisher_jobs()) == 1

    got = await stack.stub.GetIntentJob(
        wallet_pb2.GetIntentJobRequest(account_id=account, job_id=first.job.job_id, view=publisher_pb2.JOB_VIEW_FULL),
        metadata=FRONTEND,
    )
    assert got.job.job_id == first.job.job_id and got.job.intent == intent

    stream = stack.stub.WatchIntentJob(
        wallet_pb2.WatchIntentJobRequest(account_id=account, job_id=first.job.job_id), metadata=FRONTEND, timeout=60
    )
    job = await _next(stream)
    while job.status != publisher_pb2.JOB_STATUS_SENT:
        assert job.status != publisher_pb2.JOB_STATUS_FAILED, job
        job = await _next(stream)
    [block] = await stack.publisher.mine()
    assert job.txid in block["txids"]
    while job.status != publisher_pb2.JOB_STATUS_CONFIRMED:
        job = await _next(stream)
    assert (job.block_hash, job.block_height) == (block["hash"], block["height"])
    assert await asyncio.wait_for(stream.read(), 5) == grpc.aio.EOF


async def test_a_bad_proof_is_refused_with_its_reason_and_nothing_is_stored(stack: Stack) -> None:
    account, other = await stack.account(), await stack.account()
    key, stranger = IdentityKey.generate(), IdentityKey.generate()
    good = consent(key, account)
    cases: list[tuple[publisher_pb2.SignedIntent | None, grpc.StatusCode, str]] = [
        (consent(key, other), grpc.StatusCode.INVALID_ARGUMENT, "PROOF_RECORD_MISMATCH"),
        (
            key.intent(intent_body({"accountId": account, "type": "proofline.publish"})),
            grpc.StatusCode.INVALID_ARGUMENT,
            "PROOF_RECORD_MISMATCH",
        ),
        (consent(stranger, account), grpc.StatusCode.INVALID_ARGUMENT, "PROOF_KEY_MISMATCH"),
        (
            publisher_pb2.SignedIntent(
                signed_payload=good.signed_payload, signature=stranger.sign(good.signed_payload), pubkey=key.pubkey
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "SIGNATURE_INVALID",
        ),
        (
            consent(key, account, issued_at=1_700_000_000, ttl_s=60),
            grpc.StatusCode.FAILED_PRECONDITION,
            "INTENT_EXPIRED",
        ),
        (
            publisher_pb2.SignedIntent(
                signed_payload=good.signed_payload + b" ",
                signature=key.sign(good.signed_payload + b" "),
                pubkey=key.pubkey,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "PAYLOAD_NOT_CANONICAL",
        ),
    ]
    for proof, code, reason in cases:
        request = register_request(account, key, proof=proof)
        assert await refused(stack.stub.RegisterIdentity(request, metadata=FRONTEND)) == (
            code,
            reason,
            "proofline.wallet",
        ), reason
    missing = wallet_pb2.RegisterIdentityRequest(
        request_id="reg-no-proof", account_id=account, pubkey=key.pubkey, label="x"
    )
    assert (await refused(stack.stub.RegisterIdentity(missing, metadata=FRONTEND)))[1] == "PROOF_INVALID"
    assert await stack.links() == []
    assert await stack.publisher_identities() == []


async def test_a_key_of_another_account_is_already_registered(stack: Stack) -> None:
    first, second = await stack.account(), await stack.account()
    key = await stack.register(first)
    assert await refused(stack.stub.RegisterIdentity(register_request(second, key), metadata=FRONTEND)) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "IDENTITY_ALREADY_REGISTERED",
        "proofline.wallet",
    )
    assert [(bytes(r["pubkey"]), r["account_id"], r["status"]) for r in await stack.links()] == [
        (key.pubkey, first, "active")
    ]
    assert len(await stack.publisher_identities()) == 1


async def test_an_intent_of_a_key_not_in_the_account_is_refused_and_not_forwarded(stack: Stack) -> None:
    mine, theirs = await stack.account(), await stack.account()
    their_key = await stack.register(theirs)
    unknown = IdentityKey.generate()
    for key in (their_key, unknown):
        request = wallet_pb2.SubmitIntentRequest(request_id="sub-x", account_id=mine, intent=record_intent(key))
        assert await refused(stack.stub.SubmitIntent(request, metadata=FRONTEND)) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "IDENTITY_NOT_IN_ACCOUNT",
            "proofline.wallet",
        )
    assert await stack.publisher_jobs() == []
    # An unknown account is the account's own error.
    request = wallet_pb2.SubmitIntentRequest(request_id="sub-y", account_id="acct_nope", intent=record_intent(unknown))
    assert (await refused(stack.stub.SubmitIntent(request, metadata=FRONTEND)))[1] == "ACCOUNT_NOT_FOUND"
    # Callers without the wallet role are refused before anything else.
    request = wallet_pb2.SubmitIntentRequest(request_id="sub-z", account_id=mine, intent=record_intent(unknown))
    assert (await refused(stack.stub.SubmitIntent(request, metadata=STRANGER)))[1] == "ROLE_REQUIRED"


async def test_a_batch_with_mixed_items_answers_each_in_order(stack: Stack) -> None:
    mine, theirs = await stack.account(), await stack.account()
    key = await stack.register(mine)
    their_key = await stack.register(theirs)
    ok_first, ok_last = record_intent(key, "first"), record_intent(key, "last")
    bad = record_intent(key, "bad")
    bad_signature = publisher_pb2.SignedIntent(
        signed_payload=bad.signed_payload, signature=their_key.sign(bad.signed_payload), pubkey=key.pubkey
    )
    intents = [ok_first, record_intent(their_key), bad_signature, ok_last, ok_first]
    response = await stack.stub.SubmitIntentBatch(
        wallet_pb2.SubmitIntentBatchRequest(request_id="batch-1", account_id=mine, intents=intents),
        metadata=FRONTEND,
        timeout=20,
    )
    results = response.results
    assert [r.WhichOneof("outcome") for r in results] == ["job", "error", "error", "job", "job"]
    assert (results[1].error.code, results[1].error.reason, results[1].error.domain) == (
        grpc.StatusCode.PERMISSION_DENIED.value[0],
        "IDENTITY_NOT_IN_ACCOUNT",
        "proofline.wallet",
    )
    assert (results[2].error.reason, results[2].error.domain) == ("SIGNATURE_INVALID", "proofline.publisher")
    assert results[4].deduplicated and results[4].job.job_id == results[0].job.job_id
    assert {j.job_id for j in await stack.publisher_jobs()} == {results[0].job.job_id, results[3].job.job_id}
    # A batch of only foreign keys forwards nothing.
    response = await stack.stub.SubmitIntentBatch(
        wallet_pb2.SubmitIntentBatchRequest(request_id="batch-2", account_id=mine, intents=[record_intent(their_key)]),
        metadata=FRONTEND,
    )
    assert [r.error.reason for r in response.results] == ["IDENTITY_NOT_IN_ACCOUNT"]
    assert len(await stack.publisher_jobs()) == 2


async def test_another_accounts_job_is_not_found_as_an_unknown_one(stack: Stack) -> None:
    mine, theirs = await stack.account(), await stack.account()
    await stack.register(mine)
    their_key = await stack.register(theirs)
    job = (await stack.submit(theirs, record_intent(their_key))).job
    theirs_answer = await refused(
        stack.stub.GetIntentJob(wallet_pb2.GetIntentJobRequest(account_id=mine, job_id=job.job_id), metadata=FRONTEND)
    )
    unknown_answer = await refused(
        stack.stub.GetIntentJob(wallet_pb2.GetIntentJobRequest(account_id=mine, job_id="job_nope"), metadata=FRONTEND)
    )
    assert theirs_answer == (grpc.StatusCode.NOT_FOUND, "JOB_NOT_FOUND", "proofline.publisher")
    assert unknown_answer == theirs_answer
    stream = stack.stub.WatchIntentJob(
        wallet_pb2.WatchIntentJobRequest(account_id=mine, job_id=job.job_id), metadata=FRONTEND, timeout=10
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stream.read()
    assert (raised.value.code(), error_info(raised.value).reason) == (grpc.StatusCode.NOT_FOUND, "JOB_NOT_FOUND")
    # The owner reads it.
    got = await stack.stub.GetIntentJob(
        wallet_pb2.GetIntentJobRequest(account_id=theirs, job_id=job.job_id), metadata=FRONTEND
    )
    assert got.job.job_id == job.job_id


async def test_revoke_then_submit_is_refused_with_the_publishers_reason(stack: Stack) -> None:
    account, other = await stack.account(), await stack.account()
    key = await stack.register(account)
    unlinked = wallet_pb2.RevokeIdentityRequest(request_id="rev-0", account_id=other, pubkey=key.pubkey)
    assert await refused(stack.stub.RevokeIdentity(unlinked, metadata=FRONTEND)) == (
        grpc.StatusCode.NOT_FOUND,
        "IDENTITY_NOT_FOUND",
        "proofline.wallet",
    )
    revoked = await stack.stub.RevokeIdentity(
        wallet_pb2.RevokeIdentityRequest(request_id="rev-1", account_id=account, pubkey=key.pubkey, reason="lost"),
        metadata=FRONTEND,
    )
    assert revoked.identity.status == publisher_pb2.IDENTITY_STATUS_REVOKED and revoked.identity.revoke_reason == "lost"
    [link] = await stack.links()
    assert (link["status"], link["revoke_reason"]) == ("revoked", "lost")
    request = wallet_pb2.SubmitIntentRequest(request_id="sub-r", account_id=account, intent=record_intent(key))
    assert await refused(stack.stub.SubmitIntent(request, metadata=FRONTEND)) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "IDENTITY_REVOKED",
        "proofline.publisher",
    )
    # Registering a revoked key again: the stored identity, unchanged (revocation is final).
    again = await stack.stub.RegisterIdentity(register_request(account, key), metadata=FRONTEND)
    assert again.identity.status == publisher_pb2.IDENTITY_STATUS_REVOKED


async def test_a_stopped_publisher_is_publisher_unavailable(stack: Stack) -> None:
    account = await stack.account()
    key = await stack.register(account)
    await stack.publisher.stop_publisher()
    unavailable = (grpc.StatusCode.UNAVAILABLE, "PUBLISHER_UNAVAILABLE", "proofline.wallet")
    request = wallet_pb2.SubmitIntentRequest(request_id="sub-u", account_id=account, intent=record_intent(key))
    assert await refused(stack.stub.SubmitIntent(request, metadata=FRONTEND, timeout=10)) == unavailable
    batch = wallet_pb2.SubmitIntentBatchRequest(request_id="b-u", account_id=account, intents=[record_intent(key)])
    assert await refused(stack.stub.SubmitIntentBatch(batch, metadata=FRONTEND, timeout=10)) == unavailable
    new_key = IdentityKey.generate()
    assert (
        await refused(stack.stub.RegisterIdentity(register_request(account, new_key), metadata=FRONTEND, timeout=10))
        == unavailable
    )
    # The pending claim of the new key was dropped again.
    assert [bytes(r["pubkey"]) for r in await stack.links()] == [key.pubkey]
