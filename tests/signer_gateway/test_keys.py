"""CreateKey, GetPublicKey, ListKeys, SetKeyPolicy."""

from __future__ import annotations

import grpc
from bsv import Network, PublicKey
from proofline.common.v1 import common_pb2
from proofline.signer.v1 import signer_pb2

from tests.harness.fake_kms import FakeKms
from tests.harness.grpc_errors import expect_rpc_error
from tests.harness.transactions import p2pkh_script
from tests.signer_gateway.conftest import ADMIN, PUBLISHER, SignerUnderTest, create_key


async def test_create_key_returns_a_fresh_compressed_public_key(signer: SignerUnderTest) -> None:
    first = await create_key(signer, "publish-1")
    second = await create_key(signer, "publish-2")
    assert len(first.public_key) == 33 and first.public_key[0] in (2, 3)
    assert first.public_key != second.public_key
    assert first.backend == signer_pb2.KEY_BACKEND_LOCAL
    assert first.create_time.seconds > 0


async def test_create_key_is_idempotent_on_request_id(signer: SignerUnderTest) -> None:
    request = signer_pb2.CreateKeyRequest(request_id="same-1", key_id="publish-x")
    first = await signer.stub.CreateKey(request, metadata=ADMIN)
    again = await signer.stub.CreateKey(request, metadata=ADMIN)
    assert again.key.public_key == first.key.public_key
    await expect_rpc_error(
        signer.stub.CreateKey(signer_pb2.CreateKeyRequest(request_id="same-1", key_id="publish-y"), metadata=ADMIN),
        grpc.StatusCode.FAILED_PRECONDITION,
        "REQUEST_ID_REUSED",
    )


async def test_create_key_refuses_a_taken_key_id(signer: SignerUnderTest) -> None:
    await create_key(signer, "publish-1")
    await expect_rpc_error(
        signer.stub.CreateKey(signer_pb2.CreateKeyRequest(request_id="other", key_id="publish-1"), metadata=ADMIN),
        grpc.StatusCode.ALREADY_EXISTS,
        "KEY_EXISTS",
    )


