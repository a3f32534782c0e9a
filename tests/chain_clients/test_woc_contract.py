"""WhatsOnChain lookups against a live chainsim: UTXO paging, chain tip, headers, bulk status."""

from __future__ import annotations

import httpx
import pytest

from proofline_kit.chain import TxChainState, UtxoScope, WocClient
from tests.chain_clients.conftest import RequestLog
from tests.chain_clients.sim import SimControl
from tests.chain_clients.wallet import Key, coins_of, pay

pytestmark = pytest.mark.timeout(60)


async def test_unspent_listing_follows_pages(
    sim: SimControl, woc: WocClient, request_log: RequestLog, alice: Key
) -> None:
    coins = await sim.fund(alice, satoshis=1_000, count=7)  # chainsim pages hold 3 entries here

    utxos = await woc.list_unspent(alice.address)

    assert request_log.count("GET", f"/address/{alice.address}/unspent/all") == 3
    assert sorted((u.txid, u.vout) for u in utxos) == sorted((c.txid, c.vout) for c in coins)
    assert all(u.satoshis == 1_000 and u.confirmed and not u.spent_in_mempool for u in utxos)
    assert all(isinstance(u.satoshis, int) for u in utxos)


async def test_unspent_scopes_and_mempool_spends(sim: SimControl, woc: WocClient, alice: Key, bob: Key) -> None:
    coins = await sim.fund(alice, satoshis=5_000, count=2)
    tx = pay(coins[0], alice, fee=1)
    assert (await woc.broadcast(tx)).accepted

    confirmed = await woc.list_unspent(alice.address, UtxoScope.CONFIRMED)
    unconfirmed = await woc.list_unspent(alice.address, UtxoScope.UNCONFIRMED)
    everything = await woc.list_unspent(alice.address, UtxoScope.ALL)

    assert {(u.txid, u.vout) for u in confirmed} == {(c.txid, c.vout) for c in coins}
    spent = next(u for u in confirmed if u.vout == coins[0].vout)
    assert spent.spent_in_mempool
    [change] = unconfirmed
    assert (change.txid, change.satoshis, change.height) == (tx.txid, 4_999, None)
    assert change.script_hex == alice.lock.hex()
    assert len(everything) == 3
    assert await woc.list_unspent(bob.address) == []


async def test_single_page_with_token(sim: SimControl, woc: WocClient, alice: Key) -> None:
    await sim.fund(alice, satoshis=700, count=4)

    first = await woc.unspent_page(alice.address)
    assert first.next_token is not None
    second = await woc.unspent_page(alice.address, token=first.next_token)

    assert len(first.utxos) == 3
    assert len(second.utxos) == 1
    assert second.next_token is None


async def test_chain_tip_and_headers(sim: SimControl, woc: WocClient) -> None:
    blocks = await sim.mine(3)

    tip = await woc.chain_tip()
    header = await woc.block_header(tip.height)
    by_hash = await woc.block_header(tip.block_hash)

    assert (tip.height, tip.block_hash) == (blocks[-1]["height"], blocks[-1]["hash"])
    assert header == by_hash
    assert header is not None
    assert header.previous_hash == blocks[-2]["hash"]
    assert header.confirmations == 1
    assert len(header.merkle_root) == 64
    assert await woc.block_header(tip.height + 5) is None


async def test_bulk_status_three_shapes_in_chunks(
    sim: SimControl, woc: WocClient, request_log: RequestLog, alice: Key, bob: Key
) -> None:
    coins = await sim.fund(alice, count=2)
    mined, pending = pay(coins[0], bob), pay(coins[1], bob)
    assert (await woc.broadcast(mined)).accepted
    await sim.mine(2)
    assert (await woc.broadcast(pending)).accepted
    unknown = [f"{i:064x}" for i in range(1, 24)]

    statuses = await woc.tx_statuses([mined.txid, pending.txid, *unknown, mined.txid])

    assert request_log.count("POST", "/txs/status") == 2  # 25 distinct ids -> 20 + 5
    assert list(statuses)[:2] == [mined.txid, pending.txid]
    assert statuses[mined.txid].state is TxChainState.MINED
    assert statuses[mined.txid].confirmations == 2
    assert statuses[pending.txid].state is TxChainState.MEMPOOL
    assert statuses[pending.txid].block_hash is None
    assert all(statuses[t].state is TxChainState.UNKNOWN for t in unknown)


async def test_raw_tx_lookup(sim: SimControl, woc: WocClient, alice: Key, bob: Key) -> None:
    [coin] = await sim.fund(alice)
    tx = pay(coin, bob)
    [change] = coins_of(tx, bob)
    assert (await woc.broadcast(tx)).accepted

    assert await woc.raw_tx(tx.txid) == tx.raw
    assert await woc.raw_tx("ef" * 32) is None
    assert change.satoshis == coin.satoshis - 1


async def test_api_key_headers(sim: SimControl, woc: WocClient, request_log: RequestLog) -> None:
    await woc.chain_tip()

    [request] = request_log.requests
    assert request.headers["woc-api-key"] == "testnet_key"
    assert isinstance(request, httpx.Request)
