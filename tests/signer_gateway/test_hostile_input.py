"""Requests from a hostile run: impossible amounts are refused before anything is signed, a signature
is never lost between its audit row and the answer, and no error repeats what the request said."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import grpc
import pytest
from bsv import Script, Transaction, TransactionInput, TransactionOutput
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from proofline.common.v1 import common_pb2
from proofline.signer.v1 import signer_pb2

from proofline_kit.wire import MAX_SATOSHIS
from services.signer_gateway.domain.request_checks import MAX_VIOLATIONS_SHOWN
from tests.harness.grpc_errors import expect_rpc_error
from tests.harness.transactions import address_script, interpreter_accepts, p2pkh_script, unsigned_transaction
from tests.signer_gateway.conftest import (
    ADMIN,
    OUTSIDE,
    PUBLISHER,
    SignerUnderTest,
    create_key,
    signer_env,
    start_signer_under_test,
    stop_signer_under_test,
)
from tests.signer_gateway.test_sign_transactions import audit_rows, batch, db_rows, tx_to_sign

INT64_MAX = 9_223_372_036_854_775_807
Spent = list[tuple[int, bytes]]


def status_of(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    return status


def violations_of(status: status_pb2.Status) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            found.extend((v.field, v.description) for v in bad_request.field_violations)
    return found


def sign_tx_request(
    request_id: str, raw: bytes, spent: Spent, keys: list[tuple[int, str]]
) -> signer_pb2.SignTransactionRequest:
    return signer_pb2.SignTransactionRequest(
        request_id=request_id,
        unsigned_tx=raw,
        spent_outputs=[common_pb2.SpentOutput(satoshis=s, locking_script=script) for s, script in spent],
        input_keys=[signer_pb2.InputKey(input_index=i, key_id=k) for i, k in keys],
    )


def raw_with_output_values(inputs: int, values: list[int]) -> bytes:
    """An unsigned transaction whose outputs carry any 8-byte value (bsv-sdk writes what it is given)."""
    tx_inputs = []
    for index in range(inputs):
        tx_input = TransactionInput(source_txid=os.urandom(32).hex(), source_output_index=index)
        tx_input.unlocking_script = Script(b"")
        tx_inputs.append(tx_input)
    outputs = [TransactionOutput(Script(address_script(OUTSIDE)), v) for v in values]
    return bytes(Transaction(tx_inputs, outputs).serialize())


async def reported_request(signer: SignerUnderTest) -> tuple[bytes, Spent]:
    """The hostile run's transaction: two inputs each claiming 2^63-1 sat, one 9,000-sat output."""
    key = await create_key(signer, "publish-1")
    script = p2pkh_script(key.public_key)
    spent = [(INT64_MAX, script), (INT64_MAX, script)]
    return unsigned_transaction(spent, [(9_000, address_script(OUTSIDE))]), spent


async def assert_nothing_signed(signer: SignerUnderTest) -> None:
    assert [r for r in await audit_rows(signer) if r["outcome"] == "signed"] == []
    assert await db_rows(signer, "SELECT * FROM signer.key_spends") == []


# --- amounts -----------------------------------------------------------------------------------------


async def test_the_reported_sign_transaction_is_refused_at_the_edge_before_signing(
    signer: SignerUnderTest,
) -> None:
    raw, spent = await reported_request(signer)
    request = sign_tx_request("hostile-1", raw, spent, [(0, "publish-1"), (1, "publish-1")])
    error = await expect_rpc_error(
        signer.stub.SignTransaction(request, metadata=PUBLISHER), grpc.StatusCode.INVALID_ARGUMENT, "AMOUNT_INVALID"
    )
    # The contract rules refuse the request's form before the gateway sees it, as they refuse any
    # malformed request: no key was asked to sign, so there is no audit row.
    assert [field for field, _ in violations_of(status_of(error))] == [
        "spent_outputs[0].satoshis",
        "spent_outputs[1].satoshis",
    ]
    assert str(INT64_MAX) not in (error.details() or "")
    assert await audit_rows(signer) == []
    await assert_nothing_signed(signer)
    # A retry is refused the same way (no answer was recorded to replay).
    await expect_rpc_error(
        signer.stub.SignTransaction(request, metadata=PUBLISHER), grpc.StatusCode.INVALID_ARGUMENT, "AMOUNT_INVALID"
    )


