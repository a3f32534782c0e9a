"""WhatsOnChain face (arc-woc.md §5, §6.4, §6.10 items 16, 17)."""

from __future__ import annotations

import hashlib

import httpx

from services.chainsim.chain.merkle import merkle_root
from tests.chainsim.conftest import SimFactory
from tests.chainsim.helpers import Coin, Key, build, coins_of, ef_hex, fund, op_return, spend

W = "/v1/bsv/test"


async def test_paging_2500_utxos(sim_factory: SimFactory, alice: Key) -> None:
    sim = await sim_factory(woc_page_size=1000)
    async with httpx.AsyncClient(base_url=sim.base_url, trust_env=False) as client:
        await fund(client, alice, 1_000, count=2_500)
        seen: list[tuple[str, int]] = []
        pages = 0
        token = None
        while True:
            params: dict[str, str] = {"token": token} if token else {}
            body = (await client.get(f"{W}/address/{alice.address}/unspent/all", params=params)).json()
            pages += 1
            seen += [(u["tx_hash"], u["tx_pos"]) for u in body["result"]]
            assert body["address"] == alice.address and body["error"] == ""
            token = body.get("nextPageToken")
            if token is None:
                break
        assert pages == 3 and len(seen) == 2_500 and len(set(seen)) == 2_500
        confirmed = (await client.get(f"{W}/address/{alice.address}/confirmed/unspent")).json()
        assert len(confirmed["result"]) == 1000 and "nextPageToken" in confirmed
        r = await client.get(f"{W}/address/{alice.address}/unspent/all", params={"token": "garbage!"})
        assert r.status_code == 400


