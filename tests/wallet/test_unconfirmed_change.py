"""A busy account never waits for a block: the wallet spends its own change once the network has
accepted the transaction that made it (ReportAccepted), to a bounded chain of unmined transactions;
mined coins are preferred; a send built on change whose transaction proves dead is built again from
other coins."""

from __future__ import annotations

import itertools

import asyncpg
from proofline.utxo.v1 import utxo_pb2
from proofline.wallet.v1 import wallet_pb2

from tests.chain_clients.wallet import Key
from tests.wallet.conftest import ADMIN, FRONTEND, WalletSuite, eventually
from tests.wallet.test_conflicts import spend_outside
from tests.wallet.test_sends import ONE_INPUT_FEE, send_request

UNCONFIRMED = wallet_pb2.TRANSACTION_STATUS_UNCONFIRMED


async def _send(suite: WalletSuite, account_id: str, amount: int) -> wallet_pb2.Transaction:
    sent = await suite.stub.Send(send_request(account_id, amount, wait_for=UNCONFIRMED), metadata=FRONTEND, timeout=30)
    assert sent.transaction.status == UNCONFIRMED, sent.transaction
    return sent.transaction


async def _transaction(suite: WalletSuite, transaction_id: str) -> wallet_pb2.Transaction:
    found = await suite.stub.GetTransaction(
        wallet_pb2.GetTransactionRequest(transaction_id=transaction_id), metadata=FRONTEND
    )
    return found.transaction


async def _outputs_of(suite: WalletSuite, txid: str) -> list[utxo_pb2.Utxo]:
    listed = await suite.utxo.stub.ListUtxos(utxo_pb2.ListUtxosRequest(txid=txid, page_size=10), metadata=ADMIN)
    return list(listed.utxos)


async def _spent_by(wallet_db: asyncpg.Connection, txid: str) -> set[str]:
    """The txids of the coins that `txid` spent, as the wallet recorded them."""
    rows = await wallet_db.fetch("SELECT txid FROM wallet_coins WHERE spent_txid = $1", txid)
    return {r["txid"] for r in rows}


async def test_sends_from_one_coin_chain_on_their_own_change_without_a_block(
    suite: WalletSuite, wallet_db: asyncpg.Connection
) -> None:
    account, _ = await suite.funded_account(100_000)
    [deposit] = await suite.pool_available()
    sends = [await _send(suite, account.account_id, 5_000) for _ in range(4)]
    # Each spends the one before it: the deposit, then each send's change in turn.
    assert await _spent_by(wallet_db, sends[0].txid) == {deposit.outpoint.txid}
    for before, after in itertools.pairwise(sends):
        assert await _spent_by(wallet_db, after.txid) == {before.txid}
    [change] = [u for u in await _outputs_of(suite, sends[-1].txid) if u.purpose == utxo_pb2.UTXO_PURPOSE_WALLET]
    assert change.status == utxo_pb2.UTXO_STATUS_AVAILABLE and change.unconfirmed_depth == 4
    balance = await suite.balance(account.account_id)
    assert balance.available_satoshis == 100_000 - 4 * (5_000 + ONE_INPUT_FEE) and balance.locked_satoshis == 0
    # One block mines the whole chain; the change is a mined coin again.
    await suite.sim.mine(1)
    for sent in sends:
        await eventually(
            lambda s=sent: _transaction(suite, s.transaction_id),  # type: ignore[misc]
            lambda t: t.status == wallet_pb2.TRANSACTION_STATUS_CONFIRMED,
            timeout_s=30,
        )
    await eventually(
        lambda: _outputs_of(suite, sends[-1].txid),
        lambda us: any(u.purpose == utxo_pb2.UTXO_PURPOSE_WALLET and u.unconfirmed_depth == 0 for u in us),
        timeout_s=30,
    )
    await suite.assert_reconciled()


async def test_mined_coins_are_spent_before_unconfirmed_change(
    suite: WalletSuite, wallet_db: asyncpg.Connection
) -> None:
    account, _ = await suite.funded_account(50_000, count=2)
    deposits = {u.outpoint.txid for u in await suite.pool_available()}
    first = await _send(suite, account.account_id, 10_000)
    # The first send's change (about 40,000) would do, but the other mined deposit comes first.
    second = await _send(suite, account.account_id, 10_000)
    assert await _spent_by(wallet_db, second.txid) <= deposits
    assert first.txid not in await _spent_by(wallet_db, second.txid)
    await suite.assert_reconciled()


