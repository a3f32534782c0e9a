"""bsv-sdk's own ARC / WhatsOnChain classes, pointed at chainsim by base URL only (bsv-sdk.md §6)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from bsv import ARC, ARCConfig, MerklePath, Transaction, WhatsOnChainBroadcaster
from bsv.broadcasters.broadcaster import BroadcastFailure, BroadcastResponse
from bsv.chaintrackers.whatsonchain import WhatsOnChainTracker

from services.chainsim import ChainSim
from tests.chainsim.helpers import Key, build, coins_of, ef_hex, fund, spend


async def _arc(arc: ARC, tx: Any) -> Any:
    return await asyncio.wait_for(arc.broadcast(tx), 10)


def _woc(sim: ChainSim) -> WhatsOnChainBroadcaster:
    b = WhatsOnChainBroadcaster("test")
    b.URL = f"{sim.base_url}/v1/bsv/test/tx/raw"
    return b


async def test_sdk_arc_success_and_status(sim: ChainSim, client: httpx.AsyncClient, alice: Key, bob: Key) -> None:
    [coin] = await fund(client, alice)
    tx = spend(coin, bob)
    arc = ARC(sim.base_url, ARCConfig(api_key="anything"))
    result = await _arc(arc, tx)
    assert isinstance(result, BroadcastResponse) and result.status == "success"
    assert result.txid == tx.txid() and result.message == "SEEN_ON_NETWORK"
    await client.post("/_sim/mine", json={})
    status = await asyncio.to_thread(arc.check_transaction_status, tx.txid())
    assert status["txStatus"] == "MINED" and status["blockHeight"] == sim.state.height
    assert ARC.categorize_transaction_status(status)["status_category"] == "mined"
    tracker = WhatsOnChainTracker("test")
    tracker.URL = f"{sim.base_url}/v1/bsv/test"
    path = MerklePath.from_hex(status["merklePath"])
    assert await asyncio.wait_for(path.verify(tx.txid(), tracker), 10) is True
    wrong = MerklePath.from_hex(status["merklePath"])
    wrong.path[0] = [dict(leaf, hash_str="00" * 32) if not leaf.get("txid") else leaf for leaf in wrong.path[0]]
    assert (
        await asyncio.wait_for(tracker.is_valid_root_for_height(wrong.compute_root(tx.txid()), wrong.block_height), 10)
        is False
    )


async def test_sdk_arc_failures_look_like_real_arc(
    sim: ChainSim, client: httpx.AsyncClient, alice: Key, bob: Key
) -> None:
    coins = await fund(client, alice, count=3)
    arc = ARC(sim.base_url)
    no_fee = build([coins[0]], [(coins[0].satoshis, bob.lock)])
    result = await _arc(arc, no_fee)
    assert isinstance(result, BroadcastFailure) and result.code == "465"
    assert result.description == "Fees are too low"
    assert result.more["arc_json"]["data"]["extraInfo"].startswith("arc error 465:")
    skip = ARC(sim.base_url, ARCConfig(headers={"X-SkipFeeValidation": "true"}))
    result = await _arc(skip, no_fee)
    assert isinstance(result, BroadcastFailure) and result.code == "ARC_TX_STATUS"
    assert result.description == "REJECTED: invalid transaction: mempool min fee not met"
    # quirk kept: a double spend is a "success" for the SDK (DOUBLE_SPEND_ATTEMPTED is only a warning)
    first, second = spend(coins[1], bob, fee=1), spend(coins[1], bob, fee=2)
    assert (await _arc(arc, first)).status == "success"
    ds = await _arc(arc, second)
    assert isinstance(ds, BroadcastResponse) and ds.message == "DOUBLE_SPEND_ATTEMPTED"
    await client.post("/_sim/faults", json={"rules": [{"face": "arc", "action": "http:503", "times": 1}]})
    down = await _arc(arc, spend(coins[2], bob))
    assert isinstance(down, BroadcastFailure) and down.code == "503"
    sync = await asyncio.to_thread(arc.sync_broadcast, spend(coins[2], bob), 10)
    assert isinstance(sync, BroadcastResponse) and sync.message == "SEEN_ON_NETWORK"


async def test_sdk_arc_raw_format_and_unknown_parents(sim: ChainSim, client: httpx.AsyncClient, alice: Key) -> None:
    [coin] = await fund(client, alice)
    tx = spend(coin)
    octet = ARC(sim.base_url, ARCConfig(format="raw"))
    assert (await _arc(octet, tx)).message == "SEEN_ON_NETWORK"
    # without source transactions the SDK sends plain raw hex: fine while the parent is known ...
    child = Transaction.from_hex(spend(coins_of(tx, alice)[0]).hex())
    assert (await _arc(ARC(sim.base_url), child)).status == "success"
    # ... and 460 when it is not
    [phantom] = coins_of(spend(coins_of(child, alice)[0]), alice)
    orphan = Transaction.from_hex(spend(phantom).hex())
    result = await _arc(ARC(sim.base_url), orphan)
    assert isinstance(result, BroadcastFailure) and result.code == "460"


async def test_sdk_whatsonchain_broadcaster(sim: ChainSim, client: httpx.AsyncClient, alice: Key, bob: Key) -> None:
    [coin] = await fund(client, alice)
    woc = _woc(sim)
    tx1, tx2 = spend(coin, bob, fee=1), spend(coin, bob, fee=2)
    ok = await asyncio.wait_for(woc.broadcast(tx1), 10)
    assert isinstance(ok, BroadcastResponse) and ok.status == "success" and ok.txid == tx1.txid()
    again = await asyncio.wait_for(woc.broadcast(tx1), 10)
    assert isinstance(again, BroadcastResponse) and "already in mempool" in again.message
    conflict = await asyncio.wait_for(woc.broadcast(tx2), 10)
    assert isinstance(conflict, BroadcastFailure) and conflict.code == "500"
    assert conflict.description == "unexpected response code 500: 258: txn-mempool-conflict"
    await client.post("/_sim/mine", json={})
    late = spend(coin, bob, fee=3)
    missing = await asyncio.wait_for(woc.broadcast(late), 10)
    assert isinstance(missing, BroadcastFailure) and missing.description.endswith("Missing inputs")
    assert (await client.get(f"/v1/tx/{tx1.txid()}")).json()["txStatus"] == "MINED"


async def test_beef_submission(sim: ChainSim, client: httpx.AsyncClient, alice: Key, bob: Key) -> None:
    [coin] = await fund(client, alice, 40_000)
    parent = spend(coin, alice)
    await client.post("/v1/tx", json={"rawTx": ef_hex(parent)})
    await client.post("/_sim/mine", json={})
    mp = MerklePath.from_hex((await client.get(f"/v1/tx/{parent.txid()}")).json()["merklePath"])
    proven = Transaction.from_hex(parent.hex())
    proven.merkle_path = mp
    [pcoin] = coins_of(parent, alice)
    middle = spend(pcoin, alice)
    middle.inputs[0].source_transaction = proven
    child = spend(coins_of(middle, alice)[0], bob)
    child.inputs[0].source_transaction = middle
    beef = child.to_beef()
    r = await client.post("/v1/tx", content=beef, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200 and r.json()["txid"] == child.txid() and r.json()["txStatus"] == "SEEN_ON_NETWORK"
    assert (await client.get(f"/v1/tx/{middle.txid()}")).json()["txStatus"] == "SEEN_ON_NETWORK"
    # a BUMP whose root is not ours
    [c2] = await fund(client, alice, 10_000)
    forged_parent = Transaction.from_hex(c2.parent_hex)
    forged_parent.merkle_path = MerklePath(mp.block_height, mp.path)
    forged_parent.merkle_path.path[0] = [
        {"offset": 0, "hash_str": forged_parent.txid(), "txid": True},
        {"offset": 1, "hash_str": "11" * 32},
    ]
    forged_parent.merkle_path.path = forged_parent.merkle_path.path[:1]
    bad_child = spend(c2, bob)
    bad_child.inputs[0].source_transaction = forged_parent
    r = await client.post("/v1/tx", content=bad_child.to_beef(), headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 469, r.text
