"""Missing inputs per profile, orphan promotion and expiry (arc-woc.md §6.10 items 10-12)."""

from __future__ import annotations

import httpx

from services.chainsim.settings import Profile
from tests.chainsim.conftest import SimFactory
from tests.chainsim.helpers import Key, Receiver, coins_of, ef_hex, fund, spend


async def test_spend_after_mined_is_orphan_then_expires(client: httpx.AsyncClient, alice: Key, bob: Key) -> None:
    [coin] = await fund(client, alice)
    tx1 = spend(coin, bob, fee=1)
    assert (await client.post("/v1/tx", json={"rawTx": ef_hex(tx1)})).json()["txStatus"] == "SEEN_ON_NETWORK"
    await client.post("/_sim/mine", json={})
    late = spend(coin, bob, fee=2)
    r = (await client.post("/v1/tx", json={"rawTx": ef_hex(late)})).json()
    assert r["txStatus"] == "SEEN_IN_ORPHAN_MEMPOOL" and r["competingTxs"] is None
    woc = await client.post("/v1/bsv/test/tx/raw", json={"txhex": late.hex()})
    assert woc.status_code == 500 and woc.text == "unexpected response code 500: Transaction already in the mempool"
    other = spend(coin, bob, fee=3)
    woc = await client.post("/v1/bsv/test/tx/raw", json={"txhex": other.hex()})
    assert woc.status_code == 500 and woc.text == "unexpected response code 500: Missing inputs"
    assert (await client.get(f"/v1/tx/{other.txid()}")).status_code == 404
    state = (await client.get("/_sim/state")).json()
    assert late.txid() in state["orphan_txids"]
    r = (await client.post("/_sim/clock", json={"advance_s": 590})).json()
    assert r["expired_orphans"] == 0
    r = (await client.post("/_sim/clock", json={"advance_s": 15})).json()
    assert r["expired_orphans"] == 1
    got = (await client.get(f"/v1/tx/{late.txid()}")).json()
    assert got["txStatus"] == "REJECTED" and got["extraInfo"] == "discarded from mempool: orphan expired"


async def test_strict_profile_rejects_missing_inputs(sim_factory: SimFactory, alice: Key, bob: Key) -> None:
    sim = await sim_factory(profile=Profile.STRICT)
    async with httpx.AsyncClient(base_url=sim.base_url, trust_env=False) as client:
        [coin] = await fund(client, alice)
        tx1 = spend(coin, bob, fee=1)
        await client.post("/v1/tx", json={"rawTx": ef_hex(tx1)})
        await client.post("/_sim/mine", json={})
        late = spend(coin, bob, fee=2)
        r = (await client.post("/v1/tx", json={"rawTx": ef_hex(late)})).json()
        assert r["txStatus"] == "REJECTED" and r["extraInfo"] == "invalid transaction: missing inputs"
        [unknown_parent] = coins_of(spend(coins_of(tx1, bob)[0], alice), alice)
        r = (await client.post("/v1/tx", json={"rawTx": ef_hex(spend(unknown_parent))})).json()
        assert r["txStatus"] == "REJECTED"
        assert (await client.get("/_sim/state")).json()["orphans"] == 0


async def test_reversed_chain_is_orphaned_then_promoted(
    client: httpx.AsyncClient, receiver: Receiver, alice: Key
) -> None:
    [coin] = await fund(client, alice)
    chain = []
    current = coin
    for _ in range(5):
        tx = spend(current)
        chain.append(tx)
        [current] = coins_of(tx, alice)
    headers = {"X-CallbackUrl": receiver.url, "X-FullStatusUpdates": "true"}
    children = [{"rawTx": ef_hex(t)} for t in reversed(chain[1:])]
    r = await client.post("/v1/txs", json=children, headers=headers)
    assert [x["txStatus"] for x in r.json()] == ["SEEN_IN_ORPHAN_MEMPOOL"] * 4
    assert (await client.get("/_sim/state")).json()["orphans"] == 4
    r = await client.post("/v1/txs", json=[{"rawTx": ef_hex(chain[0])}], headers=headers)
    assert r.json()[0]["txStatus"] == "SEEN_ON_NETWORK"
    for tx in chain:
        assert (await client.get(f"/v1/tx/{tx.txid()}")).json()["txStatus"] == "SEEN_ON_NETWORK"
    state = (await client.get("/_sim/state")).json()
    assert state["orphans"] == 0 and state["mempool"] == 5
    await receiver.wait_for(lambda: all(len(receiver.statuses(t.txid())) == 2 for t in chain[1:]))
    for tx in chain[1:]:
        assert receiver.statuses(tx.txid()) == ["SEEN_IN_ORPHAN_MEMPOOL", "SEEN_ON_NETWORK"]
    await client.post("/_sim/mine", json={})
    for tx in chain:
        assert (await client.get(f"/v1/tx/{tx.txid()}")).json()["txStatus"] == "MINED"


