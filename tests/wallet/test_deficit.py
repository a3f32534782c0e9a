"""A credited deposit reversed after its account spent it: the account goes into deficit, sends are
refused until a new deposit covers it, and the reconciliation shows it."""

from __future__ import annotations

import uuid

import grpc
from proofline.common.v1 import common_pb2
from proofline.utxo.v1 import utxo_pb2
from proofline.wallet.v1 import wallet_pb2

from tests.chain_clients.wallet import Key, build
from tests.harness.grpc_errors import expect_rpc_error
from tests.wallet.conftest import ADMIN, FRONTEND, WalletSuite, eventually
from tests.wallet.test_reorgs import _sync_pool
from tests.wallet.test_sends import ONE_INPUT_FEE, send_request


async def test_a_reversal_beyond_the_balance_is_a_deficit_until_covered(suite: WalletSuite) -> None:
    await suite.stop_wallet()
    await suite.start_wallet(WALLET_DEPOSIT_DROP_AFTER_MS="0")
    rich, _ = await suite.funded_account(500_000)
    account = await suite.account()
    address = await suite.deposit_address(account.account_id)
    outsider = Key(0xDEF1C17)
    [coin] = await suite.sim.fund(outsider, 60_000)
    deposit_tx = build([coin], [(50_000, await suite.wallet_script(address.address))])
    competitor = build([coin], [(59_500, outsider.lock)])
    posted = await suite.sim.http.post(f"{suite.sim.base_url}/v1/tx", json={"rawTx": deposit_tx.raw.hex()})
    assert posted.status_code == 200, posted.text
    await suite.sim.mine(1)
    await eventually(lambda: suite.balance(account.account_id), lambda b: b.available_satoshis == 50_000)
    await eventually(suite.pool_available, lambda coins: len(coins) == 2)
    # Hold the deposit's own coin so the account's send is paid from the omnibus pool's other coin.
    await suite.utxo.stub.LeaseUtxos(
        utxo_pb2.LeaseUtxosRequest(
            request_id=f"hold-{uuid.uuid4().hex}",
            purpose=utxo_pb2.UTXO_PURPOSE_WALLET,
            outpoints=utxo_pb2.OutpointList(outpoints=[common_pb2.Outpoint(txid=deposit_tx.txid, vout=0)]),
        ),
        metadata=ADMIN,
    )
    sent = await suite.stub.Send(
        send_request(account.account_id, 40_000, wait_for=wallet_pb2.TRANSACTION_STATUS_UNCONFIRMED),
        metadata=FRONTEND,
        timeout=30,
    )
    assert sent.transaction.status == wallet_pb2.TRANSACTION_STATUS_UNCONFIRMED
    await suite.sim.mine(1)
    await suite.sim.http.post(f"{suite.sim.base_url}/v1/tx", json={"rawTx": competitor.raw.hex()})
    await suite.sim._post("reorg", {"depth": 2, "include_txids": [competitor.txid]})
    left = 50_000 - 40_000 - ONE_INPUT_FEE
    owed = 50_000 - left
    report = await eventually(suite.reconciliation, lambda r: r.deficit_satoshis == owed, timeout_s=30)
    assert [d.kind for d in report.differences if d.kind == "ACCOUNT_IN_DEFICIT"] == ["ACCOUNT_IN_DEFICIT"]
    balance = await suite.balance(account.account_id)
    assert balance.available_satoshis == 0
    await expect_rpc_error(
        suite.stub.Send(send_request(account.account_id, 1_000), metadata=FRONTEND),
        grpc.StatusCode.FAILED_PRECONDITION,
        "ACCOUNT_IN_DEFICIT",
    )
    # A new deposit covers the deficit first; the rest is available and sends work again.
    await suite.fund(address.address, owed + 5_000)
    await suite.sim.mine(1)
    await eventually(lambda: suite.balance(account.account_id), lambda b: b.available_satoshis == 5_000)
    for _ in range(2):
        await _sync_pool(suite)
    report = await eventually(suite.reconciliation, lambda r: r.balanced, timeout_s=20)
    assert report.deficit_satoshis == 0 and report.difference_satoshis == 0
    del rich
