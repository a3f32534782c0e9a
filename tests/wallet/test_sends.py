"""Sends end to end with every service real: validation, reservation, the pipeline to the chain."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import grpc
from google.protobuf.duration_pb2 import Duration
from proofline.wallet.v1 import wallet_pb2

from proofline_kit.rpc.status import error_reason
from proofline_kit.wire import parse
from tests.harness.grpc_errors import expect_rpc_error
from tests.wallet.conftest import FRONTEND, RECIPIENT, WalletSuite, eventually

RATE = 1000  # sat per 1000 bytes, fixed so the fees below are exact
# One P2PKH input, recipient + change: 10 + 148 + 2 * 34 bytes.
ONE_INPUT_FEE = 226


def send_request(account_id: str, amount: int, **fields: object) -> wallet_pb2.SendRequest:
    request = wallet_pb2.SendRequest(
        request_id=str(fields.pop("request_id", f"send-{uuid.uuid4().hex[:16]}")),
        account_id=account_id,
        to_address=str(fields.pop("to_address", RECIPIENT)),
        amount_satoshis=amount,
        fee_policy=wallet_pb2.FeePolicy(fee_rate_satoshis_per_kb=int(fields.pop("rate", RATE))),  # type: ignore[call-overload]
    )
    for name, value in fields.items():
        if isinstance(value, Duration):
            getattr(request, name).CopyFrom(value)
        else:
            setattr(request, name, value)
    return request


async def _counts(db: asyncpg.Connection) -> tuple[int, int, int]:
    row = await db.fetchrow(
        "SELECT (SELECT count(*) FROM wallet_txs) AS t, (SELECT count(*) FROM ledger_entries) AS e,"
        " (SELECT count(*) FROM tx_audit) AS a"
    )
    assert row is not None
    return int(row["t"]), int(row["e"]), int(row["a"])


async def test_send_reaches_the_chain_with_the_estimated_fee(suite: WalletSuite) -> None:
    account, _ = await suite.funded_account(100_000)
    estimate = await suite.stub.EstimateFee(
        wallet_pb2.EstimateFeeRequest(
            account_id=account.account_id,
            to_address=RECIPIENT,
            amount_satoshis=30_000,
            fee_policy=wallet_pb2.FeePolicy(fee_rate_satoshis_per_kb=RATE),
        ),
        metadata=FRONTEND,
    )
    assert estimate.fee_satoshis == ONE_INPUT_FEE and estimate.input_count == 1 and estimate.has_change
    assert estimate.sufficient_funds and estimate.total_debit_satoshis == 30_000 + ONE_INPUT_FEE
    sent = await suite.stub.Send(
        send_request(
            account.account_id,
            30_000,
            wait_for=wallet_pb2.TRANSACTION_STATUS_UNCONFIRMED,
            wait_timeout=Duration(seconds=20),
        ),
        metadata=FRONTEND,
        timeout=30,
    )
    tx = sent.transaction
    assert tx.status == wallet_pb2.TRANSACTION_STATUS_UNCONFIRMED, tx
    assert tx.fee_satoshis == estimate.fee_satoshis
    raw = await suite.sim.http.get(f"{suite.sim.base_url}/v1/bsv/test/tx/{tx.txid}/hex")
    assert raw.status_code == 200
    outputs = parse(bytes.fromhex(raw.text.strip().strip('"'))).outputs
    recipient_script = await suite.wallet_script(RECIPIENT)
    assert [o.satoshis for o in outputs if o.locking_script == recipient_script] == [30_000]
    balance = await suite.balance(account.account_id)
    assert balance.available_satoshis == 100_000 - 30_000 - ONE_INPUT_FEE and balance.locked_satoshis == 0
    await suite.assert_reconciled()
    await suite.sim.mine(1)
    watch = suite.stub.WatchTransaction(
        wallet_pb2.WatchTransactionRequest(transaction_id=tx.transaction_id), metadata=FRONTEND, timeout=30
    )
    last = None
    async for update in watch:
        last = update.transaction
    assert last is not None and last.status == wallet_pb2.TRANSACTION_STATUS_CONFIRMED
    assert last.confirmations >= 1 and last.block_hash
    await eventually(suite.pool_available, lambda coins: len(coins) == 1)  # the change, mined
    await suite.assert_reconciled()


async def test_a_retried_send_is_one_transaction(suite: WalletSuite) -> None:
    account, _ = await suite.funded_account(50_000)
    request = send_request(account.account_id, 10_000, request_id="pay-once")
    first = (await suite.stub.Send(request, metadata=FRONTEND)).transaction
    second = (await suite.stub.Send(request, metadata=FRONTEND)).transaction
    assert first.transaction_id == second.transaction_id
    await expect_rpc_error(
        suite.stub.Send(send_request(account.account_id, 10_001, request_id="pay-once"), metadata=FRONTEND),
        grpc.StatusCode.FAILED_PRECONDITION,
        "REQUEST_ID_REUSED",
    )
    done = await eventually(
        lambda: suite.stub.GetTransaction(
            wallet_pb2.GetTransactionRequest(transaction_id=first.transaction_id), metadata=FRONTEND
        ),
        lambda r: r.transaction.status == wallet_pb2.TRANSACTION_STATUS_UNCONFIRMED,
    )
    history = await suite.stub.ListTransactions(
        wallet_pb2.ListTransactionsRequest(
            account_id=account.account_id, direction=wallet_pb2.TRANSACTION_DIRECTION_OUTGOING
        ),
        metadata=FRONTEND,
    )
    assert [t.txid for t in history.transactions] == [done.transaction.txid]
    await suite.assert_reconciled()


async def test_every_refusal_has_its_reason_and_stores_nothing(
    suite: WalletSuite, wallet_db: asyncpg.Connection
) -> None:
    account, _ = await suite.funded_account(20_000)
    before = await _counts(wallet_db)
    mainnet = "1BoatSLRHtKNngkdXEeobR76b53LETtpyT"
    cases: list[tuple[wallet_pb2.SendRequest, grpc.StatusCode, str]] = [
        (
            send_request(account.account_id, 1000, to_address="not-an-address"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "ADDRESS_INVALID",
        ),
        (
            send_request(account.account_id, 1000, to_address=RECIPIENT[:-1] + ("a" if RECIPIENT[-1] != "a" else "b")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "ADDRESS_INVALID",
        ),
        (
            send_request(account.account_id, 1000, to_address=mainnet),
            grpc.StatusCode.INVALID_ARGUMENT,
            "ADDRESS_WRONG_NETWORK",
        ),
        (send_request(account.account_id, 0), grpc.StatusCode.INVALID_ARGUMENT, "AMOUNT_INVALID"),
        (send_request(account.account_id, 200_000_000_000), grpc.StatusCode.INVALID_ARGUMENT, "AMOUNT_ABOVE_LIMIT"),
        (
            send_request(account.account_id, 1000, rate=2_000_000_000),
            grpc.StatusCode.INVALID_ARGUMENT,
            "FEE_RATE_INVALID",
        ),
        (
            send_request(account.account_id, 1000, wait_for=wallet_pb2.TRANSACTION_STATUS_FAILED),
            grpc.StatusCode.INVALID_ARGUMENT,
            "WAIT_FOR_INVALID",
        ),
        (send_request(account.account_id, 50_000), grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS"),
        (send_request("acct_missing", 1000), grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND"),
        (send_request(account.account_id, 1000, request_id=""), grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_INVALID"),
    ]
    limited = send_request(account.account_id, 1000)
    limited.fee_policy.max_fee_satoshis = 10
    cases.append((limited, grpc.StatusCode.FAILED_PRECONDITION, "FEE_LIMIT_EXCEEDED"))
    subtract = send_request(account.account_id, 100)
    subtract.fee_policy.subtract_fee_from_amount = True
    cases.append((subtract, grpc.StatusCode.INVALID_ARGUMENT, "AMOUNT_BELOW_DUST"))
    for request, code, reason in cases:
        await expect_rpc_error(suite.stub.Send(request, metadata=FRONTEND), code, reason)
    insufficient = await expect_rpc_error(
        suite.stub.Send(send_request(account.account_id, 50_000), metadata=FRONTEND),
        grpc.StatusCode.FAILED_PRECONDITION,
        "INSUFFICIENT_FUNDS",
    )
    assert error_reason(insufficient) == "INSUFFICIENT_FUNDS"
    assert await _counts(wallet_db) == before
    balance = await suite.balance(account.account_id)
    assert balance.available_satoshis == 20_000 and balance.locked_satoshis == 0
    await suite.assert_reconciled()


async def test_concurrent_sends_never_overdraw(suite: WalletSuite) -> None:
    amount = 1000
    debit = amount + ONE_INPUT_FEE
    account, _ = await suite.funded_account(60 * debit)
    # Intake only from here: the ledger's decision is under test, not the pipeline's.
    await suite.stop_wallet()
    await suite.start_wallet(WALLET_WORKERS="0", WALLET_SENDS_PER_MINUTE="0")

    async def one(i: int) -> str:
        try:
            await suite.stub.Send(
                send_request(account.account_id, amount, request_id=f"burst-{i}"), metadata=FRONTEND, timeout=30
            )
        except grpc.aio.AioRpcError as error:
            return error_reason(error) or str(error.code())
        return "OK"

    outcomes = await asyncio.gather(*(one(i) for i in range(100)))
    assert outcomes.count("OK") == 60, outcomes
    assert outcomes.count("INSUFFICIENT_FUNDS") == 40, outcomes
    balance = await suite.balance(account.account_id)
    assert balance.available_satoshis == 0 and balance.locked_satoshis == 60 * debit
    await suite.assert_reconciled()


async def test_daily_and_rate_limits_refuse_with_their_reasons(
    suite: WalletSuite, wallet_db: asyncpg.Connection
) -> None:
    account, _ = await suite.funded_account(100_000)
    await suite.stop_wallet()
    await suite.start_wallet(WALLET_DAILY_LIMIT_SATOSHIS="25000", WALLET_SENDS_PER_MINUTE="3", WALLET_WORKERS="0")
    first = await suite.stub.Send(send_request(account.account_id, 10_000), metadata=FRONTEND)
    assert first.transaction.status == wallet_pb2.TRANSACTION_STATUS_PENDING
    before = await _counts(wallet_db)
    # 10,226 recorded; another 15,000 + fee would pass 25,000 within 24 hours.
    await expect_rpc_error(
        suite.stub.Send(send_request(account.account_id, 15_000), metadata=FRONTEND),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "DAILY_LIMIT_EXCEEDED",
    )
    assert await _counts(wallet_db) == before
    # Attempts count against the rate, refused ones too: this is the third of the minute.
    await suite.stub.Send(send_request(account.account_id, 1_000), metadata=FRONTEND)
    await expect_rpc_error(
        suite.stub.Send(send_request(account.account_id, 1_000), metadata=FRONTEND),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "RATE_LIMITED",
    )
    balance = await suite.balance(account.account_id)
    assert balance.locked_satoshis == 10_000 + 1_000 + 2 * ONE_INPUT_FEE
    await suite.assert_reconciled()


async def test_a_send_no_broadcaster_answers_fails_after_its_bounded_retries(suite: WalletSuite) -> None:
    account, _ = await suite.funded_account(30_000)
    await suite.stop_wallet()
    await suite.start_wallet(WALLET_MAX_BROADCAST_ATTEMPTS="3", WALLET_WOC_BROADCAST_FALLBACK="0")
    await suite.sim.faults({"rules": [{"face": "arc", "action": "http:503"}]})
    sent = await suite.stub.Send(send_request(account.account_id, 10_000), metadata=FRONTEND)
    failed = await eventually(
        lambda: suite.stub.GetTransaction(
            wallet_pb2.GetTransactionRequest(transaction_id=sent.transaction.transaction_id), metadata=FRONTEND
        ),
        lambda r: r.transaction.status == wallet_pb2.TRANSACTION_STATUS_FAILED,
        timeout_s=30,
    )
    assert failed.transaction.failure_reason == "RETRIES_EXHAUSTED"
    assert failed.transaction.broadcast_attempts == 3
    await suite.sim.clear_faults()
    balance = await suite.balance(account.account_id)
    assert balance.available_satoshis == 30_000 and balance.locked_satoshis == 0
    await suite.assert_reconciled()
