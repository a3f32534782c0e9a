"""Mining, BUMP paths, reorgs and stale forks (arc-woc.md §6.5, §6.6, §6.10 item 14)."""

from __future__ import annotations

import httpx
from bsv import MerklePath

from tests.chainsim.helpers import Key, Receiver, build, coins_of, ef_hex, fund, spend


async def _status(client: httpx.AsyncClient, txid: str) -> dict[str, object]:
    body: dict[str, object] = (await client.get(f"/v1/tx/{txid}")).json()
    return body


async def _root(client: httpx.AsyncClient, block: str | int) -> str:
    root: str = (await client.get(f"/v1/bsv/test/block/{block}/header")).json()["merkleroot"]
    return root


async def test_merkle_paths_verify_for_every_position(client: httpx.AsyncClient, alice: Key) -> None:
    # 1..9 mempool txs + coinbase: odd and even level sizes, the duplicated last node included
    coins = await fund(client, alice, 5_000, count=9)
    for n in range(1, 10):
        txs = [spend(c, fee=n) for c in coins[:n]]  # distinct fees -> distinct txids per round
        r = await client.post("/v1/txs", json=[{"rawTx": ef_hex(t)} for t in txs])
        assert {x["txStatus"] for x in r.json()} == {"SEEN_ON_NETWORK"}
        block = (await client.post("/_sim/mine", json={})).json()[0]
        assert len(block["txids"]) == n + 1
        root = await _root(client, block["hash"])
        for tx in txs:
            st = await _status(client, tx.txid())
            path = MerklePath.from_hex(str(st["merklePath"]))
            assert path.compute_root(tx.txid()) == root
        coins = [coins_of(t, alice)[0] for t in txs] + coins[n:]


async def test_mine_selected_and_excluded(client: httpx.AsyncClient, alice: Key) -> None:
    coins = await fund(client, alice, count=3)
    a, b, c = (spend(x) for x in coins)
    [a_out] = coins_of(a, alice)
    a_child = spend(a_out)
    for tx in (a, b, c, a_child):
        await client.post("/v1/tx", json={"rawTx": ef_hex(tx)})
    block = (await client.post("/_sim/mine", json={"txids": [a_child.txid()]})).json()[0]
    assert block["txids"][1:] == [a.txid(), a_child.txid()]  # the unmined parent comes along
    block = (await client.post("/_sim/mine", json={"exclude_txids": [b.txid()]})).json()[0]
    assert block["txids"][1:] == [c.txid()]
    assert (await _status(client, b.txid()))["txStatus"] == "SEEN_ON_NETWORK"
    blocks = (await client.post("/_sim/mine", json={"blocks": 3})).json()
    assert [len(x["txids"]) for x in blocks] == [2, 1, 1]
    info = (await client.get("/v1/bsv/test/chain/info")).json()
    assert info["blocks"] == blocks[-1]["height"] and info["bestblockhash"] == blocks[-1]["hash"]
    r = await client.post("/_sim/mine", json={"txids": ["00" * 32]})
    assert r.status_code == 400


