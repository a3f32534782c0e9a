"""Who spends an outpoint (WhatsOnChain ``POST /utxos/spent``) against a live chainsim."""

from __future__ import annotations

import httpx
import pytest

from proofline_kit.chain import ChainUnavailable, OutpointSpend, RetryPolicy, SpendState, WocClient
from proofline_kit.wire import Outpoint
from tests.chain_clients.conftest import RequestLog, woc_config
from tests.chain_clients.sim import SimControl
from tests.chain_clients.wallet import Coin, Key, build, coins_of, pay

pytestmark = pytest.mark.timeout(60)


def op(coin: Coin) -> Outpoint:
    return Outpoint(coin.txid, coin.vout)


async def test_unspent_mempool_and_mined_spends(
    sim: SimControl, woc: WocClient, request_log: RequestLog, alice: Key, bob: Key
) -> None:
    coins = await sim.fund(alice, satoshis=5_000, count=4)
    mined = pay(coins[0], bob)
    assert (await woc.broadcast(mined)).accepted
    await sim.mine()
    pending = build([coins[1], coins[2]], [(9_000, bob.lock)])  # coins[2] is its input 1
    assert (await woc.broadcast(pending)).accepted
    [fresh] = coins_of(pending, bob)  # an output of a mempool tx, unspent
    unknown = Outpoint("ef" * 32, 0)

    spends = await woc.spenders([op(coins[0]), op(coins[2]), op(coins[3]), op(fresh), unknown, op(coins[0])])

    assert request_log.count("POST", "/utxos/spent") == 1
    assert list(spends) == [op(coins[0]), op(coins[2]), op(coins[3]), op(fresh), unknown]
    assert spends[op(coins[0])] == OutpointSpend(op(coins[0]), SpendState.SPENT, mined.txid, 0, True)
    assert spends[op(coins[2])] == OutpointSpend(op(coins[2]), SpendState.SPENT, pending.txid, 1, False)
    assert spends[op(coins[3])].state is SpendState.UNSPENT
    assert spends[op(coins[3])].spender_txid is None
    assert spends[op(fresh)].state is SpendState.UNSPENT
    assert spends[unknown].state is SpendState.UNKNOWN


async def test_a_spend_that_leaves_the_chain(sim: SimControl, woc: WocClient, alice: Key, bob: Key) -> None:
    [coin] = await sim.fund(alice)
    tx = pay(coin, bob)
    assert (await woc.broadcast(tx)).accepted
    await sim.mine()
    assert (await woc.spenders([op(coin)]))[op(coin)].spender_confirmed is True

    await sim.reorg(1, drop=[tx.txid])  # back in the mempool

    [spend] = (await woc.spenders([op(coin)])).values()
    assert (spend.state, spend.spender_txid, spend.spender_confirmed) == (SpendState.SPENT, tx.txid, False)


async def test_many_outpoints_go_in_chunks_of_twenty(
    sim: SimControl, woc: WocClient, request_log: RequestLog, alice: Key, bob: Key
) -> None:
    coins = await sim.fund(alice, satoshis=1_000, count=25)
    spent = [pay(c, bob) for c in coins[:3]]
    for tx in spent:
        assert (await woc.broadcast(tx)).accepted

    spends = await woc.spenders([op(c) for c in coins])

    assert request_log.count("POST", "/utxos/spent") == 2  # 20 + 5
    assert [spends[op(c)].spender_txid for c in coins[:3]] == [tx.txid for tx in spent]
    assert all(spends[op(c)].state is SpendState.UNSPENT for c in coins[3:])
    assert await woc.spenders([]) == {}
    assert request_log.count("POST", "/utxos/spent") == 2


async def test_chain_unavailable_after_retries(
    sim: SimControl, woc: WocClient, request_log: RequestLog, alice: Key
) -> None:
    [coin] = await sim.fund(alice)
    await sim.faults({"rules": [{"face": "woc", "match": {"path": "/utxos/spent"}, "action": "http:503"}]})

    with pytest.raises(ChainUnavailable) as caught:
        await woc.spenders([op(coin)])

    assert caught.value.http_status == 503
    assert caught.value.attempts == 3
    assert request_log.count("POST", "/utxos/spent") == 3


async def test_a_transient_failure_is_retried(
    sim: SimControl, http: httpx.AsyncClient, request_log: RequestLog, alice: Key, bob: Key
) -> None:
    woc = WocClient(http, woc_config(sim.base_url, retry=RetryPolicy(max_attempts=3, base_delay_s=0.01)))
    [coin] = await sim.fund(alice)
    tx = pay(coin, bob)
    assert (await woc.broadcast(tx)).accepted
    await sim.faults({"rules": [{"face": "woc", "action": "http:502", "times": 1}]})

    spends = await woc.spenders([op(coin)])

    assert spends[op(coin)].spender_txid == tx.txid
    assert request_log.count("POST", "/utxos/spent") == 2


async def test_an_unreachable_provider_is_unavailable(http: httpx.AsyncClient) -> None:
    woc = WocClient(http, woc_config("http://127.0.0.1:9", retry=RetryPolicy(max_attempts=2, base_delay_s=0.01)))

    with pytest.raises(ChainUnavailable):
        await woc.spenders([Outpoint("ab" * 32, 0)])