async def test_the_reported_transaction_in_a_batch_is_refused_alone_and_audited_as_a_denial(
    signer: SignerUnderTest,
) -> None:
    raw, spent = await reported_request(signer)
    key = await signer.stub.GetPublicKey(signer_pb2.GetPublicKeyRequest(key_id="publish-1"), metadata=PUBLISHER)
    good_spent = [(5_000, p2pkh_script(key.key.public_key))]
    good = tx_to_sign(
        unsigned_transaction(good_spent, [(4_800, address_script(OUTSIDE))]), good_spent, [(0, "publish-1")]
    )
    response = await signer.stub.SignTransactions(
        batch("hostile-b", tx_to_sign(raw, spent, [(0, "publish-1"), (1, "publish-1")]), good),
        metadata=PUBLISHER,
    )
    refused, signed = response.results
    assert refused.WhichOneof("outcome") == "error"
    assert (refused.error.code, refused.error.reason) == (grpc.StatusCode.INVALID_ARGUMENT.value[0], "AMOUNT_INVALID")
    assert [v.field for v in refused.error.field_violations] == ["spent_outputs[0].satoshis"]
    assert signed.WhichOneof("outcome") == "signed"
    assert interpreter_accepts(signed.signed.signed_tx, good_spent)
    rows = await audit_rows(signer)
    assert sorted((r["outcome"], r["reason"], r["txid"]) for r in rows) == [
        ("denied", "AMOUNT_INVALID", None),
        ("signed", "", signed.signed.txid),
    ]
    assert len(await db_rows(signer, "SELECT * FROM signer.key_spends")) == 1


async def test_amounts_beyond_the_supply_are_refused_with_their_reason(signer: SignerUnderTest) -> None:
    key = await create_key(signer, "publish-1")
    script = p2pkh_script(key.public_key)
    spent = [(5_000, script)]
    # The spent outputs' amounts are request fields, refused by the contract rules at the edge (no
    # audit row); the output values inside the transaction bytes only the gateway can see.
    cases = [
        (raw_with_output_values(1, [MAX_SATOSHIS + 1]), spent, "TRANSACTION_MALFORMED", "unsigned_tx"),
        (raw_with_output_values(1, [2**64 - 1]), spent, "TRANSACTION_MALFORMED", "unsigned_tx"),
        (raw_with_output_values(1, [MAX_SATOSHIS, MAX_SATOSHIS]), spent, "TRANSACTION_MALFORMED", "unsigned_tx"),
        (raw_with_output_values(1, [100]), [(MAX_SATOSHIS + 1, script)], "AMOUNT_INVALID", "spent_outputs[0].satoshis"),
        (raw_with_output_values(1, [100]), [(-1, script)], "AMOUNT_INVALID", "spent_outputs[0].satoshis"),
        (raw_with_output_values(2, [100]), [(MAX_SATOSHIS, script), (1, script)], "AMOUNT_INVALID", "spent_outputs"),
        (raw_with_output_values(1, [5_001]), spent, "NEGATIVE_FEE", None),
    ]
    audited = [reason for _, _, reason, _ in cases if reason != "AMOUNT_INVALID"]
    for number, (raw, spent_outputs, reason, field) in enumerate(cases):
        request = sign_tx_request(f"amount-{number}", raw, spent_outputs, [(0, "publish-1")])
        error = await expect_rpc_error(
            signer.stub.SignTransaction(request, metadata=PUBLISHER), grpc.StatusCode.INVALID_ARGUMENT, reason
        )
        assert [f for f, _ in violations_of(status_of(error))] == ([field] if field else [])
    rows = await audit_rows(signer)
    assert [(r["outcome"], r["reason"]) for r in rows] == [("denied", reason) for reason in audited]
    await assert_nothing_signed(signer)


async def test_the_whole_supply_is_still_signed(signer: SignerUnderTest) -> None:
    key = await create_key(signer, "publish-1")
    spent = [(MAX_SATOSHIS - 1_000, p2pkh_script(key.public_key)), (1_000, p2pkh_script(key.public_key))]
    raw = unsigned_transaction(spent, [(MAX_SATOSHIS - 200, address_script(OUTSIDE))])
    response = await signer.stub.SignTransaction(
        sign_tx_request("all", raw, spent, [(0, "publish-1"), (1, "publish-1")]), metadata=PUBLISHER
    )
    assert (response.fee_satoshis, response.sent_satoshis) == (200, MAX_SATOSHIS - 200)
    assert interpreter_accepts(response.signed_tx, spent)


