"""kill -9 of the wallet between SENDING and the broadcast's answer: after a restart the stored bytes
are broadcast again (same txid) and one transaction spends the coins on chain."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
from proofline.wallet.v1 import wallet_pb2, wallet_pb2_grpc

from tests.harness.service_process import service_process
from tests.wallet.conftest import FRONTEND, WalletSuite, eventually
from tests.wallet.test_sends import send_request


async def _status(stub: wallet_pb2_grpc.WalletServiceAsyncStub, transaction_id: str) -> wallet_pb2.Transaction:
    response = await stub.GetTransaction(
        wallet_pb2.GetTransactionRequest(transaction_id=transaction_id, view=wallet_pb2.TRANSACTION_VIEW_FULL),
        metadata=FRONTEND,
    )
    return response.transaction


async def test_kill9_between_sending_and_broadcast_resends_the_same_transaction(
    suite: WalletSuite, wallet_db: asyncpg.Connection
) -> None:
    account, _ = await suite.funded_account(70_000)
    [coin] = await suite.pool_available()
    await suite.stop_wallet()
    env = suite.env(
        WALLET_FEE_RATE_SAT_PER_KB="1000",
        # No WhatsOnChain fallback: it would send the transaction while ARC hangs.
        WALLET_WOC_BROADCAST_FALLBACK="0",
        WALLET_CHAIN_TIMEOUT_MS="30000",
        WALLET_WORK_LEASE_MS="2000",
    )
    await suite.sim.faults({"rules": [{"face": "arc", "action": "hang"}]})
    async with service_process("wallet", "WALLET_GRPC_PORT", env) as doomed:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{doomed.port}") as channel:
            stub: wallet_pb2_grpc.WalletServiceAsyncStub = wallet_pb2_grpc.WalletServiceStub(channel)  # type: ignore[assignment]
            sent = await stub.Send(send_request(account.account_id, 25_000), metadata=FRONTEND, timeout=10)
            sending = await eventually(
                lambda: _status(stub, sent.transaction.transaction_id),
                lambda t: t.status == wallet_pb2.TRANSACTION_STATUS_SENDING,
            )
        for _ in range(100):
            if any(rule["used"] for rule in await suite.sim.fault_rules()):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"the broadcast never reached ARC: {doomed.output()}")
        doomed.kill9()
    assert len(sending.txid) == 64 and sending.raw_tx
    row = await wallet_db.fetchrow(
        "SELECT status, txid, raw_tx FROM wallet_txs WHERE transaction_id = $1", sending.transaction_id
    )
    assert row is not None and (row["status"], row["txid"], bytes(row["raw_tx"])) == (
        "sending",
        sending.txid,
        sending.raw_tx,
    )
    await suite.sim.clear_faults()

    await suite.start_wallet(WALLET_FEE_RATE_SAT_PER_KB="1000", WALLET_WORK_LEASE_MS="2000")
    accepted = await eventually(
        lambda: _status(suite.stub, sending.transaction_id),
        lambda t: t.status == wallet_pb2.TRANSACTION_STATUS_UNCONFIRMED,
        timeout_s=30,
    )
    assert accepted.txid == sending.txid and accepted.raw_tx == sending.raw_tx
    spent = await suite.sim.http.get(
        f"{suite.sim.base_url}/v1/bsv/test/tx/{coin.outpoint.txid}/{coin.outpoint.vout}/spent"
    )
    assert spent.status_code == 200 and spent.json()["txid"] == sending.txid, spent.text
    builds = await wallet_db.fetch(
        "SELECT DISTINCT txid FROM tx_audit WHERE transaction_id = $1 AND txid IS NOT NULL", sending.transaction_id
    )
    assert [r["txid"] for r in builds] == [sending.txid]
    await suite.sim.mine(1)
    await eventually(
        lambda: _status(suite.stub, sending.transaction_id),
        lambda t: t.status == wallet_pb2.TRANSACTION_STATUS_CONFIRMED,
    )
    await suite.assert_reconciled()
