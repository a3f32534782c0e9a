"""ARC face against arc-woc.md §6.10 (items 1-9, 12, 13, 18)."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest
from bsv import MerklePath

from services.chainsim import ChainSim
from tests.chainsim.conftest import SimFactory
from tests.chainsim.helpers import Key, Receiver, build, coins_of, ef_hex, fund, op_return, spend

RFC3339_NANOS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
SUCCESS_KEYS = {
    "txid",
    "txStatus",
    "status",
    "title",
    "blockHash",
    "blockHeight",
    "merklePath",
    "extraInfo",
    "competingTxs",
    "timestamp",
}


async def test_valid_ef_tx_is_seen_and_listed_unconfirmed(client: httpx.AsyncClient, alice: Key, bob: Key) -> None:
    [coin] = await fund(client, alice, 50_000)
    tx = build([coin], [(0, op_return(b"proofline")), (10_000, bob.lock)], change=alice)
    r = await client.post("/v1/tx", json={"rawTx": ef_hex(tx)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == SUCCESS_KEYS
    assert body["txid"] == tx.txid()
    assert body["txStatus"] == "SEEN_ON_NETWORK"
    assert (body["status"], body["title"]) == (200, "OK")
    assert (body["blockHash"], body["blockHeight"], body["merklePath"]) == ("", 0, "")
    assert body["competingTxs"] is None
    assert RFC3339_NANOS.match(body["timestamp"])
    got = (await client.get(f"/v1/tx/{tx.txid()}")).json()
    assert got["txStatus"] == "SEEN_ON_NETWORK" and "status" not in got
    listing = (await client.get(f"/v1/bsv/test/address/{alice.address}/unspent/all")).json()
    change = [u for u in listing["result"] if u["tx_hash"] == tx.txid()]
    assert len(change) == 1 and change[0]["status"] == "unconfirmed" and change[0]["tx_pos"] == 2
    assert change[0]["value"] == tx.outputs[2].satoshis and change[0]["hex"] == alice.lock.hex()
    spent_funding = [u for u in listing["result"] if u["tx_hash"] == coin.txid]
    assert spent_funding and spent_funding[0]["isSpentInMempoolTx"] is True


async def test_resubmit_is_idempotent_without_duplicate_callbacks(
    client: httpx.AsyncClient, receiver: Receiver, alice: Key
) -> None:
    [coin] = await fund(client, alice)
    tx = spend(coin)
    headers = {"X-CallbackUrl": receiver.url, "X-CallbackToken": "tok"}
    first = (await client.post("/v1/tx", json={"rawTx": ef_hex(tx)}, headers=headers)).json()
    second = (await client.post("/v1/tx", json={"rawTx": ef_hex(tx)}, headers=headers)).json()
    assert first["txStatus"] == second["txStatus"] == "SEEN_ON_NETWORK"
    await client.post("/_sim/mine", json={})
    await receiver.wait_for(lambda: receiver.statuses(tx.txid()) == ["MINED"])
    await asyncio.sleep(0.3)
    assert receiver.statuses(tx.txid()) == ["MINED"]


async def test_mined_tx_has_a_verifying_merkle_path_and_callback(
    client: httpx.AsyncClient, receiver: Receiver, alice: Key, bob: Key
) -> None:
    coins = await fund(client, alice, 20_000, count=3)
    txs = [spend(c, bob) for c in coins]
    headers = {"X-CallbackUrl": receiver.url, "X-CallbackToken": "secret-token"}
    for tx in txs:
        assert (await client.post("/v1/tx", json={"rawTx": ef_hex(tx)}, headers=headers)).status_code == 200
    mined = (await client.post("/_sim/mine", json={"blocks": 1})).json()
    assert len(mined) == 1 and len(mined[0]["txids"]) == 4  # coinbase + 3
    for tx in txs:
        st = (await client.get(f"/v1/tx/{tx.txid()}")).json()
        assert st["txStatus"] == "MINED"
        assert st["blockHash"] == mined[0]["hash"] and st["blockHeight"] == mined[0]["height"]
        header = (await client.get(f"/v1/bsv/test/block/{st['blockHeight']}/header")).json()
        path = MerklePath.from_hex(st["merklePath"])
        assert path.block_height == st["blockHeight"]
        assert path.compute_root(tx.txid()) == header["merkleroot"]
        other = txs[1] if tx is txs[0] else txs[0]
        with pytest.raises(ValueError, match="does not contain"):
            path.compute_root(other.txid())
    await receiver.wait_for(lambda: len(receiver.calls) == 3)
    for headers_seen, body in receiver.calls:
        assert headers_seen["Authorization"] == "Bearer secret-token"
        assert body["txStatus"] == "MINED" and body["blockHash"] == mined[0]["hash"]
        assert MerklePath.from_hex(body["merklePath"]).compute_root(body["txid"]) == header["merkleroot"]
    status = (await client.post("/v1/bsv/test/txs/status", json={"txids": [txs[0].txid()]})).json()
    assert status[0]["confirmations"] == 1 and status[0]["blockhash"] == mined[0]["hash"]


async def test_malformed_requests_are_400(client: httpx.AsyncClient, alice: Key) -> None:
    r = await client.post("/v1/tx", json={"rawTx": "zz-not-hex"})
    assert r.status_code == 400 and r.json()["extraInfo"].startswith("error parsing transactions from request:")
    r = await client.post("/v1/tx", json={"notRawTx": "00"})
    assert r.status_code == 400 and "rawTx" in r.json()["message"]
    r = await client.post("/v1/tx", content=b"", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "empty request body" in r.json()["extraInfo"]
    r = await client.post("/v1/txs", content=("ab" * 40_000).encode(), headers={"Content-Type": "text/plain"})
    assert r.status_code == 400 and "token too long" in r.json()["extraInfo"]
    r = await client.post("/v1/tx", content=b"0100", headers={"Content-Type": "application/xml"})
    assert r.status_code == 400 and "content-type" in r.json()["extraInfo"]
    r = await client.post(
        "/v1/tx", content=b"\x01\x00\x00\x00\x01", headers={"Content-Type": "application/octet-stream"}
    )
    assert r.status_code == 400
    r = await client.post("/v1/tx", json={"rawTx": "00"}, headers={"X-SkipFeeValidation": "yes"})
    assert r.status_code == 400 and "X-SkipFeeValidation" in r.json()["message"]


async def test_output_size_and_fee_errors_use_46x(client: httpx.AsyncClient, alice: Key, bob: Key) -> None:
    coins = await fund(client, alice, 10_000, count=5)
    bad_opreturn = build([coins[0]], [(1, op_return(b"x")), (9_000, bob.lock)])
    r = await client.post("/v1/tx", json={"rawTx": ef_hex(bad_opreturn)})
    assert r.status_code == 464 and r.json()["status"] == 464
    assert r.json()["extraInfo"].startswith("arc error 464:") and r.json()["txid"] == bad_opreturn.txid()
    zero = build([coins[1]], [(0, bob.lock), (9_000, bob.lock)])
    assert (await client.post("/v1/tx", json={"rawTx": ef_hex(zero)})).status_code == 464
    no_fee = build([coins[2]], [(10_000, bob.lock)])
    r = await client.post("/v1/tx", json={"rawTx": ef_hex(no_fee)})
    assert r.status_code == 465
    body = r.json()
    assert body["title"] == "Fee too low" and body["extraInfo"].startswith("arc error 465: transaction fee is too low")
    assert "minimum expected fee: 1, actual fee: 0" in body["extraInfo"]
    r = await client.post("/v1/tx", json={"rawTx": ef_hex(no_fee)}, headers={"X-SkipFeeValidation": "true"})
    assert r.status_code == 200 and r.json()["txStatus"] == "REJECTED"
    assert r.json()["extraInfo"] == "invalid transaction: mempool min fee not met"
    # 60 bytes: no scriptSig, one OP_RETURN-less tiny output
    from tests.chainsim.helpers import unsigned_like

    tiny = unsigned_like([(1, b"")], coins[3].txid, coins[3].vout, script_sig=b"")
    assert len(tiny) == 60
    from services.chainsim.chain.txcodec import to_ef

    r = await client.post("/v1/tx", json={"rawTx": to_ef(tiny, [(10_000, alice.lock)]).hex()})
    assert r.status_code == 463 and "less than 61 bytes" in r.json()["extraInfo"]


async def test_invalid_script_is_461_or_rejected(client: httpx.AsyncClient, alice: Key, bob: Key) -> None:
    [coin] = await fund(client, alice)
    stolen = build(
        [coin.__class__(coin.txid, coin.vout, coin.satoshis, coin.script, bob, coin.parent_hex)],
        [(coin.satoshis - 1, bob.lock)],
    )
    r = await client.post("/v1/tx", json={"rawTx": ef_hex(stolen)})
    assert r.status_code == 461 and "script execution failed" in r.json()["extraInfo"]
    r = await client.post("/v1/tx", json={"rawTx": ef_hex(stolen)}, headers={"X-SkipScriptValidation": "true"})
    assert r.status_code == 200 and r.json()["txStatus"] == "REJECTED"
    assert r.json()["extraInfo"].startswith("invalid transaction: mandatory-script-verify-flag-failed")
    tampered = spend(coin, bob)
    tampered.outputs[0].satoshis -= 1
    tampered._invalidate_hash_cache()
    r = await client.post("/v1/tx", json={"rawTx": ef_hex(tampered)})
    assert r.status_code == 461 and "OP_CHECKSIG" in r.json()["extraInfo"]
    good = spend(coin, bob)
    assert (await client.post("/v1/tx", json={"rawTx": ef_hex(good)})).json()["txStatus"] == "SEEN_ON_NETWORK"


async def test_raw_format_needs_known_parents(client: httpx.AsyncClient, alice: Key, bob: Key) -> None:
    [coin] = await fund(client, alice)
    tx = spend(coin, bob)
    r = await client.post("/v1/tx", json={"rawTx": tx.hex()})
    assert r.status_code == 200 and r.json()["txStatus"] == "SEEN_ON_NETWORK"
    [orphan_parent] = coins_of(build([coin], [(coin.satoshis - 1, alice.lock)]), alice)
    child = spend(orphan_parent, bob)
    r = await client.post("/v1/tx", json={"rawTx": child.hex()})
    assert r.status_code == 460 and r.json()["extraInfo"].startswith("arc error 460:")


async def test_wait_headers(client: httpx.AsyncClient, alice: Key) -> None:
    coins = await fund(client, alice, count=2)
    tx = spend(coins[0])
    r = await client.post("/v1/tx", json={"rawTx": ef_hex(tx)}, headers={"X-MaxTimeout": "31"})
    assert r.status_code == 400 and "max timeout can not be higher than 30" in r.json()["extraInfo"]
    r = await client.post("/v1/tx", json={"rawTx": ef_hex(tx)}, headers={"X-WaitFor": "FOO"})
    assert r.status_code == 400 and "status not supported" in r.json()["extraInfo"]
    t0 = time.monotonic()
    r = await client.post("/v1/tx", json={"rawTx": ef_hex(tx)}, headers={"X-WaitFor": "MINED", "X-MaxTimeout": "1"})
    elapsed = time.monotonic() - t0
    assert r.status_code == 200 and r.json()["txStatus"] == "SEEN_ON_NETWORK"
    assert 0.9 <= elapsed < 3
    # a waiter is released as soon as the block arrives
    tx2 = spend(coins[1])
    post = asyncio.create_task(
        client.post("/v1/tx", json={"rawTx": ef_hex(tx2)}, headers={"X-WaitFor": "MINED", "X-MaxTimeout": "10"})
    )
    await asyncio.sleep(0.3)
    assert not post.done()
    t0 = time.monotonic()
    await client.post("/_sim/mine", json={})
    r = await post
    assert r.json()["txStatus"] == "MINED" and time.monotonic() - t0 < 2


async def test_queued_returns_at_once_and_processes_later(client: httpx.AsyncClient, alice: Key) -> None:
    [coin] = await fund(client, alice)
    tx = spend(coin)
    r = await client.post("/v1/tx", json={"rawTx": ef_hex(tx)}, headers={"X-WaitFor": "QUEUED"})
    assert r.status_code == 200 and r.json()["txStatus"] == "QUEUED" and r.json()["txid"] == tx.txid()
    await asyncio.sleep(0.05)
    assert (await client.get(f"/v1/tx/{tx.txid()}")).json()["txStatus"] == "SEEN_ON_NETWORK"


async def test_double_spend_first_seen_wins(
    client: httpx.AsyncClient, receiver: Receiver, alice: Key, bob: Key
) -> None:
    [coin] = await fund(client, alice)
    tx1, tx2, tx3 = (spend(coin, bob, fee=f) for f in (1, 2, 3))
    headers = {"X-CallbackUrl": receiver.url}
    r1 = (await client.post("/v1/tx", json={"rawTx": ef_hex(tx1)}, headers=headers)).json()
    assert r1["txStatus"] == "SEEN_ON_NETWORK"
    r2 = (await client.post("/v1/tx", json={"rawTx": ef_hex(tx2)}, headers=headers)).json()
    assert r2["txStatus"] == "DOUBLE_SPEND_ATTEMPTED" and r2["competingTxs"] == [tx1.txid()]
    r3 = (await client.post("/v1/tx", json={"rawTx": ef_hex(tx3)}, headers=headers)).json()
    assert r3["txStatus"] == "DOUBLE_SPEND_ATTEMPTED" and r3["competingTxs"] == [tx1.txid()]
    g1 = (await client.get(f"/v1/tx/{tx1.txid()}")).json()
    assert g1["txStatus"] == "DOUBLE_SPEND_ATTEMPTED" and g1["competingTxs"] == [tx2.txid(), tx3.txid()]
    woc = await client.post("/v1/bsv/test/tx/raw", json={"txhex": tx2.hex()})
    assert woc.status_code == 500 and woc.text == "unexpected response code 500: 258: txn-mempool-conflict"
    mempool = (await client.get("/_sim/state")).json()["mempool_txids"]
    assert tx1.txid() in mempool and tx2.txid() not in mempool
    await client.post("/_sim/mine", json={})
    g1 = (await client.get(f"/v1/tx/{tx1.txid()}")).json()
    assert g1["txStatus"] == "MINED" and g1["extraInfo"] == "previously double spend attempted"
    assert g1["competingTxs"] == []
    for loser in (tx2, tx3):
        g = (await client.get(f"/v1/tx/{loser.txid()}")).json()
        assert g["txStatus"] == "REJECTED" and g["extraInfo"] == "double spend attempted"
    await receiver.wait_for(lambda: len(receiver.calls) == 3)
    assert receiver.statuses(tx1.txid()) == ["MINED"]
    assert receiver.statuses(tx2.txid()) == ["REJECTED"] and receiver.statuses(tx3.txid()) == ["REJECTED"]


async def test_chained_batch_then_mined(client: httpx.AsyncClient, alice: Key) -> None:
    [coin] = await fund(client, alice, 100_000)
    chain = []
    current = coin
    for _ in range(20):
        tx = spend(current)
        chain.append(tx)
        [current] = coins_of(tx, alice)
    r = await client.post("/v1/txs", json=[{"rawTx": ef_hex(t)} for t in chain])
    assert r.status_code == 200
    results = r.json()
    assert [x["txid"] for x in results] == [t.txid() for t in chain]
    assert {x["txStatus"] for x in results} == {"SEEN_ON_NETWORK"}
    block = (await client.post("/_sim/mine", json={})).json()[0]
    header = (await client.get(f"/v1/bsv/test/block/hash/{block['hash']}")).json()
    assert header["txcount"] == 21
    for tx in chain:
        st = (await client.get(f"/v1/tx/{tx.txid()}")).json()
        assert st["txStatus"] == "MINED"
        assert MerklePath.from_hex(st["merklePath"]).compute_root(tx.txid()) == header["merkleroot"]


async def test_batch_with_mixed_results_lists_successes_first(client: httpx.AsyncClient, alice: Key, bob: Key) -> None:
    coins = await fund(client, alice, 10_000, count=4)
    good = [spend(c, bob) for c in coins[:3]]
    bad = build([coins[3]], [(10_000, bob.lock)])  # no fee
    order = [good[0], bad, good[1], good[2]]
    text_body = "\n".join(ef_hex(t) for t in order)
    r = await client.post("/v1/txs", content=text_body.encode(), headers={"Content-Type": "text/plain"})
    assert r.status_code == 200
    results = r.json()
    assert isinstance(results, list) and len(results) == 4
    assert [x["txid"] for x in results[:3]] == [t.txid() for t in good]
    assert all(x["txStatus"] == "SEEN_ON_NETWORK" for x in results[:3])
    assert results[3]["status"] == 465 and results[3]["txid"] == bad.txid()


async def test_octet_stream_batch_and_single(client: httpx.AsyncClient, alice: Key) -> None:
    coins = await fund(client, alice, count=3)
    txs = [spend(c) for c in coins]
    body = b"".join(bytes.fromhex(ef_hex(t)) for t in txs[:2])
    r = await client.post("/v1/txs", content=body, headers={"Content-Type": "application/octet-stream"})
    assert [x["txStatus"] for x in r.json()] == ["SEEN_ON_NETWORK"] * 2
    r = await client.post(
        "/v1/tx", content=bytes.fromhex(ef_hex(txs[2])), headers={"Content-Type": "application/octet-stream"}
    )
    assert r.json()["txStatus"] == "SEEN_ON_NETWORK"
    r = await client.post("/v1/tx", content=ef_hex(txs[2]).encode(), headers={"Content-Type": "text/plain"})
    assert r.json()["txStatus"] == "SEEN_ON_NETWORK"


async def test_policy_health_and_unknown_tx(client: httpx.AsyncClient) -> None:
    policy = (await client.get("/v1/policy")).json()
    assert policy["policy"]["miningFee"] == {"satoshis": 1, "bytes": 1000}
    assert policy["policy"]["maxtxsizepolicy"] == 100_000_000 and RFC3339_NANOS.match(policy["timestamp"])
    health = (await client.get("/v1/health")).json()
    assert health == {"healthy": True, "version": "sim-0.1.0", "reason": None}
    r = await client.get("/v1/tx/" + "ab" * 32)
    assert r.status_code == 404 and r.json()["extraInfo"] == "transaction not found"
    assert (await client.get("/v1/tx/xyz")).status_code == 409


async def test_fee_policy_follows_configuration(sim_factory: SimFactory, alice: Key, bob: Key) -> None:
    sim = await sim_factory(
        policy=__import__("services.chainsim.settings", fromlist=["Policy"]).Policy(fee_satoshis=500, fee_bytes=1000),
        node_fee_sat_per_kb=500,
    )
    async with httpx.AsyncClient(base_url=sim.base_url, trust_env=False) as client:
        assert (await client.get("/v1/policy")).json()["policy"]["miningFee"]["satoshis"] == 500
        coins = await fund(client, alice, count=2)
        cheap = spend(coins[0], bob, fee=50)
        size = len(cheap.serialize())
        r = await client.post("/v1/tx", json={"rawTx": ef_hex(cheap)})
        assert r.status_code == 465 and f"minimum expected fee: {(size * 500 + 999) // 1000}" in r.json()["extraInfo"]
        ok = spend(coins[1], bob, fee=(size * 500 + 999) // 1000)
        assert (await client.post("/v1/tx", json={"rawTx": ef_hex(ok)})).json()["txStatus"] == "SEEN_ON_NETWORK"


async def test_cumulative_fee_validation(client: httpx.AsyncClient, alice: Key) -> None:
    [coin] = await fund(client, alice)
    parent = spend(coin, fee=0)
    r = await client.post("/v1/tx", json={"rawTx": ef_hex(parent)}, headers={"X-SkipFeeValidation": "true"})
    assert r.json()["txStatus"] == "REJECTED"  # node floor: parent alone pays nothing
    parent = spend(coin, fee=1)
    assert (await client.post("/v1/tx", json={"rawTx": ef_hex(parent)})).json()["txStatus"] == "SEEN_ON_NETWORK"
    [c2] = coins_of(parent, alice)
    child = spend(c2, fee=1)
    r = await client.post("/v1/tx", json={"rawTx": ef_hex(child)}, headers={"X-CumulativeFeeValidation": "true"})
    assert r.json()["txStatus"] == "SEEN_ON_NETWORK"


async def test_throughput_smoke_500_txs(client: httpx.AsyncClient, alice: Key, bob: Key) -> None:
    coins = await fund(client, alice, 5_000, count=500)
    txs = [spend(c, bob) for c in coins]
    latencies = []
    for i in range(0, 500, 50):
        t0 = time.perf_counter()
        r = await client.post("/v1/txs", json=[{"rawTx": ef_hex(t)} for t in txs[i : i + 50]])
        latencies.append(time.perf_counter() - t0)
        assert [x["txStatus"] for x in r.json()] == ["SEEN_ON_NETWORK"] * 50
    latencies.sort()
    assert latencies[len(latencies) // 2] < 1.0
    state = (await client.get("/_sim/state")).json()
    assert state["mempool"] == 500


async def test_sim_fixture_is_isolated(sim: ChainSim) -> None:
    assert sim.state.height == 0 and len(sim.state.mempool) == 0


async def test_optional_bearer_gateway(sim_factory: SimFactory) -> None:
    sim = await sim_factory(arc_bearer_tokens=("sekrit",))
    async with httpx.AsyncClient(base_url=sim.base_url, trust_env=False) as client:
        r = await client.get("/v1/policy")
        assert r.status_code == 401 and r.json()["status"] == 401
        r = await client.get("/v1/policy", headers={"Authorization": "Bearer sekrit"})
        assert r.status_code == 200
        assert (await client.get("/v1/bsv/test/chain/info")).status_code == 200


async def test_invalid_inputs_are_462(client: httpx.AsyncClient, alice: Key, bob: Key) -> None:
    from services.chainsim.chain.txcodec import serialize_tx, to_ef

    coinbase_like = serialize_tx(1, [(bytes(32) + b"\xff\xff\xff\xff", b"\x51" * 70, 0xFFFFFFFF)], [(1_000, bob.lock)])
    r = await client.post("/v1/tx", json={"rawTx": to_ef(coinbase_like, [(5_000, alice.lock)]).hex()})
    assert r.status_code == 462 and "input 0 is a coinbase input" in r.json()["extraInfo"]
    no_inputs = serialize_tx(1, [], [(1_000, bob.lock), (0, op_return(b"x" * 40))])
    r = await client.post("/v1/tx", json={"rawTx": no_inputs.hex()})
    assert r.status_code == 462 and "no inputs or outputs" in r.json()["extraInfo"]
    too_rich = serialize_tx(1, [(b"\x01" * 36, b"\x51" * 70, 0xFFFFFFFF)], [(1_000, bob.lock)])
    r = await client.post("/v1/tx", json={"rawTx": to_ef(too_rich, [(21_000_000 * 10**8 + 1, alice.lock)]).hex()})
    assert r.status_code == 462 and "satoshis is too high" in r.json()["extraInfo"]
    not_push = serialize_tx(1, [(b"\x02" * 36, b"\x76" * 70, 0xFFFFFFFF)], [(1_000, bob.lock)])
    r = await client.post("/v1/tx", json={"rawTx": to_ef(not_push, [(5_000, alice.lock)]).hex()})
    assert r.status_code == 463 and "not push only" in r.json()["extraInfo"]