async def test_only_admins_manage_keys(signer: SignerUnderTest) -> None:
    await expect_rpc_error(
        signer.stub.CreateKey(signer_pb2.CreateKeyRequest(request_id="r", key_id="publish-1"), metadata=PUBLISHER),
        grpc.StatusCode.PERMISSION_DENIED,
        "ADMIN_REQUIRED",
    )
    await create_key(signer, "publish-1")
    await expect_rpc_error(
        signer.stub.SetKeyPolicy(
            signer_pb2.SetKeyPolicyRequest(request_id="r", key_id="publish-1", policy=signer_pb2.KeyPolicy()),
            metadata=PUBLISHER,
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "ADMIN_REQUIRED",
    )


async def test_bad_key_ids_and_request_ids_are_invalid_arguments(signer: SignerUnderTest) -> None:
    for key_id in ["", "has space", "x" * 129, "slash/key"]:
        await expect_rpc_error(
            signer.stub.CreateKey(signer_pb2.CreateKeyRequest(request_id="r1", key_id=key_id), metadata=ADMIN),
            grpc.StatusCode.INVALID_ARGUMENT,
            "KEY_ID_INVALID",
        )
    await expect_rpc_error(
        signer.stub.CreateKey(signer_pb2.CreateKeyRequest(request_id="", key_id="publish-1"), metadata=ADMIN),
        grpc.StatusCode.INVALID_ARGUMENT,
        "REQUEST_ID_INVALID",
    )


async def test_get_public_key_gives_the_p2pkh_address_per_network(signer: SignerUnderTest) -> None:
    key = await create_key(signer, "publish-1")
    mainnet = await signer.stub.GetPublicKey(
        signer_pb2.GetPublicKeyRequest(key_id="publish-1", network=common_pb2.NETWORK_MAINNET),
        metadata=PUBLISHER,
    )
    default = await signer.stub.GetPublicKey(signer_pb2.GetPublicKeyRequest(key_id="publish-1"), metadata=PUBLISHER)
    public = PublicKey(key.public_key)
    assert mainnet.address == public.address(network=Network.MAINNET) and mainnet.address.startswith("1")
    assert default.network == common_pb2.NETWORK_TESTNET
    assert default.address == public.address(network=Network.TESTNET)
    assert mainnet.locking_script == p2pkh_script(key.public_key)
    assert mainnet.key.public_key == key.public_key


async def test_get_public_key_errors(signer: SignerUnderTest) -> None:
    await expect_rpc_error(
        signer.stub.GetPublicKey(signer_pb2.GetPublicKeyRequest(key_id="publish-missing"), metadata=PUBLISHER),
        grpc.StatusCode.NOT_FOUND,
        "KEY_NOT_FOUND",
    )
    await create_key(signer, "wallet-1")
    await expect_rpc_error(
        signer.stub.GetPublicKey(signer_pb2.GetPublicKeyRequest(key_id="wallet-1"), metadata=PUBLISHER),
        grpc.StatusCode.PERMISSION_DENIED,
        "KEY_ACCESS_DENIED",
    )


async def test_list_keys_pages_and_filters_by_acl(signer: SignerUnderTest) -> None:
    for name in ["publish-a", "publish-b", "publish-c", "wallet-a", "shared"]:
        await create_key(signer, name)
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await signer.stub.ListKeys(signer_pb2.ListKeysRequest(page_size=2, page_token=token), metadata=PUBLISHER)
        pages += 1
        seen.extend(k.key_id for k in page.keys)
        token = page.next_page_token
        if not token:
            break
    assert seen == ["publish-a", "publish-b", "publish-c", "shared"]
    assert pages >= 2
    everything = await signer.stub.ListKeys(signer_pb2.ListKeysRequest(), metadata=ADMIN)
    assert [k.key_id for k in everything.keys] == [
        "publish-a",
        "publish-b",
        "publish-c",
        "shared",
        "wallet-a",
    ]
    assert everything.next_page_token == ""
    await expect_rpc_error(
        signer.stub.ListKeys(signer_pb2.ListKeysRequest(page_token="!!not-a-token"), metadata=ADMIN),
        grpc.StatusCode.INVALID_ARGUMENT,
        "PAGE_TOKEN_INVALID",
    )
    await expect_rpc_error(
        signer.stub.ListKeys(signer_pb2.ListKeysRequest(page_size=-1), metadata=ADMIN),
        grpc.StatusCode.INVALID_ARGUMENT,
        "PAGE_SIZE_INVALID",
    )


async def test_set_key_policy_replaces_and_validates(signer: SignerUnderTest) -> None:
    await create_key(signer, "publish-1")
    destination = "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn"
    policy = signer_pb2.KeyPolicy(
        require_policy_mode=True,
        allowed_destinations=[destination],
        max_amount_per_tx_satoshis=1000,
        max_amount_per_day_satoshis=5000,
        max_fee_satoshis=200,
    )
    updated = await signer.stub.SetKeyPolicy(
        signer_pb2.SetKeyPolicyRequest(request_id="p1", key_id="publish-1", policy=policy), metadata=ADMIN
    )
    assert updated.key.policy == policy
    before = await signer.stub.ListKeys(signer_pb2.ListKeysRequest(), metadata=ADMIN)
    assert updated.key.update_time.ToDatetime() > updated.key.create_time.ToDatetime()  # trigger-maintained
    assert before.keys[0].update_time == updated.key.update_time
    fetched = await signer.stub.GetPublicKey(signer_pb2.GetPublicKeyRequest(key_id="publish-1"), metadata=ADMIN)
    assert fetched.key.policy == policy
    await expect_rpc_error(
        signer.stub.SetKeyPolicy(
            signer_pb2.SetKeyPolicyRequest(
                request_id="p2",
                key_id="publish-1",
                policy=signer_pb2.KeyPolicy(allowed_destinations=["nope"]),
            ),
            metadata=ADMIN,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "POLICY_INVALID",
    )
    await expect_rpc_error(
        signer.stub.SetKeyPolicy(
            signer_pb2.SetKeyPolicyRequest(
                request_id="p3", key_id="publish-1", policy=signer_pb2.KeyPolicy(max_fee_satoshis=-1)
            ),
            metadata=ADMIN,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "POLICY_INVALID",
    )
    await expect_rpc_error(
        signer.stub.SetKeyPolicy(
            signer_pb2.SetKeyPolicyRequest(request_id="p4", key_id="publish-none", policy=policy),
            metadata=ADMIN,
        ),
        grpc.StatusCode.NOT_FOUND,
        "KEY_NOT_FOUND",
    )


async def test_external_kms_key_is_registered_by_probing_the_kms(signer: SignerUnderTest, fake_kms: FakeKms) -> None:
    kms_key = fake_kms.add_key("publish-kms")
    key = await create_key(signer, "publish-kms", backend=signer_pb2.KEY_BACKEND_EXTERNAL_KMS)
    assert key.backend == signer_pb2.KEY_BACKEND_EXTERNAL_KMS
    assert key.public_key == kms_key.public_key().serialize()
    assert len(fake_kms.requests) == 1


async def test_external_kms_key_is_refused_when_the_kms_proves_nothing(
    signer: SignerUnderTest, fake_kms: FakeKms
) -> None:
    fake_kms.add_key("publish-kms")
    fake_kms.mode = "wrong_key"
    await expect_rpc_error(
        signer.stub.CreateKey(
            signer_pb2.CreateKeyRequest(
                request_id="k", key_id="publish-kms", backend=signer_pb2.KEY_BACKEND_EXTERNAL_KMS
            ),
            metadata=ADMIN,
        ),
        grpc.StatusCode.INTERNAL,
        "SIGNATURE_CHECK_FAILED",
    )
    listed = await signer.stub.ListKeys(signer_pb2.ListKeysRequest(), metadata=ADMIN)
    assert list(listed.keys) == []
