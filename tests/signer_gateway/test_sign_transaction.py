"""SignTransaction (policy mode) and interpreter checks of both signing paths."""

from __future__ import annotations

import grpc
import pytest
from bsv import Script, Transaction
from bsv.hash import hash256
from bsv.transaction_preimage import tx_preimages
from bsv.utils import encode_pushdata
from proofline.common.v1 import common_pb2
from proofline.signer.v1 import signer_pb2

from tests.harness.fake_kms import FakeKms
from tests.harness.grpc_errors import expect_rpc_error
from tests.harness.transactions import (
    address_script,
    data_script,
    interpreter_accepts,
    p2pkh_script,
    unsigned_transaction,
)
from tests.signer_gateway.conftest import ELSEWHERE, OUTSIDE, PUBLISHER, SignerUnderTest, create_key


def sign_tx_request(
    request_id: str, raw: bytes, spent: list[tuple[int, bytes]], keys: list[tuple[int, str]]
) -> signer_pb2.SignTransactionRequest:
    return signer_pb2.SignTransactionRequest(
        request_id=request_id,
        unsigned_tx=raw,
        spent_outputs=[common_pb2.SpentOutput(satoshis=s, locking_script=script) for s, script in spent],
        input_keys=[signer_pb2.InputKey(input_index=i, key_id=k) for i, k in keys],
    )


async def test_signed_transaction_passes_the_interpreter(signer: SignerUnderTest) -> None:
    one = await create_key(signer, "publish-1")
    two = await create_key(signer, "publish-2")
    spent = [(5_000, p2pkh_script(one.public_key)), (7_000, p2pkh_script(two.public_key))]
    outputs = [
        (0, data_script(b"proofline", b"record")),
        (3_000, address_script(OUTSIDE)),
        (8_800, p2pkh_script(one.public_key)),
    ]
    raw = unsigned_transaction(spent, outputs)
    response = await signer.stub.SignTransaction(
        sign_tx_request("t1", raw, spent, [(0, "publish-1"), (1, "publish-2")]), metadata=PUBLISHER
    )
    assert interpreter_accepts(response.signed_tx, spent)
    assert response.fee_satoshis == 200
    assert response.sent_satoshis == 3_000
    assert response.txid == Transaction.from_hex(response.signed_tx).txid()
    assert [s.key_id for s in response.signatures] == ["publish-1", "publish-2"]


async def test_interpreter_catches_a_tampered_signed_transaction(signer: SignerUnderTest) -> None:
    key = await create_key(signer, "publish-1")
    spent = [(5_000, p2pkh_script(key.public_key))]
    raw = unsigned_transaction(spent, [(4_900, address_script(OUTSIDE))])
    response = await signer.stub.SignTransaction(
        sign_tx_request("t1", raw, spent, [(0, "publish-1")]), metadata=PUBLISHER
    )
    tampered = Transaction.from_hex(response.signed_tx)
    tampered.outputs[0].satoshis = 4_901
    with pytest.raises(RuntimeError):
        interpreter_accepts(bytes(tampered.serialize()), spent)


async def test_transaction_assembled_from_sign_passes_the_interpreter(signer: SignerUnderTest) -> None:
    key = await create_key(signer, "publish-1")
    spent = [(5_000, p2pkh_script(key.public_key)), (1_000, p2pkh_script(key.public_key))]
    raw = unsigned_transaction(spent, [(5_500, address_script(OUTSIDE))])
    tx = Transaction.from_hex(raw)
    for tx_input, (sats, script) in zip(tx.inputs, spent, strict=True):
        tx_input.satoshis, tx_input.locking_script = sats, Script(script)
    digests = [hash256(p) for p in tx_preimages(tx.inputs, tx.outputs, tx.version, tx.locktime)]
    response = await signer.stub.Sign(
        signer_pb2.SignRequest(
            request_id="s1", items=[signer_pb2.SignItem(key_id="publish-1", digest=d) for d in digests]
        ),
        metadata=PUBLISHER,
    )
    for tx_input, signature in zip(tx.inputs, response.signatures, strict=True):
        tx_input.unlocking_script = Script(
            encode_pushdata(signature.signature_der + b"\x41") + encode_pushdata(signature.public_key)
        )
    assert interpreter_accepts(bytes(tx.serialize()), spent)


