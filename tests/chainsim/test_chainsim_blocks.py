"""What a wallet that follows blocks reads from the WoC face: a block's txids with their pages, the
mempool's txids, raw transactions in bulk, and coinbases paid to an address of its own."""

from __future__ import annotations

import httpx

from services.chainsim.chain.merkle import bump, merkle_levels, merkle_root, root_from_bump
from tests.chainsim.conftest import SimFactory
from tests.chainsim.helpers import Coin, Key, ef_hex, fund, spend, txid_of

W = "/v1/bsv/test"


async def _unconfirmed_funding(client: httpx.AsyncClient, key: Key, count: int) -> list[str]:
    """``count`` separate funding transactions left in the mempool (cheap mempool filler)."""
    txids: list[str] = []
    for _ in range(count):
        r = await client.post("/_sim/fund", json={"address": key.address, "satoshis": 1_000, "confirm": False})
        txids.append(r.json()["txid"])
    return txids


async def test_a_big_block_lists_100_txids_and_pages_of_all_of_them(sim_factory: SimFactory, alice: Key) -> None:
    sim = await sim_factory(woc_block_page_size=400)
    async with httpx.AsyncClient(base_url=sim.base_url, trust_env=False, timeout=30) as client:
        pending = await _unconfirmed_funding(client, alice, 1_000)
        [block] = (await client.post("/_sim/mine", json={})).json()
        txids = block["txids"]
        assert len(txids) == 1_001 and txids[1:] == pending

        body = (await client.get(f"{W}/block/hash/{block['hash']}")).json()
        assert body["txcount"] == 1_001 and body["tx"] == txids[:100]
        assert body["pages"] == {
            "size": 400,
            "uri": [f"/block/hash/{block['hash']}/page/{n}" for n in (1, 2, 3)],
        }
        assert (await client.get(f"{W}/block/height/{block['height']}")).json() == body
        paged: list[str] = []
        for uri in body["pages"]["uri"]:
            page = (await client.get(W + uri)).json()
            assert len(page) == (400 if len(paged) < 800 else 201)
            paged += page
        assert paged == txids
        leaves = [bytes.fromhex(t)[::-1] for t in paged]
        assert merkle_root(leaves)[::-1].hex() == body["merkleroot"]

        assert (await client.get(f"{W}/block/hash/{block['hash']}/page/4")).status_code == 404
        assert (await client.get(f"{W}/block/hash/{block['hash']}/page/0")).status_code == 404
        assert (await client.get(f"{W}/block/hash/{block['hash']}/page/x")).status_code == 404
        assert (await client.get(f"{W}/block/hash/{'ab' * 32}/page/1")).status_code == 404


async def test_a_small_block_lists_every_txid_and_no_pages(client: httpx.AsyncClient, alice: Key) -> None:
    coins = await fund(client, alice, 5_000, count=3)
    txs = [spend(c) for c in coins]
    await client.post("/v1/txs", json=[{"rawTx": ef_hex(t)} for t in txs])
    [block] = (await client.post("/_sim/mine", json={})).json()
    body = (await client.get(f"{W}/block/hash/{block['hash']}")).json()
    assert body["tx"] == block["txids"] and body["txcount"] == 4 and "pages" not in body
    assert body["tx"][1:] == [t.txid() for t in txs]
    # page 1 of a block without pages is still its first (and only) page of txids
    assert (await client.get(f"{W}/block/hash/{block['hash']}/page/1")).json() == block["txids"]


async def test_mempool_raw_lists_mempool_txids_in_arrival_order(sim_factory: SimFactory, alice: Key) -> None:
    sim = await sim_factory(woc_index_lag_ms=400)
    async with httpx.AsyncClient(base_url=sim.base_url, trust_env=False) as client:
        assert (await client.get(f"{W}/mempool/raw")).json() == []
        coins = await fund(client, alice, 5_000, count=2)
        first, second = spend(coins[0]), spend(coins[1])
        for tx in (first, second):
            assert (await client.post("/v1/tx", json={"rawTx": ef_hex(tx)})).json()["txStatus"] == "SEEN_ON_NETWORK"
        assert (await client.get(f"{W}/mempool/raw")).json() == []  # still inside the indexing lag
        await client.post("/_sim/clock", json={"advance_s": 0.5})
        assert (await client.get(f"{W}/mempool/raw")).json() == [first.txid(), second.txid()]
        await client.post("/_sim/mine", json={"txids": [first.txid()]})
        assert (await client.get(f"{W}/mempool/raw")).json() == [second.txid()]
        await client.post(f"/_sim/tx/{second.txid()}/evict", json={"reason": "test"})
        assert (await client.get(f"{W}/mempool/raw")).json() == []