async def test_the_unconfirmed_chain_is_bounded_and_a_block_lets_it_go_on(
    suite: WalletSuite, wallet_db: asyncpg.Connection
) -> None:
    await suite.stop_wallet()
    await suite.start_wallet(WALLET_UNCONFIRMED_DEPTH="2", WALLET_MAX_BUILDS="1000")
    account, _ = await suite.funded_account(100_000)
    first = await _send(suite, account.account_id, 5_000)
    second = await _send(suite, account.account_id, 5_000)
    assert await _spent_by(wallet_db, second.txid) == {first.txid}
    # A third would be the third unmined transaction in the chain: it waits for coins.
    third = await suite.stub.Send(send_request(account.account_id, 5_000), metadata=FRONTEND)
    waiting = await eventually(
        lambda: _transaction(suite, third.transaction.transaction_id),
        lambda t: t.failure_reason == "COINS_UNAVAILABLE",
        timeout_s=20,
    )
    assert waiting.status == wallet_pb2.TRANSACTION_STATUS_PENDING
    await suite.sim.mine(1)
    done = await eventually(
        lambda: _transaction(suite, third.transaction.transaction_id),
        lambda t: t.status == UNCONFIRMED,
        timeout_s=30,
    )
    assert await _spent_by(wallet_db, done.txid) == {second.txid}
    await suite.assert_reconciled()


async def test_a_send_built_on_change_of_a_dead_send_is_built_again_from_other_coins(
    suite: WalletSuite, wallet_db: asyncpg.Connection
) -> None:
    account, address = await suite.funded_account(40_000)
    [coin] = await suite.pool_available()
    parent = await _send(suite, account.account_id, 10_000)
    child = await _send(suite, account.account_id, 10_000)
    assert await _spent_by(wallet_db, child.txid) == {parent.txid}
    # Another mined coin for the rebuild (a block with only its funding transaction in it).
    funded = await suite.fund(address, 40_000)
    await suite.sim._post("mine", {"txids": [funded["txid"]]})
    await eventually(lambda: suite.balance(account.account_id), lambda b: b.pending_satoshis == 0, timeout_s=20)
    # The parent is mined in no block: the network forgets it (and so its child), and the coin it
    # spent is spent by somebody else.
    evicted = await suite.sim.http.post(f"{suite.sim.base_url}/_sim/tx/{parent.txid}/evict", json={})
    assert evicted.status_code == 200, evicted.text
    await spend_outside(suite, coin, Key(0xBADC0DE + 2))
    failed = await eventually(
        lambda: _transaction(suite, parent.transaction_id),
        lambda t: t.status == wallet_pb2.TRANSACTION_STATUS_FAILED,
        timeout_s=30,
    )
    assert failed.failure_reason == "DOUBLE_SPEND"
    # The child can never be mined (it spends the dead parent's change): built again, from the new coin.
    rebuilt = await eventually(
        lambda: _transaction(suite, child.transaction_id),
        lambda t: t.status == UNCONFIRMED and t.txid != child.txid,
        timeout_s=30,
    )
    assert rebuilt.amount_satoshis == 10_000
    assert parent.txid not in await _spent_by(wallet_db, rebuilt.txid)
    moves = await wallet_db.fetch(
        "SELECT from_status, to_status, reason FROM tx_audit WHERE transaction_id = $1 ORDER BY audit_id",
        child.transaction_id,
    )
    assert ("unconfirmed", "pending", "ANCESTOR_DEAD") in [
        (m["from_status"], m["to_status"], m["reason"]) for m in moves
    ]
    # The parent is reversed, the child paid once: the account lost nothing but the child's send.
    balance = await eventually(
        lambda: suite.balance(account.account_id), lambda b: b.locked_satoshis == 0, timeout_s=20
    )
    assert balance.available_satoshis == 80_000 - 10_000 - rebuilt.fee_satoshis
    report = await eventually(
        suite.reconciliation, lambda r: r.balanced and r.written_off_satoshis == coin.satoshis, timeout_s=30
    )
    assert report.difference_satoshis == 0