async def test_external_kms_key_signs_transactions_too(signer: SignerUnderTest, fake_kms: FakeKms) -> None:
    fake_kms.add_key("publish-kms")
    key = await create_key(signer, "publish-kms", backend=signer_pb2.KEY_BACKEND_EXTERNAL_KMS)
    local = await create_key(signer, "publish-local")
    fake_kms.mode = "high_s"
    spent = [(5_000, p2pkh_script(key.public_key)), (5_000, p2pkh_script(local.public_key))]
    raw = unsigned_transaction(spent, [(9_000, address_script(OUTSIDE))])
    response = await signer.stub.SignTransaction(
        sign_tx_request("t1", raw, spent, [(0, "publish-kms"), (1, "publish-local")]), metadata=PUBLISHER
    )
    assert interpreter_accepts(response.signed_tx, spent)


async def test_malformed_requests_sign_nothing(signer: SignerUnderTest) -> None:
    key = await create_key(signer, "publish-1")
    spent = [(5_000, p2pkh_script(key.public_key))]
    raw = unsigned_transaction(spent, [(4_000, address_script(OUTSIDE))])
    other = await create_key(signer, "publish-2")
    cases = [
        (sign_tx_request("m1", b"\x01\x02\x03", spent, [(0, "publish-1")]), "TRANSACTION_MALFORMED"),
        (sign_tx_request("m2", raw + b"\x00", spent, [(0, "publish-1")]), "TRANSACTION_MALFORMED"),
        (sign_tx_request("m3", raw, [*spent, *spent], [(0, "publish-1")]), "SPENT_OUTPUTS_MISMATCH"),
        (sign_tx_request("m4", raw, [], [(0, "publish-1")]), "SPENT_OUTPUTS_MISMATCH"),
        (sign_tx_request("m5", raw, spent, [(1, "publish-1")]), "INPUT_INDEX_INVALID"),
        (sign_tx_request("m6", raw, spent, [(0, "publish-1"), (0, "publish-1")]), "INPUT_INDEX_INVALID"),
        (sign_tx_request("m7", raw, spent, []), "INPUT_KEYS_EMPTY"),
        (sign_tx_request("m8", raw, spent, [(0, "publish-2")]), "INPUT_NOT_OWNED_BY_KEY"),
        (sign_tx_request("m9", raw, [(3_000, spent[0][1])], [(0, "publish-1")]), "NEGATIVE_FEE"),
        (sign_tx_request("m10", raw, [(-1, spent[0][1])], [(0, "publish-1")]), "AMOUNT_INVALID"),
    ]
    assert other.public_key != key.public_key
    for request, reason in cases:
        await expect_rpc_error(
            signer.stub.SignTransaction(request, metadata=PUBLISHER), grpc.StatusCode.INVALID_ARGUMENT, reason
        )
    await expect_rpc_error(
        signer.stub.SignTransaction(sign_tx_request("m11", raw, spent, [(0, "publish-none")]), metadata=PUBLISHER),
        grpc.StatusCode.NOT_FOUND,
        "KEY_NOT_FOUND",
    )


async def _policy_key(signer: SignerUnderTest, **policy: object) -> bytes:
    key = await create_key(signer, "publish-p", policy=signer_pb2.KeyPolicy(**policy))  # type: ignore[arg-type]
    return bytes(key.public_key)


async def test_policy_denies_destinations_outside_the_allow_list(signer: SignerUnderTest) -> None:
    public = await _policy_key(signer, allowed_destinations=[OUTSIDE], require_policy_mode=True)
    spent = [(10_000, p2pkh_script(public))]
    allowed = unsigned_transaction(
        spent, [(1_000, address_script(OUTSIDE)), (0, data_script(b"x")), (8_900, p2pkh_script(public))]
    )
    ok = await signer.stub.SignTransaction(
        sign_tx_request("d1", allowed, spent, [(0, "publish-p")]), metadata=PUBLISHER
    )
    assert interpreter_accepts(ok.signed_tx, spent)
    for index, outputs in enumerate(
        [
            [(1_000, address_script(ELSEWHERE)), (8_900, p2pkh_script(public))],
            [(1, data_script(b"x")), (9_899, p2pkh_script(public))],
        ]
    ):
        raw = unsigned_transaction(spent, outputs)
        error = await expect_rpc_error(
            signer.stub.SignTransaction(
                sign_tx_request(f"d{index + 2}", raw, spent, [(0, "publish-p")]), metadata=PUBLISHER
            ),
            grpc.StatusCode.PERMISSION_DENIED,
            "POLICY_DENIED",
        )
        assert "allow-list" in (error.details() or "")