async def test_woc_first_then_arc_double_spend(client: httpx.AsyncClient, alice: Key, bob: Key) -> None:
    [coin] = await fund(client, alice)
    tx1, tx2 = spend(coin, bob, fee=1), spend(coin, bob, fee=2)
    woc = await client.post("/v1/bsv/test/tx/raw", json={"txhex": tx1.hex()})
    assert woc.status_code == 200 and woc.text == tx1.txid()
    again = await client.post("/v1/bsv/test/tx/raw", json={"txhex": tx1.hex()})
    assert again.status_code == 500 and "Transaction already in the mempool" in again.text
    r = (await client.post("/v1/tx", json={"rawTx": ef_hex(tx2)})).json()
    assert r["txStatus"] == "DOUBLE_SPEND_ATTEMPTED" and r["competingTxs"] == [tx1.txid()]
    await client.post("/_sim/mine", json={})
    got = (await client.get(f"/v1/tx/{tx2.txid()}")).json()
    assert got["txStatus"] == "REJECTED" and got["extraInfo"] == "double spend attempted"
    assert (await client.get(f"/v1/tx/{tx1.txid()}")).json()["txStatus"] == "MINED"
    mined = await client.post("/v1/bsv/test/tx/raw", json={"txhex": tx1.hex()})
    assert mined.status_code == 500 and "txn-already-known" in mined.text


async def test_woc_rejections_store_nothing(client: httpx.AsyncClient, alice: Key, bob: Key) -> None:
    [coin] = await fund(client, alice)
    no_fee = spend(coin, bob, fee=0)
    r = await client.post("/v1/bsv/test/tx/raw", json={"txhex": no_fee.hex()})
    assert r.status_code == 500 and r.text == "unexpected response code 500: 66: mempool min fee not met"
    assert (await client.get(f"/v1/tx/{no_fee.txid()}")).status_code == 404
    thief = spend(coin.__class__(coin.txid, coin.vout, coin.satoshis, coin.script, bob, coin.parent_hex))
    r = await client.post("/v1/bsv/test/tx/raw", json={"txhex": thief.hex()})
    assert r.status_code == 500 and "16: mandatory-script-verify-flag-failed" in r.text
    r = await client.post("/v1/bsv/test/tx/raw", json={"txhex": "zz"})
    assert r.status_code == 500 and "TX decode failed" in r.text
    ok = spend(coin, bob)
    assert (await client.post("/v1/bsv/test/tx/raw", json={"txhex": ok.hex()})).text == ok.txid()


async def test_coinbase_maturity(sim_factory: SimFactory, alice: Key, bob: Key) -> None:
    sim = await sim_factory(miner_script_hex=alice.lock.hex())
    async with httpx.AsyncClient(base_url=sim.base_url, trust_env=False) as client:
        block = (await client.post("/_sim/mine", json={})).json()[0]
        cb_txid = block["txids"][0]
        raw = (await client.get(f"/v1/bsv/test/tx/{cb_txid}/hex")).text
        from tests.chainsim.helpers import Coin

        coin = Coin(cb_txid, 0, 50 * 100_000_000, alice.lock, alice, raw)
        early = spend(coin, bob)
        r = (await client.post("/v1/tx", json={"rawTx": ef_hex(early)})).json()
        assert r["txStatus"] == "REJECTED"
        assert r["extraInfo"] == "invalid transaction: bad-txns-premature-spend-of-coinbase"
        await client.post("/_sim/mine", json={"blocks": 99})
        later = spend(coin, bob, fee=2)
        r = (await client.post("/v1/tx", json={"rawTx": ef_hex(later)})).json()
        assert r["txStatus"] == "SEEN_ON_NETWORK"


async def test_long_reversed_chain_promotes_without_recursion(client: httpx.AsyncClient, alice: Key) -> None:
    [coin] = await fund(client, alice, 1_000_000)
    chain = []
    current = coin
    for _ in range(1_500):
        tx = spend(current)
        chain.append(tx)
        [current] = coins_of(tx, alice)
    r = await client.post("/v1/txs", json=[{"rawTx": ef_hex(t)} for t in reversed(chain)])
    assert len(r.json()) == 1_500
    state = (await client.get("/_sim/state")).json()
    assert state["orphans"] == 0 and state["mempool"] == 1_500
    assert (await client.get(f"/v1/tx/{chain[-1].txid()}")).json()["txStatus"] == "SEEN_ON_NETWORK"