async def test_rate_limit_429(sim_factory: SimFactory) -> None:
    sim = await sim_factory(woc_rate_limit_rps=3.0)
    async with httpx.AsyncClient(base_url=sim.base_url, trust_env=False) as client:
        codes = [(await client.get(f"{W}/chain/info")).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = await client.get(f"{W}/chain/info")
        assert r.status_code == 429 and r.text == "Too Many Requests"
        assert (await client.get("/v1/health")).status_code == 200  # ARC face unaffected


async def test_bulk_status_shapes(client: httpx.AsyncClient, alice: Key) -> None:
    coins = await fund(client, alice, count=2)
    mined, pending = spend(coins[0]), spend(coins[1])
    await client.post("/v1/tx", json={"rawTx": ef_hex(mined)})
    block = (await client.post("/_sim/mine", json={})).json()[0]
    await client.post("/_sim/mine", json={"blocks": 2})
    await client.post("/v1/tx", json={"rawTx": ef_hex(pending)})
    unknown = "cd" * 32
    r = (await client.post(f"{W}/txs/status", json={"txids": [mined.txid(), pending.txid(), unknown]})).json()
    assert r[0]["txid"] == mined.txid() and r[0]["blockhash"] == block["hash"]
    assert r[0]["blockheight"] == block["height"] and r[0]["confirmations"] == 3 and r[0]["blocktime"] > 0
    assert r[1] == {"txid": pending.txid()}
    assert r[2] == {"txid": unknown, "error": "unknown"}
    too_many = await client.post(f"{W}/txs/status", json={"txids": [unknown] * 21})
    assert too_many.status_code == 400


async def test_tx_details_hex_and_proof(client: httpx.AsyncClient, alice: Key, bob: Key) -> None:
    [coin] = await fund(client, alice, 30_000)
    tx = build([coin], [(0, op_return(b"data")), (12_345, bob.lock)], change=alice)
    await client.post("/v1/tx", json={"rawTx": ef_hex(tx)})
    pending = (await client.get(f"{W}/tx/hash/{tx.txid()}")).json()
    assert "blockhash" not in pending and pending["size"] == len(tx.serialize())
    block = (await client.post("/_sim/mine", json={})).json()[0]
    details = (await client.get(f"{W}/tx/{tx.txid()}")).json()
    assert details["txid"] == tx.txid() and details["blockhash"] == block["hash"] and details["confirmations"] == 1
    assert details["vin"][0]["txid"] == coin.txid and details["vin"][0]["vout"] == coin.vout
    assert details["vout"][0]["scriptPubKey"]["type"] == "nulldata" and details["vout"][0]["value"] == 0
    assert details["vout"][1]["value"] == 0.00012345
    assert details["vout"][1]["scriptPubKey"]["addresses"] == [bob.address]
    assert (await client.get(f"{W}/tx/{tx.txid()}/hex")).text == tx.hex()
    assert (await client.get(f"{W}/tx/{'ef' * 32}/hex")).status_code == 404
    proof = (await client.get(f"{W}/tx/{tx.txid()}/proof/tsc")).json()
    assert proof[0]["target"] == block["hash"] and proof[0]["index"] == 1 and proof[0]["txOrId"] == tx.txid()
    leaves = [bytes.fromhex(t)[::-1] for t in block["txids"]]
    header = (await client.get(f"{W}/block/{block['height']}/header")).json()
    assert merkle_root(leaves)[::-1].hex() == header["merkleroot"]
    node = bytes.fromhex(tx.txid())[::-1]
    index = proof[0]["index"]
    for sibling in proof[0]["nodes"]:
        other = node if sibling == "*" else bytes.fromhex(sibling)[::-1]
        pair = node + other if index % 2 == 0 else other + node
        node = hashlib.sha256(hashlib.sha256(pair).digest()).digest()
        index //= 2
    assert node[::-1].hex() == header["merkleroot"]
    bulk = (await client.post(f"{W}/txs/hex", json={"txids": [tx.txid(), "00" * 32]})).json()
    assert bulk[0]["hex"] == tx.hex() and bulk[0]["blockhash"] == block["hash"] and bulk[1]["error"] == "unknown"
    many = (await client.post(f"{W}/txs", json={"txids": [tx.txid()]})).json()
    assert many[0]["txid"] == tx.txid() and many[0]["vout"][1]["n"] == 1


async def test_balances_and_spent_lookups(client: httpx.AsyncClient, alice: Key, bob: Key) -> None:
    coins = await fund(client, alice, 10_000, count=2)
    tx = spend(coins[0], bob, fee=10)
    await client.post("/v1/tx", json={"rawTx": ef_hex(tx)})
    bal = (await client.get(f"{W}/address/{alice.address}/balance")).json()
    assert bal == {"confirmed": 20_000, "unconfirmed": -10_000}
    bob_bal = (await client.get(f"{W}/address/{bob.address}/balance")).json()
    assert bob_bal == {"confirmed": 0, "unconfirmed": 9_990}
    cb = (await client.get(f"{W}/address/{bob.address}/unconfirmed/balance")).json()
    assert cb["unconfirmed"] == 9_990 and cb["address"] == bob.address
    await client.post("/_sim/mine", json={})
    assert (await client.get(f"{W}/address/{bob.address}/balance")).json() == {"confirmed": 9_990, "unconfirmed": 0}


def _op(coin: Coin) -> dict[str, object]:
    return {"txid": coin.txid, "vout": coin.vout}


async def test_spent_lookups_follow_mempool_and_chain(client: httpx.AsyncClient, alice: Key, bob: Key) -> None:
    coins = await fund(client, alice, 10_000, count=3)
    tx = spend(coins[0], bob, fee=10)
    await client.post("/v1/tx", json={"rawTx": ef_hex(tx)})
    path = f"{W}/tx/{coins[0].txid}/{coins[0].vout}"

    pending = {"txid": tx.txid(), "vin": 0, "status": "unconfirmed"}
    assert (await client.get(f"{path}/spent")).json() == pending
    assert (await client.get(f"{path}/unconfirmed/spent")).json() == pending
    assert (await client.get(f"{path}/confirmed/spent")).status_code == 404
    unspent = await client.get(f"{W}/tx/{coins[1].txid}/{coins[1].vout}/spent")
    assert unspent.status_code == 404
    # An output nobody knows: 400, as WhatsOnChain documents.
    assert (await client.get(f"{W}/tx/{'ab' * 32}/0/spent")).status_code == 400
    assert (await client.get(f"{W}/tx/{coins[0].txid}/9/spent")).status_code == 400

    await client.post("/_sim/mine", json={})
    mined = {"txid": tx.txid(), "vin": 0, "status": "confirmed"}
    assert (await client.get(f"{path}/spent")).json() == mined
    assert (await client.get(f"{path}/confirmed/spent")).json() == mined
    assert (await client.get(f"{path}/unconfirmed/spent")).status_code == 404


async def test_bulk_spent_answers_in_the_documented_shape(client: httpx.AsyncClient, alice: Key, bob: Key) -> None:
    coins = await fund(client, alice, 10_000, count=3)
    two = build([coins[1], coins[2]], [(19_000, bob.lock)])  # coins[2] is this tx's input 1
    await client.post("/v1/tx", json={"rawTx": ef_hex(spend(coins[0], bob))})
    await client.post("/_sim/mine", json={})
    await client.post("/v1/tx", json={"rawTx": ef_hex(two)})
    mined_spender = (await client.get(f"{W}/tx/{coins[0].txid}/{coins[0].vout}/spent")).json()["txid"]
    [change] = coins_of(two, bob)
    unknown = {"txid": "cd" * 32, "vout": 1}

    body = {"utxos": [_op(coins[0]), _op(coins[2]), _op(change), unknown]}
    bulk = (await client.post(f"{W}/utxos/spent", json=body)).json()

    assert [b["utxo"] for b in bulk] == body["utxos"]
    assert bulk[0]["spentIn"] == {"txid": mined_spender, "vin": 0, "status": "confirmed"}
    assert bulk[1]["spentIn"] == {"txid": two.txid(), "vin": 1, "status": "unconfirmed"}
    assert bulk[2]["spentIn"] is None and bulk[2]["error"] == ""
    assert bulk[3]["spentIn"] is None and bulk[3]["error"] == "unknown"
    assert [b["error"] for b in bulk[:3]] == ["", "", ""]
    # Only the documented members (go-whatsonchain's `txid`/`vout`/`spent` are not WoC's answer).
    assert all(set(b) == {"utxo", "spentIn", "error"} for b in bulk)

    too_many = await client.post(f"{W}/utxos/spent", json={"utxos": [_op(coins[0])] * 21})
    assert too_many.status_code == 400
    malformed = await client.post(f"{W}/utxos/spent", json={"utxos": [{"txid": coins[0].txid}]})
    assert malformed.status_code == 400


async def test_spent_lookups_across_a_reorg(client: httpx.AsyncClient, alice: Key, bob: Key) -> None:
    [coin] = await fund(client, alice, 10_000)
    tx = spend(coin, bob)
    await client.post("/v1/tx", json={"rawTx": ef_hex(tx)})
    await client.post("/_sim/mine", json={})
    path = f"{W}/tx/{coin.txid}/{coin.vout}"
    assert (await client.get(f"{path}/spent")).json()["status"] == "confirmed"

    # The spend falls out of the chain: back in the mempool, it spends the output there.
    await client.post("/_sim/reorg", json={"depth": 1, "drop_txids": [tx.txid()]})
    assert (await client.get(f"{path}/spent")).json() == {"txid": tx.txid(), "vin": 0, "status": "unconfirmed"}
    assert (await client.get(f"{path}/confirmed/spent")).status_code == 404

    # Evicted from the mempool too: the output is unspent again.
    await client.post(f"/_sim/tx/{tx.txid()}/evict", json={"reason": "test"})
    assert (await client.get(f"{path}/spent")).status_code == 404
    bulk = (await client.post(f"{W}/utxos/spent", json={"utxos": [_op(coin)]})).json()
    assert bulk[0]["spentIn"] is None and bulk[0]["error"] == ""


async def test_spent_lookups_wait_for_the_index(sim_factory: SimFactory, alice: Key, bob: Key) -> None:
    sim = await sim_factory(woc_index_lag_ms=60_000)
    async with httpx.AsyncClient(base_url=sim.base_url, trust_env=False) as client:
        [coin] = await fund(client, alice, 10_000)
        await client.post("/v1/tx", json={"rawTx": ef_hex(spend(coin, bob))})
        assert (await client.get(f"{W}/tx/{coin.txid}/{coin.vout}/spent")).status_code == 404


async def test_script_and_bulk_address_lists(client: httpx.AsyncClient, alice: Key, bob: Key) -> None:
    await fund(client, alice, 1_111, count=2)
    [bcoin] = await fund(client, bob, 2_222, confirm=False)
    sh = hashlib.sha256(alice.lock).hexdigest()
    by_script = (await client.get(f"{W}/script/{sh}/unspent/all")).json()
    assert by_script["script"] == sh and [u["value"] for u in by_script["result"]] == [1_111, 1_111]
    reversed_sh = bytes.fromhex(sh)[::-1].hex()
    assert len((await client.get(f"{W}/script/{reversed_sh}/unspent/all")).json()["result"]) == 2
    bulk = (
        await client.post(f"{W}/addresses/confirmed/unspent", json={"addresses": [alice.address, bob.address]})
    ).json()
    assert [len(x["unspent"]) for x in bulk] == [2, 0] and bulk[0]["unspent"][0]["height"] >= 1
    bulk = (await client.post(f"{W}/addresses/unconfirmed/unspent", json={"addresses": [bob.address]})).json()
    assert bulk[0]["unspent"][0]["tx_hash"] == bcoin.txid and bulk[0]["unspent"][0]["hex"] == bob.lock.hex()
    scripts = (await client.post(f"{W}/scripts/confirmed/unspent", json={"scripts": [sh]})).json()
    assert scripts[0]["script"] == sh and len(scripts[0]["unspent"]) == 2
    legacy = (await client.get(f"{W}/address/{bob.address}/unspent")).json()
    assert legacy == [{"height": 0, "tx_pos": 0, "tx_hash": bcoin.txid, "value": 2_222}]
    r = await client.post(f"{W}/addresses/confirmed/unspent", json={"addresses": [alice.address] * 21})
    assert r.status_code == 400
    assert (await client.get(f"{W}/address/notanaddress/unspent/all")).status_code == 400


async def test_chain_and_block_endpoints(client: httpx.AsyncClient, alice: Key) -> None:
    assert (await client.get(f"{W}/woc")).text == "Whats On Chain"
    assert (await client.get("/v1/bsv/nope/chain/info")).status_code == 404
    await client.post("/_sim/mine", json={"blocks": 12})
    info = (await client.get(f"{W}/chain/info")).json()
    assert info["chain"] == "test" and info["blocks"] == 12 == info["headers"]
    headers = (await client.get(f"{W}/block/headers")).json()
    assert len(headers) == 10 and headers[0]["hash"] == info["bestblockhash"] and headers[0]["nextblockhash"] is None
    by_height = (await client.get(f"{W}/block/height/5")).json()
    by_hash = (await client.get(f"{W}/block/hash/{by_height['hash']}")).json()
    assert by_hash == by_height and by_height["confirmations"] == 8 and by_height["txcount"] == 1
    prev = (await client.get(f"{W}/block/4/header")).json()
    assert by_height["previousblockhash"] == prev["hash"] and prev["nextblockhash"] == by_height["hash"]
    assert (await client.get(f"{W}/block/99/header")).status_code == 404
    mempool = (await client.get(f"{W}/mempool/info")).json()
    assert mempool["size"] == 0
    faucet = await client.get(f"{W}/faucet/send/{alice.address}")
    assert faucet.status_code == 200 and len(faucet.text) == 64
    listing = (await client.get(f"{W}/address/{alice.address}/unspent/all")).json()
    assert listing["result"][0]["tx_hash"] == faucet.text and listing["result"][0]["height"] == 13


async def test_index_lag_hides_fresh_mempool_txs(sim_factory: SimFactory, alice: Key) -> None:
    sim = await sim_factory(woc_index_lag_ms=400)
    async with httpx.AsyncClient(base_url=sim.base_url, trust_env=False) as client:
        [coin] = await fund(client, alice)
        tx = spend(coin)
        assert (await client.post("/v1/tx", json={"rawTx": ef_hex(tx)})).json()["txStatus"] == "SEEN_ON_NETWORK"
        assert (await client.get(f"{W}/tx/hash/{tx.txid()}")).status_code == 404
        listing = (await client.get(f"{W}/address/{alice.address}/unconfirmed/unspent")).json()
        assert listing["result"] == []
        await client.post("/_sim/clock", json={"advance_s": 0.5})
        assert (await client.get(f"{W}/tx/hash/{tx.txid()}")).status_code == 200
        listing = (await client.get(f"{W}/address/{alice.address}/unconfirmed/unspent")).json()
        assert [u["tx_hash"] for u in listing["result"]] == [tx.txid()]