async def test_reorg_moves_a_tx_to_a_new_block(client: httpx.AsyncClient, receiver: Receiver, alice: Key) -> None:
    coins = await fund(client, alice, count=2)
    both, dropped = spend(coins[0]), spend(coins[1])
    for tx in (both, dropped):
        await client.post("/v1/tx", json={"rawTx": ef_hex(tx)}, headers={"X-CallbackUrl": receiver.url})
    old = (await client.post("/_sim/mine", json={})).json()[0]
    await receiver.wait_for(lambda: len(receiver.calls) == 2)
    result = (await client.post("/_sim/reorg", json={"depth": 1, "drop_txids": [dropped.txid()]})).json()
    assert [b["hash"] for b in result["stale"]] == [old["hash"]]
    assert len(result["new"]) == 2 and result["tip"]["height"] == old["height"] + 1
    assert result["remined"] == [both.txid()] and result["stale_only"] == [dropped.txid()]
    new_block = result["new"][0]
    moved = await _status(client, both.txid())
    assert moved["txStatus"] == "MINED" and moved["blockHash"] == new_block["hash"] != old["hash"]
    path = MerklePath.from_hex(str(moved["merklePath"]))
    assert path.compute_root(both.txid()) == await _root(client, new_block["hash"])
    back = await _status(client, dropped.txid())
    assert back["txStatus"] == "MINED_IN_STALE_BLOCK" and back["blockHash"] == old["hash"]
    assert dropped.txid() in (await client.get("/_sim/state")).json()["mempool_txids"]
    listing = (await client.get(f"/v1/bsv/test/address/{alice.address}/unspent/all")).json()["result"]
    assert [u["status"] for u in listing if u["tx_hash"] == dropped.txid()] == ["unconfirmed"]
    assert [u["status"] for u in listing if u["tx_hash"] == both.txid()] == ["confirmed"]
    await receiver.wait_for(lambda: len(receiver.calls) == 4)
    assert receiver.statuses(both.txid()) == ["MINED", "MINED"]
    mined_calls = [b for _, b in receiver.calls if b["txid"] == both.txid()]
    assert [c["blockHash"] for c in mined_calls] == [old["hash"], new_block["hash"]]
    assert receiver.statuses(dropped.txid()) == ["MINED", "MINED_IN_STALE_BLOCK"]
    stale_call = next(b for _, b in receiver.calls if b["txStatus"] == "MINED_IN_STALE_BLOCK")
    assert stale_call["blockHash"] == old["hash"]
    again = (await client.post("/_sim/mine", json={})).json()[0]
    assert dropped.txid() in again["txids"]
    assert (await _status(client, dropped.txid()))["txStatus"] == "MINED"
    await receiver.wait_for(lambda: len(receiver.calls) == 5)
    tips = (await client.get("/v1/bsv/test/chain/tips")).json()
    assert tips[0]["status"] == "active" and tips[0]["hash"] == again["hash"]
    assert {"hash": old["hash"], "status": "valid-fork", "branchlen": 1, "height": old["height"]} in tips
    stale_header = (await client.get(f"/v1/bsv/test/block/{old['hash']}/header")).json()
    assert stale_header["confirmations"] == -1


async def test_reorg_with_a_conflicting_tx_orphans_the_loser(client: httpx.AsyncClient, alice: Key, bob: Key) -> None:
    [coin] = await fund(client, alice)
    tx1, tx2 = spend(coin, bob, fee=1), spend(coin, bob, fee=2)
    await client.post("/v1/tx", json={"rawTx": ef_hex(tx1)})
    r = (await client.post("/v1/tx", json={"rawTx": ef_hex(tx2)})).json()
    assert r["txStatus"] == "DOUBLE_SPEND_ATTEMPTED"
    await client.post("/_sim/mine", json={})
    assert (await _status(client, tx2.txid()))["txStatus"] == "REJECTED"
    result = (await client.post("/_sim/reorg", json={"depth": 1, "include_txids": [tx2.txid()]})).json()
    assert tx2.txid() in result["new"][0]["txids"] and tx1.txid() not in result["new"][0]["txids"]
    assert (await _status(client, tx2.txid()))["txStatus"] == "MINED"
    loser = await _status(client, tx1.txid())
    assert loser["txStatus"] == "SEEN_IN_ORPHAN_MEMPOOL"
    spent = (await client.get(f"/v1/bsv/test/tx/{coin.txid}/{coin.vout}/spent")).json()
    assert spent == {"txid": tx2.txid(), "vin": 0, "status": "confirmed"}


