"""Reorgs over deposits and sends, on chainsim, with every service real."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from proofline.utxo.v1 import utxo_pb2
from proofline.wallet.v1 import wallet_pb2

from tests.chain_clients.wallet import Coin, Key, build
from tests.wallet.conftest import ADMIN, FRONTEND, WalletSuite, eventually
from tests.wallet.test_sends import send_request


async def _statuses(db: asyncpg.Connection, transaction_id: str) -> list[tuple[str | None, str, str]]:
    rows = await db.fetch(
        "SELECT from_status, to_status, reason FROM tx_audit WHERE transaction_id = $1 ORDER BY audit_id",
        transaction_id,
    )
    return [(r["from_status"], r["to_status"], r["reason"]) for r in rows]


async def _tx(suite: WalletSuite, transaction_id: str) -> wallet_pb2.Transaction:
    response = await suite.stub.GetTransaction(
        wallet_pb2.GetTransactionRequest(transaction_id=transaction_id), metadata=FRONTEND
    )
    return response.transaction


async def _sync_pool(suite: WalletSuite) -> None:
    """An operator's sync (the wallet's own may hold the maintenance lease for a moment)."""
    for _ in range(20):
        try:
            await suite.utxo_admin.SyncFromChain(
                utxo_pb2.SyncFromChainRequest(request_id=f"s-{uuid.uuid4().hex}"), metadata=ADMIN
            )
            return
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.ABORTED:
                raise
            await asyncio.sleep(0.2)
    raise AssertionError("the pool's maintenance lease stayed taken")


@pytest.mark.parametrize("depth", [1, 3])
async def test_a_reorg_takes_a_send_and_a_deposit_through_reorging_and_back(
    suite: WalletSuite, wallet_db: asyncpg.Connection, depth: int
) -> None:
    account, _ = await suite.funded_account(80_000)
    sent = await suite.stub.Send(
        send_request(
            account.account_id,
            20_000,
            wait_for=wallet_pb2.TRANSACTION_STATUS_UNCONFIRMED,
            wait_timeout=Duration(seconds=20),
        ),
        metadata=FRONTEND,
        timeout=30,
    )
    send = sent.transaction
    assert send.status == wallet_pb2.TRANSACTION_STATUS_UNCONFIRMED
    # Depth 1 replaces the send's block; depth 3 also the deposit's (one block below it).
    await suite.sim.mine(max(1, depth - 1))
    await eventually(
        lambda: _tx(suite, send.transaction_id), lambda t: t.status == wallet_pb2.TRANSACTION_STATUS_CONFIRMED
    )
    history = await suite.stub.ListTransactions(
        wallet_pb2.ListTransactionsRequest(
            account_id=account.account_id, direction=wallet_pb2.TRANSACTION_DIRECTION_INCOMING
        ),
        metadata=FRONTEND,
    )
    [deposit] = history.transactions
    before = await suite.balance(account.account_id)
    # A longer branch replaces the top `depth` blocks and mines the same transactions again.
    await suite.sim.reorg(depth)
    final = await eventually(
        lambda: _statuses(wallet_db, send.transaction_id),
        lambda moves: ("confirmed", "reorging", "BLOCK_REORGANIZED") in moves and moves[-1][1] == "confirmed",
    )
    assert ("reorging", "confirmed", "MINED_DEEP_ENOUGH") in final or (
        "reorging",
        "unconfirmed",
        "REORGED_OUT",
    ) in final
    again = await _tx(suite, send.transaction_id)
    assert again.status == wallet_pb2.TRANSACTION_STATUS_CONFIRMED and again.block_hash != send.block_hash
    if depth == 3:  # the deposit's block was among the replaced ones
        deposit_moves = await _statuses(wallet_db, deposit.transaction_id)
        assert ("confirmed", "reorging", "BLOCK_REORGANIZED") in deposit_moves
    # The deposit may settle in a later settle round than the send.
    await eventually(
        lambda: _tx(suite, deposit.transaction_id),
        lambda t: t.status == wallet_pb2.TRANSACTION_STATUS_CONFIRMED,
    )
    after = await suite.balance(account.account_id)
    assert (after.available_satoshis, after.pending_satoshis) == (before.available_satoshis, before.pending_satoshis)
    await suite.assert_reconciled()


async def test_a_deposit_whose_input_is_double_spent_in_a_reorg_is_reversed(
    suite: WalletSuite, wallet_db: asyncpg.Connection
) -> None:
    await suite.stop_wallet()
    await suite.start_wallet(WALLET_DEPOSIT_DROP_AFTER_MS="0")
    account = await suite.account()
    address = await suite.deposit_address(account.account_id)
    outsider = Key(0xC0FFEE + 7)
    [coin] = await suite.sim.fund(outsider, 60_000)
    script = await suite.wallet_script(address.address)
    deposit_tx = build([coin], [(59_000, script)])
    competitor = build(
        [Coin(coin.txid, coin.vout, coin.satoshis, outsider, coin.parent_hex)], [(59_500, outsider.lock)]
    )
    posted = await suite.sim.http.post(f"{suite.sim.base_url}/v1/tx", json={"rawTx": deposit_tx.raw.hex()})
    assert posted.status_code == 200, posted.text
    await suite.sim.mine(1)
    credited = await eventually(lambda: suite.balance(account.account_id), lambda b: b.available_satoshis == 59_000)
    assert credited.pending_satoshis == 0
    # The pool has the credited coin on the chain's word (AVAILABLE) before the chain changes: an
    # UNCONFIRMED row it never saw mined it would keep (only a report proves such a row dead).
    await eventually(suite.pool_available, lambda coins: any(c.outpoint.txid == deposit_tx.txid for c in coins))
    await suite.sim.mine(2)
    # The outsider's competing spend, seen once the deposit is mined (an orphan to the node), then
    # mined in a longer branch that replaces the deposit's block.
    await suite.sim.http.post(f"{suite.sim.base_url}/v1/tx", json={"rawTx": competitor.raw.hex()})
    await suite.sim._post("reorg", {"depth": 3, "include_txids": [competitor.txid]})
    history = await suite.stub.ListTransactions(
        wallet_pb2.ListTransactionsRequest(account_id=account.account_id), metadata=FRONTEND
    )
    [deposit] = history.transactions
    failed = await eventually(
        lambda: _tx(suite, deposit.transaction_id),
        lambda t: t.status == wallet_pb2.TRANSACTION_STATUS_FAILED,
        timeout_s=40,
    )
    assert failed.failure_reason == "DEPOSIT_DROPPED"
    moves = [(m[0], m[1]) for m in await _statuses(wallet_db, deposit.transaction_id)]
    assert moves == [
        (None, "unconfirmed"),
        ("unconfirmed", "confirmed"),
        ("confirmed", "reorging"),
        ("reorging", "unconfirmed"),
        ("unconfirmed", "failed"),
    ]
    balance = await suite.balance(account.account_id)
    assert balance.available_satoshis == 0 and balance.pending_satoshis == 0
    # The pool writes the vanished output off on its own evidence (two syncs, UTXO_INVALID_AFTER_MS).
    for _ in range(2):
        await _sync_pool(suite)
        await asyncio.sleep(0.1)
    listed = await suite.utxo.stub.ListUtxos(utxo_pb2.ListUtxosRequest(txid=deposit_tx.txid), metadata=ADMIN)
    assert [(u.status, u.status_reason) for u in listed.utxos] == [(utxo_pb2.UTXO_STATUS_INVALID, "NOT_ON_CHAIN")]
    await suite.assert_reconciled()
