"""Fault injection (arc-woc.md §6.8): 5xx, timeouts, latency, 429, stuck statuses, per-tx outcomes."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.chainsim.helpers import Key, ef_hex, fund, spend


async def test_http_errors_for_the_next_n_requests(client: httpx.AsyncClient) -> None:
    r = await client.post("/_sim/faults", json={"rules": [{"face": "arc", "action": "http:503", "times": 2}]})
    assert r.status_code == 200 and r.json()["rules"][0]["times"] == 2
    codes = [(await client.get("/v1/policy")).status_code for _ in range(3)]
    assert codes == [503, 503, 200]
    assert (await client.get("/_sim/faults")).json()["rules"][0]["used"] == 2
    assert (await client.get("/v1/bsv/test/chain/info")).status_code == 200


async def test_a_rule_can_match_one_path(client: httpx.AsyncClient) -> None:
    rule = {"face": "woc", "match": {"path": "/utxos/spent"}, "action": "http:503"}
    r = await client.post("/_sim/faults", json={"rules": [rule]})
    assert r.status_code == 200 and r.json()["rules"][0]["match"] == {"path": "/utxos/spent"}
    bulk = await client.post("/v1/bsv/test/utxos/spent", json={"utxos": []})
    assert bulk.status_code == 503
    assert (await client.get("/v1/bsv/test/chain/info")).status_code == 200
    bad = {"match": {"path": "/utxos/spent"}, "action": "reject:nope"}
    assert (await client.post("/_sim/faults", json={"rules": [bad]})).status_code == 400


async def test_error_rate_hits_a_fraction(client: httpx.AsyncClient) -> None:
    await client.post("/_sim/faults", json={"seed": 7, "woc": {"error_rate": 0.5, "error_statuses": [500, 502]}})
    codes = [(await client.get("/v1/bsv/test/chain/info")).status_code for _ in range(200)]
    failures = [c for c in codes if c != 200]
    assert 60 <= len(failures) <= 140 and set(failures) == {500, 502}
    await client.delete("/_sim/faults")
    assert {(await client.get("/v1/bsv/test/chain/info")).status_code for _ in range(20)} == {200}


async def test_latency_and_timeout(client: httpx.AsyncClient) -> None:
    await client.post("/_sim/faults", json={"arc": {"latency_ms": 300}})
    t0 = time.monotonic()
    assert (await client.get("/v1/health")).status_code == 200
    assert time.monotonic() - t0 >= 0.3
    await client.post("/_sim/faults", json={"arc": {"timeout_rate": 1.0}})
    with pytest.raises(httpx.ReadTimeout):
        await client.get("/v1/health", timeout=0.5)
    await client.post("/_sim/faults", json={"rules": [{"action": "hang", "times": 1}]})
    with pytest.raises(httpx.ReadTimeout):
        await client.get("/v1/bsv/test/chain/info", timeout=0.5)
    assert (await client.get("/v1/bsv/test/chain/info")).status_code == 200


async def test_drop_connection(client: httpx.AsyncClient) -> None:
    await client.post("/_sim/faults", json={"rules": [{"face": "woc", "action": "drop", "times": 1}]})
    with pytest.raises(httpx.TransportError):
        await client.get("/v1/bsv/test/chain/info")
    assert (await client.get("/v1/bsv/test/chain/info")).status_code == 200


async def test_rate_limit_via_faults_exempts_keyed_requests(client: httpx.AsyncClient) -> None:
    await client.post("/_sim/faults", json={"woc": {"rate_limit_rps": 2, "exempt_keyed": True}})
    codes = [(await client.get("/v1/bsv/test/chain/info")).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    keyed = await client.get("/v1/bsv/test/chain/info", headers={"woc-api-key": "testnet_key"})
    assert keyed.status_code == 200


async def test_stuck_status_and_forced_status(client: httpx.AsyncClient, alice: Key) -> None:
    [coin] = await fund(client, alice)
    tx = spend(coin)
    await client.post(
        "/_sim/faults", json={"rules": [{"match": {"txid": tx.txid()}, "action": "stuck:ANNOUNCED_TO_NETWORK"}]}
    )
    r = (await client.post("/v1/tx", json={"rawTx": ef_hex(tx)}, headers={"X-MaxTimeout": "1"})).json()
    assert r["txStatus"] == "ANNOUNCED_TO_NETWORK"
    await client.post("/_sim/mine", json={})
    assert (await client.get(f"/v1/tx/{tx.txid()}")).json()["txStatus"] == "ANNOUNCED_TO_NETWORK"
    woc = (await client.post("/v1/bsv/test/txs/status", json={"txids": [tx.txid()]})).json()
    assert woc[0]["confirmations"] == 1  # the explorer knows better (arc#840)
    forced = await client.post(f"/_sim/tx/{tx.txid()}/status", json={"txStatus": "MINED"})
    assert forced.json()["txStatus"] == "MINED"
    assert (await client.get(f"/v1/tx/{tx.txid()}")).json()["merklePath"]


async def test_per_tx_outcome_rules(client: httpx.AsyncClient, alice: Key) -> None:
    coins = await fund(client, alice, count=4)
    a, b, c, d = (spend(x) for x in coins)
    await client.post(
        "/_sim/faults",
        json={
            "rules": [
                {"match": {"txid": a.txid()}, "action": "reject:non-final"},
                {"match": {"txid": b.txid()}, "action": "orphan"},
                {"match": {"txid": c.txid()}, "action": f"double_spend:{'ab' * 32}"},
                {"match": {"txid": d.txid()}, "action": "http:502", "times": 1},
            ]
        },
    )
    r = (await client.post("/v1/tx", json={"rawTx": ef_hex(a)})).json()
    assert r["txStatus"] == "REJECTED" and r["extraInfo"] == "invalid transaction: non-final"
    assert (await client.post("/v1/tx", json={"rawTx": ef_hex(b)})).json()["txStatus"] == "SEEN_IN_ORPHAN_MEMPOOL"
    r = (await client.post("/v1/tx", json={"rawTx": ef_hex(c)})).json()
    assert r["txStatus"] == "DOUBLE_SPEND_ATTEMPTED" and r["competingTxs"] == ["ab" * 32]
    assert (await client.post("/v1/tx", json={"rawTx": ef_hex(d)})).status_code == 502
    assert (await client.post("/v1/tx", json={"rawTx": ef_hex(d)})).json()["txStatus"] == "SEEN_ON_NETWORK"
    await client.post("/_sim/faults", json={"rules": [{"face": "woc", "action": "reject:bad-txns-nonfinal"}]})
    other = spend(coins[0], fee=9)
    r2 = await client.post("/v1/bsv/test/tx/raw", json={"txhex": other.hex()})
    assert r2.status_code == 500 and r2.text == "unexpected response code 500: 16: bad-txns-nonfinal"


async def test_arc_health_policy_and_height_faults(client: httpx.AsyncClient, alice: Key) -> None:
    [coin] = await fund(client, alice)
    await client.post(
        "/_sim/faults",
        json={
            "health_unhealthy": True,
            "block_height_unavailable": True,
            "policy_override": {"miningFee": {"satoshis": 50, "bytes": 1000}},
        },
    )
    health = await client.get("/v1/health")
    assert health.status_code == 200 and health.json()["healthy"] is False and health.json()["reason"]
    assert (await client.get("/v1/policy")).json()["policy"]["miningFee"]["satoshis"] == 50
    r = await client.post("/v1/tx", json={"rawTx": ef_hex(spend(coin, fee=200))})
    assert r.status_code == 409 and r.json()["extraInfo"] == "block height not yet available"
    bad = await client.post("/_sim/faults", json={"rules": [{"action": "explode"}]})
    assert bad.status_code == 400


async def test_policy_override_drives_validation(client: httpx.AsyncClient, alice: Key, bob: Key) -> None:
    coins = await fund(client, alice, count=2)
    await client.post("/_sim/faults", json={"policy_override": {"maxtxsizepolicy": 100}})
    r = await client.post("/v1/tx", json={"rawTx": ef_hex(spend(coins[0], bob))})
    assert r.status_code == 474 and "greater than 100 bytes" in r.json()["extraInfo"]
    await client.post("/_sim/faults", json={"policy_override": {"miningFee": {"satoshis": 100, "bytes": 1000}}})
    assert (await client.get("/v1/policy")).json()["policy"]["miningFee"] == {"satoshis": 100, "bytes": 1000}
    r = await client.post("/v1/tx", json={"rawTx": ef_hex(spend(coins[0], bob, fee=1))})
    assert r.status_code == 465 and "minimum expected fee: 20" in r.json()["extraInfo"]
    await client.delete("/_sim/faults")
    r = await client.post("/v1/tx", json={"rawTx": ef_hex(spend(coins[0], bob, fee=1))})
    assert r.json()["txStatus"] == "SEEN_ON_NETWORK"
    bad = await client.post("/_sim/faults", json={"policy_override": {"miningFee": {"satoshis": "x"}}})
    assert bad.status_code == 400