async def test_stale_fork_keeps_the_longest_chain(client: httpx.AsyncClient, receiver: Receiver, alice: Key) -> None:
    [coin] = await fund(client, alice)
    tx = spend(coin)
    await client.post("/v1/tx", json={"rawTx": ef_hex(tx)}, headers={"X-CallbackUrl": receiver.url})
    await client.post("/_sim/mine", json={"blocks": 2, "exclude_txids": [tx.txid()]})
    tip = (await client.get("/v1/bsv/test/chain/info")).json()
    fork = (await client.post("/_sim/fork", json={"depth": 2, "blocks": 1, "txids": [tx.txid()]})).json()
    assert len(fork) == 1 and tx.txid() in fork[0]["txids"]
    after = (await client.get("/v1/bsv/test/chain/info")).json()
    assert after["bestblockhash"] == tip["bestblockhash"]
    st = await _status(client, tx.txid())
    assert st["txStatus"] == "MINED_IN_STALE_BLOCK" and st["blockHash"] == fork[0]["hash"]
    assert tx.txid() in (await client.get("/_sim/state")).json()["mempool_txids"]
    tips = (await client.get("/v1/bsv/test/chain/tips")).json()
    assert any(t["hash"] == fork[0]["hash"] and t["status"] == "valid-fork" for t in tips)
    await receiver.wait_for(lambda: receiver.statuses(tx.txid()) == ["MINED_IN_STALE_BLOCK"])
    await client.post("/_sim/mine", json={})
    assert (await _status(client, tx.txid()))["txStatus"] == "MINED"
    await receiver.wait_for(lambda: receiver.statuses(tx.txid()) == ["MINED_IN_STALE_BLOCK", "MINED"])
    r = await client.post("/_sim/fork", json={"depth": 1, "blocks": 2})
    assert r.status_code == 400


async def test_evict_rejects_descendants(client: httpx.AsyncClient, alice: Key) -> None:
    [coin] = await fund(client, alice)
    parent = spend(coin)
    child = spend(coins_of(parent, alice)[0])
    for tx in (parent, child):
        await client.post("/v1/tx", json={"rawTx": ef_hex(tx)})
    r = (await client.post(f"/_sim/tx/{parent.txid()}/evict", json={"reason": "too-long-mempool-chain"})).json()
    assert r["evicted"] == [parent.txid(), child.txid()]
    for tx in (parent, child):
        st = await _status(client, tx.txid())
        assert st["txStatus"] == "REJECTED" and st["extraInfo"] == "discarded from mempool: too-long-mempool-chain"
    state = (await client.get("/_sim/state")).json()
    assert state["mempool"] == 0
    again = spend(coin, fee=5)
    assert (await client.post("/v1/tx", json={"rawTx": ef_hex(again)})).json()["txStatus"] == "SEEN_ON_NETWORK"


async def test_fund_unconfirmed_and_reset(client: httpx.AsyncClient, alice: Key, bob: Key) -> None:
    coins = await fund(client, alice, 7_000, count=2, confirm=False)
    listing = (await client.get(f"/v1/bsv/test/address/{alice.address}/unconfirmed/unspent")).json()
    assert [u["value"] for u in listing["result"]] == [7_000, 7_000]
    tx = build(coins, [(13_000, bob.lock)], change=alice)
    assert (await client.post("/v1/tx", json={"rawTx": ef_hex(tx)})).json()["txStatus"] == "SEEN_ON_NETWORK"
    block = (await client.post("/_sim/mine", json={})).json()[0]
    assert block["txids"][1:] == [coins[0].txid, tx.txid()]
    state = (await client.post("/_sim/reset")).json()
    assert state["height"] == 0 and state["transactions"] == 1 and state["mempool"] == 0
    assert (await client.get(f"/v1/tx/{tx.txid()}")).status_code == 404


async def test_reorg_keeps_funding_and_chained_spends(client: httpx.AsyncClient, alice: Key, bob: Key) -> None:
    [coin] = await fund(client, alice, 50_000)  # mined at the tip
    tx = spend(coin, bob)
    await client.post("/v1/tx", json={"rawTx": ef_hex(tx)})
    r = (await client.post("/_sim/reorg", json={"depth": 1})).json()
    assert coin.txid in r["remined"]
    assert (await client.get(f"/v1/tx/{tx.txid()}")).json()["txStatus"] == "SEEN_ON_NETWORK"
    r = (await client.post("/_sim/reorg", json={"depth": 2, "drop_txids": [coin.txid]})).json()
    assert r["stale_only"] == [coin.txid]
    state = (await client.get("/_sim/state")).json()
    assert state["mempool_txids"] == [coin.txid, tx.txid()] and state["orphans"] == 0
    block = (await client.post("/_sim/mine", json={})).json()[0]
    assert block["txids"][1:] == [coin.txid, tx.txid()]
    balance = (await client.get(f"/v1/bsv/test/address/{bob.address}/balance")).json()
    assert balance == {"confirmed": 49_999, "unconfirmed": 0}
