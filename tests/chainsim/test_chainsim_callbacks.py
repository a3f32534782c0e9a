"""Callback delivery as ARC does it (arc-woc.md §2.8, §6.10 item 15)."""

from __future__ import annotations

import asyncio
import socket

import httpx

from tests.chainsim.conftest import SimFactory
from tests.chainsim.helpers import Key, Receiver, ef_hex, fund, spend


async def _callbacks(client: httpx.AsyncClient, txid: str) -> list[dict[str, object]]:
    log: list[dict[str, object]] = (await client.get("/_sim/callbacks", params={"txid": txid})).json()
    return log


async def test_retries_until_2xx(client: httpx.AsyncClient, receiver: Receiver, alice: Key) -> None:
    [coin] = await fund(client, alice)
    tx = spend(coin)
    receiver.script = [500, 500, 200]
    await client.post("/v1/tx", json={"rawTx": ef_hex(tx)}, headers={"X-CallbackUrl": receiver.url})
    await client.post("/_sim/mine", json={})
    await receiver.wait_for(lambda: len(receiver.calls) == 3)
    await asyncio.sleep(0.2)
    assert len(receiver.calls) == 3
    [entry] = await _callbacks(client, tx.txid())
    assert entry["attempts"] == 3 and entry["state"] == "delivered" and entry["responses"] == [500, 500, 200]
    assert "Authorization" not in receiver.calls[0][0]


async def test_gives_up_after_max_retries(sim_factory: SimFactory, receiver: Receiver, alice: Key) -> None:
    sim = await sim_factory(callback_max_retries=2)
    async with httpx.AsyncClient(base_url=sim.base_url, trust_env=False) as client:
        [coin] = await fund(client, alice)
        tx = spend(coin)
        receiver.script = [503] * 10
        await client.post("/v1/tx", json={"rawTx": ef_hex(tx)}, headers={"X-CallbackUrl": receiver.url})
        await client.post("/_sim/mine", json={})
        await receiver.wait_for(lambda: len(receiver.calls) == 3)
        await asyncio.sleep(0.3)
        [entry] = await _callbacks(client, tx.txid())
        assert entry["state"] == "failed" and entry["attempts"] == 3 and len(receiver.calls) == 3


async def test_unreachable_receiver_disables_the_callback(client: httpx.AsyncClient, alice: Key) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    [coin] = await fund(client, alice)
    tx = spend(coin)
    url = f"http://127.0.0.1:{dead_port}/cb"
    await client.post("/v1/tx", json={"rawTx": ef_hex(tx)}, headers={"X-CallbackUrl": url})
    await client.post("/_sim/mine", json={})
    for _ in range(50):
        log = await _callbacks(client, tx.txid())
        if log and log[0]["state"] != "pending":
            break
        await asyncio.sleep(0.05)
    assert log[0]["state"] == "disabled" and log[0]["attempts"] == 1
    assert str(log[0]["responses"][0]).startswith("transport error")  # type: ignore[index]


async def test_full_status_updates_and_batching(client: httpx.AsyncClient, receiver: Receiver, alice: Key) -> None:
    coins = await fund(client, alice, count=3)
    txs = [spend(c) for c in coins]
    headers = {
        "X-CallbackUrl": receiver.url,
        "X-CallbackBatch": "true",
        "X-FullStatusUpdates": "true",
        "X-CallbackToken": "batch-token",
    }
    r = await client.post("/v1/txs", json=[{"rawTx": ef_hex(t)} for t in txs], headers=headers)
    assert len(r.json()) == 3
    await client.post("/_sim/mine", json={})
    await receiver.wait_for(lambda: sum(len(b.get("callbacks", [])) for _, b in receiver.calls) == 6)
    for hdrs, body in receiver.calls:
        assert body["count"] == len(body["callbacks"]) and hdrs["Authorization"] == "Bearer batch-token"
    for tx in txs:
        assert receiver.statuses(tx.txid()) == ["SEEN_ON_NETWORK", "MINED"]


async def test_default_triggers_skip_intermediate_statuses(
    client: httpx.AsyncClient, receiver: Receiver, alice: Key, bob: Key
) -> None:
    [coin] = await fund(client, alice)
    tx1, tx2 = spend(coin, bob, fee=1), spend(coin, bob, fee=2)
    for tx in (tx1, tx2):
        await client.post("/v1/tx", json={"rawTx": ef_hex(tx)}, headers={"X-CallbackUrl": receiver.url})
    await asyncio.sleep(0.3)
    assert receiver.calls == []  # SEEN and DOUBLE_SPEND_ATTEMPTED are below REJECTED
    await client.post("/_sim/mine", json={})
    await receiver.wait_for(lambda: len(receiver.calls) == 2)
    assert receiver.statuses(tx1.txid()) == ["MINED"] and receiver.statuses(tx2.txid()) == ["REJECTED"]


async def test_callback_on_already_mined_resubmission(
    client: httpx.AsyncClient, receiver: Receiver, alice: Key
) -> None:
    [coin] = await fund(client, alice)
    tx = spend(coin)
    await client.post("/v1/tx", json={"rawTx": ef_hex(tx)})
    await client.post("/_sim/mine", json={})
    r = await client.post(
        "/v1/tx", json={"rawTx": ef_hex(tx)}, headers={"X-CallbackUrl": receiver.url, "X-WaitFor": "MINED"}
    )
    assert r.json()["txStatus"] == "MINED" and r.json()["merklePath"]
    await receiver.wait_for(lambda: receiver.statuses(tx.txid()) == ["MINED"])


async def test_rejected_callback_urls(sim_factory: SimFactory, alice: Key) -> None:
    sim = await sim_factory(reject_callback_substrings=("http://localhost", "https://localhost"))
    async with httpx.AsyncClient(base_url=sim.base_url, trust_env=False) as client:
        [coin] = await fund(client, alice)
        raw = ef_hex(spend(coin))
        r = await client.post("/v1/tx", json={"rawTx": raw}, headers={"X-CallbackUrl": "http://localhost:9/cb"})
        assert r.status_code == 400 and r.json()["extraInfo"] == "callback URL not acceptable"
        r = await client.post("/v1/tx", json={"rawTx": raw}, headers={"X-CallbackUrl": "not a url"})
        assert r.status_code == 400 and r.json()["extraInfo"].startswith("invalid callback URL")
