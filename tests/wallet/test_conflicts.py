"""A wallet coin double-spent by a transaction the wallet did not make: the send that meets it is
built again from other coins, no account pays, and the house books the loss."""

from __future__ import annotations

import uuid

import asyncpg
from proofline.common.v1 import common_pb2
from proofline.signer.v1 import signer_pb2
from proofline.utxo.v1 import utxo_pb2
from proofline.wallet.v1 import wallet_pb2

from proofline_kit.wire import Outpoint, Tx, TxInput, TxOutput, serialize
from tests.chain_clients.wallet import Key
from tests.wallet.conftest import ADMIN, FRONTEND, WalletSuite, eventually
from tests.wallet.test_sends import ONE_INPUT_FEE, send_request


async def spend_outside(suite: WalletSuite, coin: utxo_pb2.Utxo, thief: Key) -> None:
    """An operator's tool spends a wallet coin with the wallet's key, behind the wallet's back
    (through the signer's admin path), and the network accepts it."""
    unsigned = serialize(
        Tx((TxInput(Outpoint(coin.outpoint.txid, coin.outpoint.vout)),), (TxOutput(coin.satoshis - 1_000, thief.lock),))
    )
    signed = await suite.signer.stub.SignTransaction(
        signer_pb2.SignTransactionRequest(
            request_id=f"outside-{uuid.uuid4().hex}",
            unsigned_tx=unsigned,
            spent_outputs=[common_pb2.SpentOutput(satoshis=coin.satoshis, locking_script=coin.locking_script)],
            input_keys=[signer_pb2.InputKey(input_index=0, key_id=coin.owner_key_id)],
        ),
        metadata=ADMIN,
    )
    posted = await suite.sim.http.post(f"{suite.sim.base_url}/v1/tx", json={"rawTx": bytes(signed.signed_tx).hex()})
    assert posted.json()["txStatus"] == "SEEN_ON_NETWORK", posted.text


async def test_a_coin_spent_outside_the_wallet_is_written_off_and_the_send_recovers(
    suite: WalletSuite, wallet_db: asyncpg.Connection
) -> None:
    account, _ = await suite.funded_account(40_000, count=2)
    first, second = sorted(await suite.pool_available(), key=lambda u: (u.outpoint.txid, u.outpoint.vout))
    await spend_outside(suite, first, Key(0xBADC0DE))
    await suite.sim.mine(1)
    # The pool still believes in the coin; a send that picks it fails, and is built from the other.
    sent = await suite.stub.Send(send_request(account.account_id, 30_000), metadata=FRONTEND)
    done = await eventually(
        lambda: suite.stub.GetTransaction(
            wallet_pb2.GetTransactionRequest(transaction_id=sent.transaction.transaction_id), metadata=FRONTEND
        ),
        lambda r: r.transaction.status == wallet_pb2.TRANSACTION_STATUS_UNCONFIRMED,
        timeout_s=30,
    )
    assert done.transaction.amount_satoshis == 30_000
    balance = await suite.balance(account.account_id)
    assert balance.available_satoshis == 80_000 - 30_000 - ONE_INPUT_FEE and balance.locked_satoshis == 0
    # Until the pool has the chain's word the stolen coin is DIRTY (still held); then it is written off.
    report = await eventually(suite.reconciliation, lambda r: r.balanced and r.written_off_satoshis > 0, timeout_s=30)
    picked_first = await wallet_db.fetchval(
        "SELECT count(*) FROM wallet_coins WHERE txid = $1 AND vout = $2 AND spent_by = 'outside'",
        first.outpoint.txid,
        first.outpoint.vout,
    )
    moves = await wallet_db.fetch(
        "SELECT from_status, to_status, reason FROM tx_audit WHERE transaction_id = $1 ORDER BY audit_id",
        sent.transaction.transaction_id,
    )
    assert ("sending", "pending", "DOUBLE_SPEND") in [(m["from_status"], m["to_status"], m["reason"]) for m in moves]
    assert picked_first == 1
    assert report.written_off_satoshis == first.satoshis and report.difference_satoshis == 0
    assert done.transaction.txid != ""
    spent_second = await wallet_db.fetchval(
        "SELECT spent_txid FROM wallet_coins WHERE txid = $1 AND vout = $2", second.outpoint.txid, second.outpoint.vout
    )
    assert spent_second == done.transaction.txid


async def test_an_accepted_send_whose_input_is_spent_elsewhere_is_reversed(
    suite: WalletSuite, wallet_db: asyncpg.Connection
) -> None:
    account, _ = await suite.funded_account(40_000)
    [coin] = await suite.pool_available()
    sent = await suite.stub.Send(
        send_request(account.account_id, 10_000, wait_for=wallet_pb2.TRANSACTION_STATUS_UNCONFIRMED),
        metadata=FRONTEND,
        timeout=30,
    )
    assert sent.transaction.status == wallet_pb2.TRANSACTION_STATUS_UNCONFIRMED
    # The network forgets it, and the coin it spent is spent by somebody else.
    evicted = await suite.sim.http.post(f"{suite.sim.base_url}/_sim/tx/{sent.transaction.txid}/evict", json={})
    assert evicted.status_code == 200, evicted.text
    await spend_outside(suite, coin, Key(0xBADC0DE + 1))
    failed = await eventually(
        lambda: suite.stub.GetTransaction(
            wallet_pb2.GetTransactionRequest(transaction_id=sent.transaction.transaction_id), metadata=FRONTEND
        ),
        lambda r: r.transaction.status == wallet_pb2.TRANSACTION_STATUS_FAILED,
        timeout_s=30,
    )
    assert failed.transaction.failure_reason == "DOUBLE_SPEND"
    balance = await suite.balance(account.account_id)
    assert balance.available_satoshis == 40_000 and balance.locked_satoshis == 0
    # Until the pool has the chain's word the coin is DIRTY (still held); then it is written off.
    report = await eventually(
        suite.reconciliation, lambda r: r.balanced and r.written_off_satoshis == coin.satoshis, timeout_s=20
    )
    assert report.difference_satoshis == 0 and report.fees_paid_satoshis == 0
