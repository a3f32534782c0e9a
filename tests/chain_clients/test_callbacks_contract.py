"""ARC callbacks (X-CallbackUrl / X-CallbackToken) delivered to a local receiver and read back with
the kit's parser (§6.10 items 3, 9 and 14)."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

from proofline_kit.chain import (
    ArcClient,
    ArcStatus,
    ArcSubmitOptions,
    ArcTxStatus,
    WocClient,
    callback_authorized,
    parse_callback,
    verify_merkle_path,
)
from tests.chain_clients.conftest import arc_config
from tests.chain_clients.receiver import CallbackReceiver
from tests.chain_clients.sim import SimControl
from tests.chain_clients.wallet import Key, pay

pytestmark = pytest.mark.timeout(60)
TOKEN = "callback-secret"


def reports(receiver: CallbackReceiver, txid: str) -> list[ArcTxStatus]:
    found: list[ArcTxStatus] = []
    for received in receiver.received:
        found += [r for r in parse_callback(received.body) if r.txid == txid]
    return found


def callback_arc(
    http: httpx.AsyncClient,
    sim: SimControl,
    receiver: CallbackReceiver,
    *,
    full_status_updates: bool = False,
    callback_batch: bool = False,
) -> ArcClient:
    submit = ArcSubmitOptions(
        callback_url=receiver.url,
        callback_token=TOKEN,
        full_status_updates=full_status_updates,
        callback_batch=callback_batch,
    )
    return ArcClient(http, replace(arc_config(sim.base_url), submit=submit))


async def test_mined_callback_carries_a_verifiable_merkle_path(
    sim: SimControl, http: httpx.AsyncClient, woc: WocClient, receiver: CallbackReceiver, alice: Key, bob: Key
) -> None:
    arc = callback_arc(http, sim, receiver)
    [coin] = await sim.fund(alice)
    tx = pay(coin, bob)
    assert (await arc.broadcast(tx)).accepted
    assert (await arc.broadcast(tx)).accepted  # re-sent with the same callback: no second registration
    [block] = await sim.mine()

    await receiver.wait_until(lambda: any(r.status is ArcStatus.MINED for r in reports(receiver, tx.txid)))

    [mined] = reports(receiver, tx.txid)
    assert mined.block_hash == block["hash"]
    assert mined.merkle_path is not None
    assert (await verify_merkle_path(tx.txid, mined.merkle_path, woc)).valid
    assert all(callback_authorized(r.headers.get("authorization"), TOKEN) for r in receiver.received)
    assert not callback_authorized(receiver.received[0].headers.get("authorization"), "wrong-token")


async def test_full_status_updates_and_double_spend_callbacks(
    sim: SimControl, http: httpx.AsyncClient, receiver: CallbackReceiver, alice: Key, bob: Key
) -> None:
    arc = callback_arc(http, sim, receiver, full_status_updates=True)
    [coin] = await sim.fund(alice)
    winner, loser = pay(coin, bob), pay(coin, alice, fee=2)
    assert (await arc.broadcast(winner)).accepted
    assert (await arc.broadcast(loser)).competing_txids == (winner.txid,)
    await sim.mine()

    await receiver.wait_until(
        lambda: (
            ArcStatus.REJECTED in {r.status for r in reports(receiver, loser.txid)}
            and ArcStatus.MINED in {r.status for r in reports(receiver, winner.txid)}
        )
    )

    loser_reports = reports(receiver, loser.txid)
    assert [r.status for r in loser_reports] == [ArcStatus.DOUBLE_SPEND_ATTEMPTED, ArcStatus.REJECTED]
    assert loser_reports[0].competing_txids == (winner.txid,)
    winner_statuses = [r.status for r in reports(receiver, winner.txid)]
    assert winner_statuses[0] is ArcStatus.SEEN_ON_NETWORK
    assert winner_statuses[-1] is ArcStatus.MINED


async def test_reorg_sends_a_second_mined_callback(
    sim: SimControl, http: httpx.AsyncClient, woc: WocClient, receiver: CallbackReceiver, alice: Key, bob: Key
) -> None:
    arc = callback_arc(http, sim, receiver, callback_batch=True)
    [coin] = await sim.fund(alice)
    tx = pay(coin, bob)
    assert (await arc.broadcast(tx)).accepted
    await sim.mine()
    await receiver.wait_until(lambda: len(reports(receiver, tx.txid)) == 1)

    reorg = await sim.reorg(depth=1)

    await receiver.wait_until(lambda: len(reports(receiver, tx.txid)) == 2)
    first, second = reports(receiver, tx.txid)
    assert first.status is second.status is ArcStatus.MINED
    assert second.block_hash == reorg["new"][0]["hash"] != first.block_hash
    assert second.merkle_path is not None
    assert (await verify_merkle_path(tx.txid, second.merkle_path, woc)).valid
    assert all("callbacks" in r.body for r in receiver.received)  # X-CallbackBatch: batched bodies