async def test_policy_caps_amount_per_transaction_and_fee(signer: SignerUnderTest) -> None:
    public = await _policy_key(signer, max_amount_per_tx_satoshis=2_000, max_fee_satoshis=500)
    spent = [(10_000, p2pkh_script(public))]
    ok = unsigned_transaction(spent, [(2_000, address_script(OUTSIDE)), (7_500, p2pkh_script(public))])
    await signer.stub.SignTransaction(sign_tx_request("c1", ok, spent, [(0, "publish-p")]), metadata=PUBLISHER)
    too_much = unsigned_transaction(spent, [(2_001, address_script(OUTSIDE)), (7_800, p2pkh_script(public))])
    await expect_rpc_error(
        signer.stub.SignTransaction(sign_tx_request("c2", too_much, spent, [(0, "publish-p")]), metadata=PUBLISHER),
        grpc.StatusCode.PERMISSION_DENIED,
        "POLICY_DENIED",
    )
    big_fee = unsigned_transaction(spent, [(1_000, address_script(OUTSIDE)), (8_499, p2pkh_script(public))])
    error = await expect_rpc_error(
        signer.stub.SignTransaction(sign_tx_request("c3", big_fee, spent, [(0, "publish-p")]), metadata=PUBLISHER),
        grpc.StatusCode.PERMISSION_DENIED,
        "POLICY_DENIED",
    )
    assert "fee 501" in (error.details() or "")


async def test_policy_caps_amount_per_day_and_replays_do_not_count_twice(signer: SignerUnderTest) -> None:
    public = await _policy_key(signer, max_amount_per_day_satoshis=5_000)
    spent = [(10_000, p2pkh_script(public))]
    first = sign_tx_request(
        "day1",
        unsigned_transaction(spent, [(3_000, address_script(OUTSIDE)), (6_900, p2pkh_script(public))]),
        spent,
        [(0, "publish-p")],
    )
    await signer.stub.SignTransaction(first, metadata=PUBLISHER)
    await signer.stub.SignTransaction(first, metadata=PUBLISHER)  # a retry: same answer, counted once
    second = sign_tx_request(
        "day2",
        unsigned_transaction(spent, [(2_000, address_script(OUTSIDE)), (7_900, p2pkh_script(public))]),
        spent,
        [(0, "publish-p")],
    )
    await signer.stub.SignTransaction(second, metadata=PUBLISHER)
    third = sign_tx_request(
        "day3",
        unsigned_transaction(spent, [(1, address_script(OUTSIDE)), (9_899, p2pkh_script(public))]),
        spent,
        [(0, "publish-p")],
    )
    error = await expect_rpc_error(
        signer.stub.SignTransaction(third, metadata=PUBLISHER),
        grpc.StatusCode.PERMISSION_DENIED,
        "POLICY_DENIED",
    )
    assert "5001" in (error.details() or "")
    change_only = sign_tx_request(
        "day4", unsigned_transaction(spent, [(9_900, p2pkh_script(public))]), spent, [(0, "publish-p")]
    )
    await signer.stub.SignTransaction(change_only, metadata=PUBLISHER)


async def test_sign_transaction_replays_and_rejects_reuse(signer: SignerUnderTest) -> None:
    key = await create_key(signer, "publish-1")
    spent = [(5_000, p2pkh_script(key.public_key))]
    raw = unsigned_transaction(spent, [(4_000, address_script(OUTSIDE))])
    request = sign_tx_request("r1", raw, spent, [(0, "publish-1")])
    first = await signer.stub.SignTransaction(request, metadata=PUBLISHER)
    assert await signer.stub.SignTransaction(request, metadata=PUBLISHER) == first
    other = unsigned_transaction(spent, [(4_100, address_script(OUTSIDE))])
    await expect_rpc_error(
        signer.stub.SignTransaction(sign_tx_request("r1", other, spent, [(0, "publish-1")]), metadata=PUBLISHER),
        grpc.StatusCode.FAILED_PRECONDITION,
        "REQUEST_ID_REUSED",
    )
