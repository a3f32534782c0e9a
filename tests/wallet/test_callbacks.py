"""ARC callbacks to the wallet, every service real (chainsim posts them to X-CallbackUrl): a hint that
makes the right worker look now, never evidence. The follower's poll is a minute here, so only a
woken follower can confirm a send within the test's bounds."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import asyncpg
import httpx
import pytest
from google.protobuf.duration_pb2 import Duration
from proofline.wallet.v1 import wallet_pb2

from proofline_kit.settings import EnvReader, SettingsError
from services.wallet.settings import read_wallet_settings
from tests.wallet.conftest import FRONTEND, WalletSuite, eventually, production_env
from tests.wallet.test_sends import send_request

TOKEN = "wallet-callback-token-0123456789"
# Blocks and the mempool read once a minute, sends rechecked once a minute: only a wake-up is prompt.
SLOW_FOLLOWER = {"WALLET_FOLLOW_POLL_MS": "60000", "WALLET_CALLBACK_TOKEN": TOKEN}
PROMPT_S = 15.0
UNCONFIRMED = wallet_pb2.TRANSACTION_STATUS_UNCONFIRMED
CONFIRMED = wallet_pb2.TRANSACTION_STATUS_CONFIRMED


async def _unconfirmed_send(suite: WalletSuite) -> wallet_pb2.Transaction:
    """A send accepted by the chain, from a wallet whose follower polls once a minute (funded
    first with the fast one: crediting the deposit is the follower's job too)."""
    account, _ = await suite.funded_account(50_000)
    await suite.stop_wallet()
    await suite.start_wallet(**SLOW_FOLLOWER)
    sent = await suite.stub.Send(
        send_request(account.account_id, 10_000, wait_for=UNCONFIRMED, wait_timeout=Duration(seconds=20)),
        metadata=FRONTEND,
        timeout=30,
    )
    assert sent.transaction.status == UNCONFIRMED, sent.transaction
    return sent.transaction


async def _status(suite: WalletSuite, transaction_id: str) -> wallet_pb2.Transaction:
    response = await suite.stub.GetTransaction(
        wallet_pb2.GetTransactionRequest(transaction_id=transaction_id), metadata=FRONTEND
    )
    return response.transaction


async def _row(db: asyncpg.Connection, transaction_id: str) -> dict[str, Any]:
    row = await db.fetchrow(
        "SELECT status, next_attempt_at, block_hash, fence, row_version, updated_at,"
        " (SELECT count(*) FROM tx_audit a WHERE a.transaction_id = t.transaction_id) AS audits"
        " FROM wallet_txs t WHERE transaction_id = $1",
        transaction_id,
    )
    assert row is not None
    return dict(row)


async def _scanned_tip(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT coalesce(max(height), -1) FROM scanned_blocks"))


def _callback_metrics(suite: WalletSuite) -> tuple[float, float]:
    assert suite.wallet is not None
    registry = suite.wallet.registry
    received = registry.get_sample_value("wallet_arc_callback_statuses_total") or 0.0
    nudged = registry.get_sample_value("wallet_arc_callback_nudges_total") or 0.0
    return received, nudged


async def test_a_mined_callback_wakes_the_follower_and_the_send_confirms_at_once(
    suite: WalletSuite, wallet_db: asyncpg.Connection
) -> None:
    tx = await _unconfirmed_send(suite)
    assert suite.wallet is not None and suite.wallet.callbacks is not None
    assert suite.wallet.callback_url is not None and suite.wallet.callback_url.endswith("/v1/arc/callback")
    started = time.monotonic()
    [block] = await suite.sim.mine(1)
    assert tx.txid in block["txids"]
    confirmed = await eventually(
        lambda: _status(suite, tx.transaction_id), lambda t: t.status == CONFIRMED, timeout_s=PROMPT_S
    )
    assert time.monotonic() - started < PROMPT_S  # the follower's own poll is a minute away
    assert confirmed.block_hash == block["hash"] and confirmed.confirmations >= 1
    # ARC called back with MINED, to the URL the broadcast registered, with our token.
    delivered = [c for c in await suite.sim.callbacks(tx.txid) if c["state"] == "delivered"]
    assert [c["txStatus"] for c in delivered] == ["MINED"], delivered
    assert delivered[0]["url"] == suite.wallet.callback_url and delivered[0]["token"] == TOKEN
    assert suite.wallet.callbacks.received >= 1 and suite.wallet.callbacks.unauthorized == 0
    received, nudged = _callback_metrics(suite)
    assert received >= 1 and nudged == 0  # MINED wakes the follower; it makes no send due
    # The follower decided, on the block it scanned (merkle root checked against the header).
    actors = await wallet_db.fetch(
        "SELECT actor FROM tx_audit WHERE transaction_id = $1 AND to_status = 'confirmed'", tx.transaction_id
    )
    assert [r["actor"] for r in actors] == ["wallet-deposits"]
    assert await wallet_db.fetchval("SELECT merkle_path FROM wallet_txs WHERE transaction_id = $1", tx.transaction_id)
    await suite.assert_reconciled()


async def test_a_callback_needs_the_token_and_is_a_hint_not_evidence(
    suite: WalletSuite, wallet_db: asyncpg.Connection
) -> None:
    tx = await _unconfirmed_send(suite)
    assert suite.wallet is not None and suite.wallet.callbacks is not None
    url = suite.wallet.callback_url
    assert url is not None
    # A block without our send, which the sleeping follower has not scanned.
    [empty] = await suite.sim._post("mine", {"blocks": 1, "exclude_txids": [tx.txid]})
    assert tx.txid not in empty["txids"]
    before, tip = await _row(wallet_db, tx.transaction_id), await _scanned_tip(wallet_db)
    assert tip == empty["height"] - 1
    claim = {
        "txid": tx.txid,
        "txStatus": "MINED",
        "blockHash": empty["hash"],
        "blockHeight": empty["height"],
        "merklePath": "fe" + "00" * 40,
        "timestamp": "2025-01-01T00:00:00Z",
    }
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        assert (await http.post(url, json=claim)).status_code == 401
        wrong = {"Authorization": "Bearer not-the-token"}
        assert (await http.post(url, json={"count": 1, "callbacks": [claim]}, headers=wrong)).status_code == 401
        # A txid that is not one of our sends': ignored.
        stranger = {**claim, "txid": os.urandom(32).hex()}
        answer = await http.post(url, json=stranger, headers=auth)
        assert answer.status_code == 200 and answer.json() == {"received": 1, "changed": 0}
        await asyncio.sleep(1.0)  # time for a wrong wake-up to show
        assert await _row(wallet_db, tx.transaction_id) == before
        assert await _scanned_tip(wallet_db) == tip  # nobody woke the follower
        assert (suite.wallet.callbacks.unauthorized, suite.wallet.callbacks.received) == (2, 1)
        assert _callback_metrics(suite) == (1.0, 0.0)
        # The right token and our txid, but a false claim: the send is in no block. The follower
        # wakes and scans the block now (not in a minute), finds no send in it and confirms nothing.
        answer = await http.post(url, json=claim, headers=auth)
        assert answer.status_code == 200 and answer.json() == {"received": 1, "changed": 0}
    await eventually(lambda: _scanned_tip(wallet_db), lambda height: height == empty["height"], timeout_s=PROMPT_S)
    after = await _row(wallet_db, tx.transaction_id)
    assert (after["status"], after["block_hash"]) == ("unconfirmed", None)
    assert (await _status(suite, tx.transaction_id)).status == UNCONFIRMED
    assert _callback_metrics(suite) == (2.0, 0.0)
    # News of trouble (a double spend attempted) makes the accepted send due for a recheck now; the
    # recheck finds it on the chain and leaves it UNCONFIRMED.
    trouble = {**claim, "txStatus": "DOUBLE_SPEND_ATTEMPTED", "competingTxs": [os.urandom(32).hex()]}
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        answer = await http.post(url, json=trouble, headers=auth)
    assert answer.status_code == 200 and answer.json() == {"received": 1, "changed": 1}
    assert _callback_metrics(suite) == (3.0, 1.0)
    assert (await _status(suite, tx.transaction_id)).status == UNCONFIRMED
    await suite.assert_reconciled()


def test_the_callback_settings_follow_the_publishers_rules() -> None:
    base = {"DATABASE_URL": "postgresql://x@127.0.0.1/x", "WOC_URL": "http://127.0.0.1:1"}
    dev = read_wallet_settings(EnvReader(base))
    again = read_wallet_settings(EnvReader(base))
    assert dev.callbacks.enabled and dev.callbacks.batch and dev.callbacks.port == 8754
    assert dev.callbacks.host == dev.service.grpc_host and dev.callbacks.public_url is None
    assert len(dev.callbacks.token) == 32 and dev.callbacks.token != again.callbacks.token  # random per process
    assert dev.chain.woc_bulk_concurrency == 4
    production = production_env(without=("WALLET_CALLBACK_TOKEN",))
    with pytest.raises(SettingsError, match="WALLET_CALLBACK_TOKEN required in production"):
        read_wallet_settings(EnvReader(production))
    without_publisher = {k: v for k, v in production.items() if k != "WALLET_PUBLISHER_TOKEN"}
    with pytest.raises(SettingsError, match="WALLET_PUBLISHER_TOKEN, WALLET_CALLBACK_TOKEN required in production"):
        read_wallet_settings(EnvReader(without_publisher))
    assert not read_wallet_settings(EnvReader({**production, "WALLET_CALLBACK_ENABLED": "0"})).callbacks.enabled
    set_up = read_wallet_settings(
        EnvReader(
            {
                **production,
                "WALLET_CALLBACK_TOKEN": TOKEN,
                "WALLET_CALLBACK_PORT": "0",
                "WALLET_CALLBACK_URL": "https://wallet.example/v1/arc/callback",
                "WALLET_CALLBACK_BATCH": "0",
                "WALLET_WOC_BULK_CONCURRENCY": "1",
            }
        )
    )
    assert (set_up.callbacks.token, set_up.callbacks.port, set_up.callbacks.batch) == (TOKEN, 0, False)
    assert set_up.callbacks.public_url == "https://wallet.example/v1/arc/callback"
    assert set_up.chain.woc_bulk_concurrency == 1
    assert TOKEN not in repr(set_up) and "publisher-token-01" not in repr(set_up)
