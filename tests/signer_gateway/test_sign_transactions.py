"""SignTransactions: many transactions in one call, each answered on its own."""

from __future__ import annotations

import asyncpg
import grpc
from bsv import Transaction
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

Spent = list[tuple[int, bytes]]


def tx_to_sign(raw: bytes, spent: Spent, keys: list[tuple[int, str]]) -> signer_pb2.TransactionToSign:
    return signer_pb2.TransactionToSign(
        unsigned_tx=raw,
        spent_outputs=[common_pb2.SpentOutput(satoshis=s, locking_script=script) for s, script in spent],
        input_keys=[signer_pb2.InputKey(input_index=i, key_id=k) for i, k in keys],
    )


def batch(request_id: str, *transactions: signer_pb2.TransactionToSign) -> signer_pb2.SignTransactionsRequest:
    return signer_pb2.SignTransactionsRequest(request_id=request_id, transactions=list(transactions))


async def db_rows(signer: SignerUnderTest, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(signer.env["DATABASE_URL"])
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


async def audit_rows(signer: SignerUnderTest) -> list[asyncpg.Record]:
    return await db_rows(signer, "SELECT * FROM signer.signing_audit ORDER BY id")


async def test_every_transaction_of_a_batch_is_signed_and_passes_the_interpreter(signer: SignerUnderTest) -> None:
    one = await create_key(signer, "publish-1")
    two = await create_key(signer, "publish-2")
    cases: list[tuple[bytes, Spent, list[tuple[int, str]]]] = []
    for n in range(3):
        spent = [(10_000 + n, p2pkh_script(one.public_key))]
        outputs = [(0, data_script(b"record", bytes([n]))), (9_800 + n, p2pkh_script(one.public_key))]
        cases.append((unsigned_transaction(spent, outputs), spent, [(0, "publish-1")]))
    spent = [(5_000, p2pkh_script(one.public_key)), (7_000, p2pkh_script(two.public_key))]
    outputs = [(3_000, address_script(OUTSIDE)), (8_800, p2pkh_script(two.public_key))]
    cases.append((unsigned_transaction(spent, outputs), spent, [(1, "publish-2"), (0, "publish-1")]))
    response = await signer.stub.SignTransactions(
        batch("b1", *(tx_to_sign(*c) for c in cases)), metadata=PUBLISHER, timeout=20
    )
    assert len(response.results) == len(cases)
    for result, (_, spent, keys) in zip(response.results, cases, strict=True):
        assert result.WhichOneof("outcome") == "signed"
        assert interpreter_accepts(result.signed.signed_tx, spent)
        assert result.signed.txid == Transaction.from_hex(result.signed.signed_tx).txid()
        assert [s.key_id for s in result.signed.signatures] == [k for _, k in keys]
    assert [r.signed.fee_satoshis for r in response.results] == [200, 200, 200, 200]
    assert [r.signed.sent_satoshis for r in response.results] == [0, 0, 0, 3_000]
    rows = await audit_rows(signer)
    assert [(r["key_id"], r["outcome"], r["txid"]) for r in rows] == [
        ("publish-1", "signed", response.results[0].signed.txid),
        ("publish-1", "signed", response.results[1].signed.txid),
        ("publish-1", "signed", response.results[2].signed.txid),
        ("publish-2", "signed", response.results[3].signed.txid),
        ("publish-1", "signed", response.results[3].signed.txid),
    ]
    assert all(len(r["digest"]) == 32 and r["request_id"] == "b1" for r in rows)


async def test_a_large_batch_uses_the_process_pool_and_every_transaction_verifies(signer: SignerUnderTest) -> None:
    key = await create_key(signer, "publish-1")
    cases = []
    for n in range(200):
        spent = [(1_000 + n, p2pkh_script(key.public_key))]
        outputs = [(0, data_script(b"r", n.to_bytes(2, "big"))), (900 + n, p2pkh_script(key.public_key))]
        cases.append((unsigned_transaction(spent, outputs), spent, [(0, "publish-1")]))
    response = await signer.stub.SignTransactions(
        batch("big", *(tx_to_sign(*c) for c in cases)), metadata=PUBLISHER, timeout=30
    )
    assert all(r.WhichOneof("outcome") == "signed" for r in response.results)
    for result, (_, spent, _) in list(zip(response.results, cases, strict=True))[::17]:
        assert interpreter_accepts(result.signed.signed_tx, spent)
    assert len(await audit_rows(signer)) == 200


async def test_one_transaction_refused_does_not_stop_the_others(signer: SignerUnderTest) -> None:
    good = await create_key(signer, "publish-1")
    limited = await create_key(signer, "publish-p", policy=signer_pb2.KeyPolicy(allowed_destinations=[OUTSIDE]))
    await create_key(signer, "other-key")
    ok_spent = [(5_000, p2pkh_script(good.public_key))]
    ok_raw = unsigned_transaction(ok_spent, [(4_800, address_script(ELSEWHERE))])
    p_spent = [(5_000, p2pkh_script(limited.public_key))]
    denied_raw = unsigned_transaction(p_spent, [(4_800, address_script(ELSEWHERE))])
    ok2_raw = unsigned_transaction(ok_spent, [(4_700, address_script(OUTSIDE))])
    request = batch(
        "mixed",
        tx_to_sign(ok_raw, ok_spent, [(0, "publish-1")]),
        tx_to_sign(denied_raw, p_spent, [(0, "publish-p")]),
        tx_to_sign(b"\x01\x02\x03", ok_spent, [(0, "publish-1")]),
        tx_to_sign(ok_raw, [*ok_spent, *ok_spent], [(0, "publish-1")]),
        tx_to_sign(ok_raw, ok_spent, [(0, "publish-p")]),
        tx_to_sign(ok_raw, ok_spent, [(0, "publish-none")]),
        tx_to_sign(ok_raw, ok_spent, [(0, "other-key")]),
        tx_to_sign(ok_raw, ok_spent, [(1, "publish-1")]),
        tx_to_sign(ok2_raw, ok_spent, [(0, "publish-1")]),
    )
    response = await signer.stub.SignTransactions(request, metadata=PUBLISHER, timeout=20)
    outcomes = [r.WhichOneof("outcome") for r in response.results]
    assert outcomes == ["signed", "error", "error", "error", "error", "error", "error", "error", "signed"]
    assert interpreter_accepts(response.results[0].signed.signed_tx, ok_spent)
    assert interpreter_accepts(response.results[8].signed.signed_tx, ok_spent)
    errors = {i: r.error for i, r in enumerate(response.results) if r.HasField("error")}
    expected = {
        1: (grpc.StatusCode.PERMISSION_DENIED, "POLICY_DENIED"),
        2: (grpc.StatusCode.INVALID_ARGUMENT, "TRANSACTION_MALFORMED"),
        3: (grpc.StatusCode.INVALID_ARGUMENT, "SPENT_OUTPUTS_MISMATCH"),
        4: (grpc.StatusCode.INVALID_ARGUMENT, "INPUT_NOT_OWNED_BY_KEY"),
        5: (grpc.StatusCode.NOT_FOUND, "KEY_NOT_FOUND"),
        6: (grpc.StatusCode.PERMISSION_DENIED, "KEY_ACCESS_DENIED"),
        7: (grpc.StatusCode.INVALID_ARGUMENT, "INPUT_INDEX_INVALID"),
    }
    for index, (code, reason) in expected.items():
        error = errors[index]
        assert (error.code, error.reason, error.domain) == (code.value[0], reason, "proofline.signer"), index
        assert error.message.startswith(f"{reason}: ")
    assert errors[1].metadata["keyId"] == "publish-p"
    assert errors[1].metadata["rule"] == "destination_not_allowed"
    assert [(v.field, v.reason) for v in errors[2].field_violations] == [("unsigned_tx", "TRANSACTION_MALFORMED")]
    assert [v.field for v in errors[3].field_violations] == ["spent_outputs"]
    assert [v.field for v in errors[7].field_violations] == ["input_keys[0].input_index"]
    assert errors[5].metadata["keyId"] == "publish-none"
    assert errors[6].metadata == {"keyId": "other-key", "callerId": "publisher"}
    rows = await audit_rows(signer)
    assert sorted((r["key_id"], r["outcome"], r["reason"]) for r in rows) == [
        ("other-key", "denied", "KEY_ACCESS_DENIED"),
        ("publish-1", "signed", ""),
        ("publish-1", "signed", ""),
        ("publish-p", "denied", "POLICY_DENIED"),
    ]


async def test_the_daily_limit_counts_the_transactions_of_a_batch_in_order(signer: SignerUnderTest) -> None:
    key = await create_key(signer, "publish-p", policy=signer_pb2.KeyPolicy(max_amount_per_day_satoshis=5_000))
    spent = [(10_000, p2pkh_script(key.public_key))]

    def sending(amount: int) -> signer_pb2.TransactionToSign:
        raw = unsigned_transaction(
            spent, [(amount, address_script(OUTSIDE)), (9_900 - amount, p2pkh_script(key.public_key))]
        )
        return tx_to_sign(raw, spent, [(0, "publish-p")])

    response = await signer.stub.SignTransactions(
        batch("day1", sending(2_000), sending(2_500), sending(1_000), sending(400), sending(100)),
        metadata=PUBLISHER,
        timeout=20,
    )
    outcomes = [r.WhichOneof("outcome") for r in response.results]
    assert outcomes == ["signed", "signed", "error", "signed", "signed"]
    assert response.results[2].error.reason == "POLICY_DENIED"
    assert response.results[2].error.metadata["rule"] == "max_amount_per_day"
    assert "5500" in response.results[2].error.message
    spends = await db_rows(signer, "SELECT satoshis FROM signer.key_spends ORDER BY satoshis")
    assert [r["satoshis"] for r in spends] == [100, 400, 2_000, 2_500]
    # The next call sees the whole batch in the ledger (5,000 sat sent today).
    later = await signer.stub.SignTransactions(batch("day2", sending(1)), metadata=PUBLISHER)
    assert [r.WhichOneof("outcome") for r in later.results] == ["error"]


async def test_a_replayed_batch_answers_the_same_and_signs_nothing_new(signer: SignerUnderTest) -> None:
    key = await create_key(signer, "publish-p", policy=signer_pb2.KeyPolicy(max_amount_per_day_satoshis=3_000))
    spent = [(5_000, p2pkh_script(key.public_key))]
    first_raw = unsigned_transaction(spent, [(2_000, address_script(OUTSIDE)), (2_900, p2pkh_script(key.public_key))])
    second_raw = unsigned_transaction(spent, [(2_000, address_script(OUTSIDE)), (2_900, p2pkh_script(key.public_key))])
    request = batch(
        "r1",
        tx_to_sign(first_raw, spent, [(0, "publish-p")]),
        tx_to_sign(second_raw, spent, [(0, "publish-p")]),
        tx_to_sign(b"junk", spent, [(0, "publish-p")]),
    )
    first = await signer.stub.SignTransactions(request, metadata=PUBLISHER)
    assert [r.WhichOneof("outcome") for r in first.results] == ["signed", "error", "error"]
    audit_before = await audit_rows(signer)
    assert [(r["outcome"], r["reason"]) for r in audit_before] == [("signed", ""), ("denied", "POLICY_DENIED")]
    again = await signer.stub.SignTransactions(request, metadata=PUBLISHER)
    assert again == first
    assert await audit_rows(signer) == audit_before
    spends = await db_rows(signer, "SELECT satoshis FROM signer.key_spends")
    assert [r["satoshis"] for r in spends] == [2_000]
    changed = batch("r1", tx_to_sign(first_raw, spent, [(0, "publish-p")]))
    await expect_rpc_error(
        signer.stub.SignTransactions(changed, metadata=PUBLISHER),
        grpc.StatusCode.FAILED_PRECONDITION,
        "REQUEST_ID_REUSED",
    )
    # The request_id space is per method: SignTransaction with the same id is a new request.
    single = signer_pb2.SignTransactionRequest(
        request_id="r1",
        unsigned_tx=unsigned_transaction(spent, [(4_900, p2pkh_script(key.public_key))]),
        spent_outputs=[common_pb2.SpentOutput(satoshis=5_000, locking_script=spent[0][1])],
        input_keys=[signer_pb2.InputKey(input_index=0, key_id="publish-p")],
    )
    assert (await signer.stub.SignTransaction(single, metadata=PUBLISHER)).signed_tx


async def test_bad_batches_fail_as_a_whole(signer: SignerUnderTest) -> None:
    key = await create_key(signer, "publish-1")
    spent = [(5_000, p2pkh_script(key.public_key))]
    one = tx_to_sign(unsigned_transaction(spent, [(4_800, address_script(OUTSIDE))]), spent, [(0, "publish-1")])
    await expect_rpc_error(
        signer.stub.SignTransactions(batch("e1"), metadata=PUBLISHER), grpc.StatusCode.INVALID_ARGUMENT, "BATCH_EMPTY"
    )
    await expect_rpc_error(
        signer.stub.SignTransactions(batch("e2", *([one] * 1025)), metadata=PUBLISHER),
        grpc.StatusCode.INVALID_ARGUMENT,
        "BATCH_TOO_LARGE",
    )
    await expect_rpc_error(
        signer.stub.SignTransactions(batch("", one), metadata=PUBLISHER),
        grpc.StatusCode.INVALID_ARGUMENT,
        "REQUEST_ID_INVALID",
    )
    assert await audit_rows(signer) == []
    # The same transaction twice in one batch: two identical answers, counted once in the ledger.
    response = await signer.stub.SignTransactions(batch("e3", one, one), metadata=PUBLISHER)
    assert response.results[0] == response.results[1]
    assert len(await db_rows(signer, "SELECT * FROM signer.key_spends")) == 1


async def test_sign_transaction_denials_are_audited_although_the_call_fails(signer: SignerUnderTest) -> None:
    await create_key(signer, "other-key")
    key = await create_key(signer, "publish-p", policy=signer_pb2.KeyPolicy(max_amount_per_tx_satoshis=1_000))
    spent = [(5_000, p2pkh_script(key.public_key))]
    raw = unsigned_transaction(spent, [(2_000, address_script(OUTSIDE)), (2_900, p2pkh_script(key.public_key))])
    request = signer_pb2.SignTransactionRequest(
        request_id="s1",
        unsigned_tx=raw,
        spent_outputs=[common_pb2.SpentOutput(satoshis=5_000, locking_script=spent[0][1])],
        input_keys=[signer_pb2.InputKey(input_index=0, key_id="publish-p")],
    )
    await expect_rpc_error(
        signer.stub.SignTransaction(request, metadata=PUBLISHER), grpc.StatusCode.PERMISSION_DENIED, "POLICY_DENIED"
    )
    request.request_id = "s2"
    request.input_keys[0].key_id = "other-key"
    await expect_rpc_error(
        signer.stub.SignTransaction(request, metadata=PUBLISHER),
        grpc.StatusCode.PERMISSION_DENIED,
        "KEY_ACCESS_DENIED",
    )
    rows = await audit_rows(signer)
    assert [(r["key_id"], r["outcome"], r["reason"]) for r in rows] == [
        ("publish-p", "denied", "POLICY_DENIED"),
        ("other-key", "denied", "KEY_ACCESS_DENIED"),
    ]
    assert await db_rows(signer, "SELECT * FROM signer.key_spends") == []


async def test_external_kms_keys_sign_in_a_batch_and_a_kms_outage_fails_the_call(
    signer: SignerUnderTest, fake_kms: FakeKms
) -> None:
    fake_kms.add_key("publish-kms")
    kms = await create_key(signer, "publish-kms", backend=signer_pb2.KEY_BACKEND_EXTERNAL_KMS)
    local = await create_key(signer, "publish-1")
    await create_key(signer, "other-key")
    fake_kms.mode = "high_s"
    kms_spent = [(5_000, p2pkh_script(kms.public_key)), (5_000, p2pkh_script(local.public_key))]
    both = unsigned_transaction(kms_spent, [(9_800, address_script(OUTSIDE))])
    local_spent = [(5_000, p2pkh_script(local.public_key))]
    alone = unsigned_transaction(local_spent, [(4_800, address_script(OUTSIDE))])
    request = batch(
        "k1",
        tx_to_sign(both, kms_spent, [(0, "publish-kms"), (1, "publish-1")]),
        tx_to_sign(alone, local_spent, [(0, "publish-1")]),
        tx_to_sign(alone, local_spent, [(0, "other-key")]),
    )
    response = await signer.stub.SignTransactions(request, metadata=PUBLISHER, timeout=20)
    assert [r.WhichOneof("outcome") for r in response.results] == ["signed", "signed", "error"]
    assert interpreter_accepts(response.results[0].signed.signed_tx, kms_spent)
    assert interpreter_accepts(response.results[1].signed.signed_tx, local_spent)
    fake_kms.mode = "ok"
    fake_kms.failures_before_success = 10
    request.request_id = "k2"
    await expect_rpc_error(
        signer.stub.SignTransactions(request, metadata=PUBLISHER, timeout=20),
        grpc.StatusCode.UNAVAILABLE,
        "KMS_UNAVAILABLE",
    )
    rows = await audit_rows(signer)
    # k1: three signatures and one ACL denial; k2 signed nothing, but its denial is still recorded.
    assert sorted((r["request_id"], r["outcome"], r["key_id"]) for r in rows) == [
        ("k1", "denied", "other-key"),
        ("k1", "signed", "publish-1"),
        ("k1", "signed", "publish-1"),
        ("k1", "signed", "publish-kms"),
        ("k2", "denied", "other-key"),
    ]
    assert len(await db_rows(signer, "SELECT * FROM signer.key_spends")) == 3
    # Nothing was recorded for k2: once the KMS is back, the same request signs.
    fake_kms.failures_before_success = 0
    again = await signer.stub.SignTransactions(request, metadata=PUBLISHER, timeout=20)
    assert [r.WhichOneof("outcome") for r in again.results] == ["signed", "signed", "error"]