async def test_policy_limits_beyond_the_supply_are_refused(signer: SignerUnderTest) -> None:
    await create_key(signer, "publish-1")
    for number, name in enumerate(("max_amount_per_tx_satoshis", "max_amount_per_day_satoshis", "max_fee_satoshis")):
        for value in (MAX_SATOSHIS + 1, INT64_MAX, -1):
            policy = signer_pb2.KeyPolicy(**{name: value})  # type: ignore[arg-type]
            error = await expect_rpc_error(
                signer.stub.SetKeyPolicy(
                    signer_pb2.SetKeyPolicyRequest(request_id=f"l{number}-{value}", key_id="publish-1", policy=policy),
                    metadata=ADMIN,
                ),
                grpc.StatusCode.INVALID_ARGUMENT,
                "POLICY_INVALID",
            )
            assert [f for f, _ in violations_of(status_of(error))] == [f"policy.{name}"]
        await expect_rpc_error(
            signer.stub.CreateKey(
                signer_pb2.CreateKeyRequest(
                    request_id=f"c{number}",
                    key_id=f"publish-c{number}",
                    policy=signer_pb2.KeyPolicy(**{name: MAX_SATOSHIS + 1}),  # type: ignore[arg-type]
                ),
                metadata=ADMIN,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "POLICY_INVALID",
        )
    at_the_bound = signer_pb2.KeyPolicy(
        max_amount_per_tx_satoshis=MAX_SATOSHIS, max_amount_per_day_satoshis=MAX_SATOSHIS, max_fee_satoshis=MAX_SATOSHIS
    )
    updated = await signer.stub.SetKeyPolicy(
        signer_pb2.SetKeyPolicyRequest(request_id="ok", key_id="publish-1", policy=at_the_bound), metadata=ADMIN
    )
    assert updated.key.policy == at_the_bound


# --- no echo -----------------------------------------------------------------------------------------


async def test_a_megabyte_destination_is_described_not_repeated(signer: SignerUnderTest) -> None:
    await create_key(signer, "publish-1")
    huge = "m" * 1_048_576
    policy = signer_pb2.KeyPolicy(allowed_destinations=[OUTSIDE, huge])
    error = await expect_rpc_error(
        signer.stub.SetKeyPolicy(
            signer_pb2.SetKeyPolicyRequest(request_id="mb", key_id="publish-1", policy=policy), metadata=ADMIN
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "POLICY_INVALID",
    )
    status = status_of(error)
    assert len(status.SerializeToString()) < 2048
    assert "mmmm" not in status.message
    assert violations_of(status) == [("policy.allowed_destinations[1]", "at most 4096 characters")]


async def test_a_thousand_bad_destinations_name_five(signer: SignerUnderTest) -> None:
    await create_key(signer, "publish-1")
    policy = signer_pb2.KeyPolicy(allowed_destinations=[f"{n:04d}" + "x" * 996 for n in range(1000)])
    error = await expect_rpc_error(
        signer.stub.SetKeyPolicy(
            signer_pb2.SetKeyPolicyRequest(request_id="many", key_id="publish-1", policy=policy), metadata=ADMIN
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "POLICY_INVALID",
    )
    status = status_of(error)
    assert len(status.SerializeToString()) < 2048
    assert [f for f, _ in violations_of(status)] == [f"policy.allowed_destinations[{n}]" for n in range(5)]
    assert "xxxx" not in status.SerializeToString().decode("utf-8", "replace")


async def test_a_sign_batch_over_the_limit_is_refused_before_its_items_are_checked(signer: SignerUnderTest) -> None:
    items = [signer_pb2.SignItem(key_id="bad key " + "k" * 200, digest=b"\x01" * 3) for _ in range(2_000)]
    error = await expect_rpc_error(
        signer.stub.Sign(signer_pb2.SignRequest(request_id="big", items=items), metadata=PUBLISHER),
        grpc.StatusCode.INVALID_ARGUMENT,
        "BATCH_TOO_LARGE",
    )
    status = status_of(error)
    assert violations_of(status) == [("items", "at most 1024 items per call")]
    assert len(status.SerializeToString()) < 512


async def test_a_full_batch_of_bad_items_names_a_bounded_number_of_violations(signer: SignerUnderTest) -> None:
    bad_key_id = "bad key " + "k" * 500
    items = [signer_pb2.SignItem(key_id=bad_key_id, digest=b"\x01" * 1_000) for _ in range(1_024)]
    error = await expect_rpc_error(
        signer.stub.Sign(signer_pb2.SignRequest(request_id="bad", items=items), metadata=PUBLISHER),
        grpc.StatusCode.INVALID_ARGUMENT,
        "KEY_ID_INVALID",
    )
    status = status_of(error)
    violations = violations_of(status)
    # The gateway stops at MAX_VIOLATIONS_SHOWN; the answer names 5 and counts the rest.
    assert MAX_VIOLATIONS_SHOWN == 20
    assert len(violations) == 5
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.metadata["violationsOmitted"] == "15"
    assert violations[:2] == [
        ("items[0].key_id", "1-128 characters of [A-Za-z0-9._:-]"),
        ("items[0].digest", "must be 32 bytes, got 1000"),
    ]
    serialized = status.SerializeToString()
    assert len(serialized) < 4096
    assert b"kkkk" not in serialized
    assert await audit_rows(signer) == []


async def test_key_ids_in_messages_are_shortened_and_whole_in_metadata(signer: SignerUnderTest) -> None:
    long_id = "publish-" + "n" * 120
    error = await expect_rpc_error(
        signer.stub.Sign(
            signer_pb2.SignRequest(request_id="long", items=[signer_pb2.SignItem(key_id=long_id, digest=b"\x01" * 32)]),
            metadata=PUBLISHER,
        ),
        grpc.StatusCode.NOT_FOUND,
        "KEY_NOT_FOUND",
    )
    assert error.details() == "KEY_NOT_FOUND: no key " + long_id[:63] + "…"
    info = error_details_pb2.ErrorInfo()
    assert status_of(error).details[0].Unpack(info)
    assert info.metadata["keyId"] == long_id


# --- the answer always fits ----------------------------------------------------------------------------


@pytest.fixture
async def small_signer(database_url: str) -> AsyncIterator[SignerUnderTest]:
    """A gateway whose answers may carry at most 64 KiB."""
    under_test = await start_signer_under_test(signer_env(database_url, GRPC_MAX_MESSAGE_BYTES="65536"))
    try:
        yield under_test
    finally:
        await stop_signer_under_test(under_test)


async def test_an_answer_that_could_outgrow_the_transport_is_refused_before_signing(
    small_signer: SignerUnderTest,
) -> None:
    key = await create_key(small_signer, "publish-1")
    script = p2pkh_script(key.public_key)

    def many_inputs(count: int) -> signer_pb2.SignTransactionRequest:
        spent = [(1_000, script)] * count
        raw = unsigned_transaction(spent, [(count * 1_000 - 500, address_script(OUTSIDE))])
        return sign_tx_request(f"inputs-{count}", raw, spent, [(i, "publish-1") for i in range(count)])

    too_many = many_inputs(300)
    # The request fits; its signed answer would not (about 80 KB).
    assert len(too_many.SerializeToString()) < 65_536
    await expect_rpc_error(
        small_signer.stub.SignTransaction(too_many, metadata=PUBLISHER),
        grpc.StatusCode.INVALID_ARGUMENT,
        "BATCH_TOO_LARGE",
    )
    await expect_rpc_error(
        small_signer.stub.SignTransactions(
            batch(
                "b-300",
                tx_to_sign(too_many.unsigned_tx, [(1_000, script)] * 300, [(i, "publish-1") for i in range(300)]),
            ),
            metadata=PUBLISHER,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "BATCH_TOO_LARGE",
    )
    await assert_nothing_signed(small_signer)
    fits = await small_signer.stub.SignTransaction(many_inputs(200), metadata=PUBLISHER)
    assert len(fits.signatures) == 200
    assert len(fits.SerializeToString()) < 65_536
