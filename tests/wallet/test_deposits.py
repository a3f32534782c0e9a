"""Deposits beyond the plain one: a coinbase paying a deposit address matures before it is
available; two wallet replicas follow the chain and work one queue without doing anything twice."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
from proofline.wallet.v1 import wallet_pb2, wallet_pb2_grpc

from proofline_kit.settings import EnvReader
from services.wallet.app import start_wallet
from services.wallet.settings import read_wallet_settings
from tests.wallet.conftest import FRONTEND, WalletSuite, eventually
from tests.wallet.test_sends import send_request


async def test_a_coinbase_deposit_is_available_only_once_mature(suite: WalletSuite) -> None:
    account = await suite.account()
    address = await suite.deposit_address(account.account_id)
    [block] = await suite.sim._post("mine", {"coinbase_address": address.address})
    pending = await eventually(lambda: suite.balance(account.account_id), lambda b: b.pending_satoshis > 0)
    reward = pending.pending_satoshis
    assert pending.available_satoshis == 0
    await suite.sim.mine(98)  # 99 confirmations: a spend could not be mined yet
    await asyncio.sleep(1.0)
    still = await eventually(lambda: suite.balance(account.account_id), lambda b: b.pending_satoshis == reward)
    assert still.available_satoshis == 0
    await suite.sim.mine(1)  # 100: a spend mined in the next block is valid
    credited = await eventually(lambda: suite.balance(account.account_id), lambda b: b.available_satoshis == reward)
    assert credited.pending_satoshis == 0
    history = await suite.stub.ListTransactions(
        wallet_pb2.ListTransactionsRequest(account_id=account.account_id), metadata=FRONTEND
    )
    [deposit] = history.transactions
    assert deposit.required_confirmations == 100 and deposit.block_height == block["height"]
    await suite.assert_reconciled()


async def test_two_replicas_share_the_chain_and_the_queue(suite: WalletSuite, wallet_db: asyncpg.Connection) -> None:
    account, _ = await suite.funded_account(30_000, count=10)
    other = await start_wallet(
        read_wallet_settings(EnvReader(suite.env(WALLET_WORKER_ID="replica-2"))), configure_logs=False
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{other.port}") as channel:
            second: wallet_pb2_grpc.WalletServiceAsyncStub = wallet_pb2_grpc.WalletServiceStub(channel)  # type: ignore[assignment]
            stubs = [suite.stub, second]
            sends = await asyncio.gather(
                *(
                    stubs[i % 2].Send(send_request(account.account_id, 5_000, request_id=f"r-{i}"), metadata=FRONTEND)
                    for i in range(8)
                )
            )
            ids = [s.transaction.transaction_id for s in sends]
            await eventually(
                lambda: wallet_db.fetch("SELECT status FROM wallet_txs WHERE transaction_id = ANY($1::text[])", ids),
                lambda rows: all(r["status"] == "unconfirmed" for r in rows) and len(rows) == 8,
                timeout_s=40,
            )
            # A second deposit seen by both followers is credited once.
            address = await suite.deposit_address(account.account_id)
            await suite.fund(address.address, 12_345)
            await suite.sim.mine(1)
            await eventually(
                lambda: wallet_db.fetchval("SELECT credited FROM wallet_txs WHERE address = $1", address.address),
                lambda credited: credited is True,
            )
    finally:
        await other.stop()
    txids = await wallet_db.fetch("SELECT txid FROM wallet_txs WHERE direction = 'outgoing'")
    assert len({r["txid"] for r in txids}) == 8
    entries = await wallet_db.fetch(
        "SELECT transaction_id, kind, count(*) AS n FROM ledger_entries GROUP BY 1, 2 HAVING count(*) > 1"
    )
    assert [dict(r) for r in entries] == []
    deposits = await wallet_db.fetchval("SELECT count(*) FROM wallet_txs WHERE direction = 'incoming'")
    assert deposits == 2
    balance = await suite.balance(account.account_id)
    spent = sum(s.transaction.amount_satoshis for s in sends)
    fees = await wallet_db.fetchval("SELECT sum(fee_satoshis) FROM wallet_txs WHERE direction = 'outgoing'")
    assert balance.available_satoshis == 300_000 + 12_345 - spent - int(fees)
    await suite.assert_reconciled()