async def test_bulk_hex_answers_mined_mempool_coinbase_and_unknown(client: httpx.AsyncClient, alice: Key) -> None:
    coins = await fund(client, alice, 5_000, count=2)
    mined, pending = spend(coins[0]), spend(coins[1])
    await client.post("/v1/tx", json={"rawTx": ef_hex(mined)})
    [block] = (await client.post("/_sim/mine", json={})).json()
    await client.post("/v1/tx", json={"rawTx": ef_hex(pending)})
    coinbase, unknown = block["txids"][0], "cd" * 32
    asked = [mined.txid(), pending.txid(), coinbase, unknown]
    answer = (await client.post(f"{W}/txs/hex", json={"txids": asked})).json()
    assert [a["txid"] for a in answer] == asked
    assert answer[0]["hex"] == mined.hex() and answer[0]["blockhash"] == block["hash"]
    assert answer[1] == {"txid": pending.txid(), "hex": pending.hex()}
    assert txid_of(bytes.fromhex(answer[2]["hex"])) == coinbase and answer[2]["blockheight"] == block["height"]
    assert answer[3] == {"txid": unknown, "error": "unknown"}
    assert (await client.post(f"{W}/txs/hex", json={"txids": [unknown] * 20})).status_code == 200
    assert (await client.post(f"{W}/txs/hex", json={"txids": [unknown] * 21})).status_code == 400


async def test_mine_pays_the_coinbase_to_an_address_or_a_script(client: httpx.AsyncClient, alice: Key) -> None:
    blocks = (await client.post("/_sim/mine", json={"blocks": 2, "coinbase_address": alice.address})).json()
    for block in blocks:
        raw = bytes.fromhex((await client.get(f"{W}/tx/{block['txids'][0]}/hex")).text)
        assert raw.endswith(len(alice.lock).to_bytes(1, "little") + alice.lock + bytes(4))
    listing = (await client.get(f"{W}/address/{alice.address}/unspent/all")).json()["result"]
    assert sorted((u["tx_hash"], u["height"], u["value"]) for u in listing) == sorted(
        (b["txids"][0], b["height"], 50 * 100_000_000) for b in blocks
    )
    details = (await client.get(f"{W}/tx/hash/{blocks[0]['txids'][0]}")).json()
    assert "coinbase" in details["vin"][0] and details["vout"][0]["scriptPubKey"]["addresses"] == [alice.address]

    script = "51"  # OP_TRUE
    [block] = (await client.post("/_sim/mine", json={"coinbase_script_hex": script})).json()
    coinbase = (await client.get(f"{W}/tx/hash/{block['txids'][0]}")).json()
    assert coinbase["vout"][0]["scriptPubKey"]["hex"] == script

    [plain] = (await client.post("/_sim/mine", json={})).json()
    coinbase = (await client.get(f"{W}/tx/hash/{plain['txids'][0]}")).json()
    assert coinbase["vout"][0]["scriptPubKey"]["hex"] == "76a914" + "c0" * 20 + "88ac"  # the configured miner

    for bad in (
        {"coinbase_address": "not-an-address"},
        {"coinbase_script_hex": "zz"},
        {"coinbase_script_hex": 5},
        {"coinbase_address": alice.address, "coinbase_script_hex": "51"},
    ):
        r = await client.post("/_sim/mine", json=bad)
        assert r.status_code == 400, bad


async def test_a_coinbase_paid_to_an_address_matures_after_100_blocks(
    client: httpx.AsyncClient, alice: Key, bob: Key
) -> None:
    [block] = (await client.post("/_sim/mine", json={"coinbase_address": alice.address})).json()
    cb_txid, height = block["txids"][0], block["height"]
    raw = (await client.get(f"{W}/tx/{cb_txid}/hex")).text
    coin = Coin(cb_txid, 0, 50 * 100_000_000, alice.lock, alice, raw)

    await client.post("/_sim/mine", json={"blocks": 98})  # tip = height + 98: the next block is height + 99
    early = spend(coin, bob)
    r = await client.post(f"{W}/tx/raw", json={"txhex": early.hex()})
    assert r.status_code == 500 and "bad-txns-premature-spend-of-coinbase" in r.text
    status = (await client.post("/v1/tx", json={"rawTx": ef_hex(early)})).json()
    assert status["txStatus"] == "REJECTED"
    assert status["extraInfo"] == "invalid transaction: bad-txns-premature-spend-of-coinbase"

    await client.post("/_sim/mine", json={})  # tip = height + 99: the next block is height + 100
    on_time = spend(coin, bob, fee=2)
    r = await client.post(f"{W}/tx/raw", json={"txhex": on_time.hex()})
    assert r.status_code == 200 and r.text == on_time.txid()
    [spent_in] = (await client.post("/_sim/mine", json={})).json()
    assert spent_in["height"] == height + 100 and spent_in["txids"][1:] == [on_time.txid()]


def test_a_one_transaction_block_proves_its_coinbase_as_ts_sdk_does() -> None:
    txid = bytes(range(32))
    proof = bump(merkle_levels([txid]), 0, 7)
    # block height 7, tree height 1, one leaf: offset 0, flag 2 (client txid), the hash
    assert proof == bytes((7, 1, 1, 0, 2)) + txid
    assert root_from_bump(txid, proof) == (7, txid)
