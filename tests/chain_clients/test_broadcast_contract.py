"""Broadcast scenarios of arc-woc.md §6.10 against a live chainsim: ARC and WhatsOnChain clients."""

from __future__ import annotations

import httpx
import pytest

from proofline_kit.chain import ArcClient, ArcStatus, OutcomeKind, PreparedTx, Provider, WocClient
from tests.chain_clients.conftest import RequestLog, arc_config, woc_config
from tests.chain_clients.sim import SimControl
from tests.chain_clients.wallet import Key, build, coins_of, pay

pytestmark = pytest.mark.timeout(60)


async def test_valid_tx_is_accepted_seen_on_network(sim: SimControl, arc: ArcClient, alice: Key, bob: Key) -> None:
    [coin] = await sim.fund(alice)
    tx = pay(coin, bob, data=b"proofline")

    outcome = await arc.broadcast(tx)

    assert outcome.kind is OutcomeKind.ACCEPTED
    assert outcome.status is ArcStatus.SEEN_ON_NETWORK
    assert outcome.provider is Provider.ARC
    assert outcome.txid == tx.txid
    status = await arc.status(tx.txid)
    assert status is not None
    assert status.status is ArcStatus.SEEN_ON_NETWORK


async def test_rebroadcast_of_same_bytes_is_idempotent(
    sim: SimControl, arc: ArcClient, woc: WocClient, alice: Key, bob: Key
) -> None:
    [coin] = await sim.fund(alice)
    tx = pay(coin, bob)

    first = await arc.broadcast(tx)
    again = await arc.broadcast(tx)
    via_woc = await woc.broadcast(tx)  # "Transaction already in the mempool"

    assert first.kind is again.kind is via_woc.kind is OutcomeKind.ACCEPTED
    assert first.status is again.status is ArcStatus.SEEN_ON_NETWORK
    assert "already in the mempool" in via_woc.reason.lower()

    await sim.mine()
    after_mining = await woc.broadcast(tx)  # "257: txn-already-known"
    assert after_mining.kind is OutcomeKind.ACCEPTED
    mined = await arc.broadcast(tx)
    assert mined.kind is OutcomeKind.ACCEPTED
    assert mined.status is ArcStatus.MINED


async def test_woc_accepts_a_valid_raw_tx(sim: SimControl, woc: WocClient, alice: Key, bob: Key) -> None:
    [coin] = await sim.fund(alice)
    tx = pay(coin, bob)

    outcome = await woc.broadcast(tx)

    assert outcome.kind is OutcomeKind.ACCEPTED
    assert outcome.provider is Provider.WOC
    assert outcome.status is None


async def test_double_spend_reports_competing_txids(
    sim: SimControl, arc: ArcClient, woc: WocClient, alice: Key, bob: Key
) -> None:
    [coin] = await sim.fund(alice)
    tx1 = pay(coin, bob)
    tx2 = pay(coin, alice, fee=2)
    tx3 = pay(coin, bob, fee=3)

    assert (await arc.broadcast(tx1)).accepted
    second = await arc.broadcast(tx2)
    third = await arc.broadcast(tx3)
    via_woc = await woc.broadcast(pay(coin, alice, fee=4))

    assert second.kind is OutcomeKind.DOUBLE_SPEND
    assert second.status is ArcStatus.DOUBLE_SPEND_ATTEMPTED
    assert tx1.txid in second.competing_txids
    assert third.kind is OutcomeKind.DOUBLE_SPEND
    assert tx1.txid in third.competing_txids
    assert via_woc.kind is OutcomeKind.DOUBLE_SPEND
    assert via_woc.provider is Provider.WOC

    # The first-seen tx wins when mined; the losers end REJECTED, still read as double spends.
    await sim.mine()
    winner = await arc.status(tx1.txid)
    loser = await arc.status(tx2.txid)
    assert winner is not None
    assert winner.status is ArcStatus.MINED
    assert loser is not None
    assert loser.status is ArcStatus.REJECTED
    assert (await arc.broadcast(tx2)).kind is OutcomeKind.DOUBLE_SPEND


async def test_missing_inputs_arc_faithful_is_orphan(
    sim: SimControl, arc: ArcClient, woc: WocClient, alice: Key, bob: Key
) -> None:
    [coin] = await sim.fund(alice)
    assert (await arc.broadcast(pay(coin, bob))).accepted
    await sim.mine()
    late = pay(coin, alice, fee=2)  # its input was spent in a block

    outcome = await arc.broadcast(late)
    via_woc = await woc.broadcast(pay(coin, alice, fee=3))

    assert outcome.kind is OutcomeKind.MISSING_INPUTS
    assert outcome.status is ArcStatus.SEEN_IN_ORPHAN_MEMPOOL
    assert via_woc.kind is OutcomeKind.MISSING_INPUTS


async def test_missing_inputs_unknown_parent(sim: SimControl, arc: ArcClient, alice: Key, bob: Key) -> None:
    [coin] = await sim.fund(alice)
    parent = pay(coin, alice)  # never broadcast
    [child_coin] = coins_of(parent, alice)

    outcome = await arc.broadcast(pay(child_coin, bob))

    assert outcome.kind is OutcomeKind.MISSING_INPUTS


async def test_missing_inputs_strict_profile_is_rejected(
    strict_sim: SimControl, http: httpx.AsyncClient, alice: Key, bob: Key
) -> None:
    arc = ArcClient(http, arc_config(strict_sim.base_url))
    woc = WocClient(http, woc_config(strict_sim.base_url))
    [coin] = await strict_sim.fund(alice)
    assert (await arc.broadcast(pay(coin, bob))).accepted
    await strict_sim.mine()

    outcome = await arc.broadcast(pay(coin, alice, fee=2))
    via_woc = await woc.broadcast(pay(coin, alice, fee=3))

    assert outcome.kind is OutcomeKind.MISSING_INPUTS
    assert outcome.status is ArcStatus.REJECTED
    assert via_woc.kind is OutcomeKind.MISSING_INPUTS


async def test_fee_too_low(sim: SimControl, arc: ArcClient, woc: WocClient, alice: Key, bob: Key) -> None:
    [coin, coin2] = await sim.fund(alice, count=2)

    outcome = await arc.broadcast(pay(coin, bob, fee=0))
    via_woc = await woc.broadcast(pay(coin2, bob, fee=0))

    assert outcome.kind is OutcomeKind.FEE_TOO_LOW
    assert outcome.arc_code == 465
    assert outcome.http_status == 465
    assert outcome.reason.startswith("arc error 465")
    assert via_woc.kind is OutcomeKind.FEE_TOO_LOW


async def test_invalid_script(sim: SimControl, arc: ArcClient, woc: WocClient, alice: Key, bob: Key) -> None:
    [coin, coin2] = await sim.fund(alice, count=2)

    outcome = await arc.broadcast(pay(coin, bob, signer=bob))  # signed by the wrong key
    via_woc = await woc.broadcast(pay(coin2, bob, signer=bob))

    assert outcome.kind is OutcomeKind.INVALID
    assert outcome.arc_code == 461
    assert via_woc.kind is OutcomeKind.INVALID
    assert via_woc.reason


async def test_invalid_outputs_and_malformed(sim: SimControl, arc: ArcClient, alice: Key, bob: Key) -> None:
    [coin] = await sim.fund(alice)
    one_sat_op_return = build([coin], [(1, bytes.fromhex("006a0131")), (coin.satoshis - 2, bob.lock)])

    outcome = await arc.broadcast(one_sat_op_return)

    assert outcome.kind is OutcomeKind.INVALID
    assert outcome.arc_code == 464
    # 60 bytes of nonsense that still parse as a transaction: ARC refuses before any node sees it.
    tiny = PreparedTx.from_hex("01000000" + "00" + "01" + "0000000000000000" + "00" + "00000000")
    assert (await arc.broadcast(tiny)).kind is OutcomeKind.INVALID


async def test_unconfirmed_chain_in_one_batch_is_all_accepted(
    sim: SimControl, arc: ArcClient, alice: Key, request_log: RequestLog
) -> None:
    [coin] = await sim.fund(alice)
    chain = []
    for _ in range(5):
        tx = pay(coin, alice)
        chain.append(tx)
        [coin] = coins_of(tx, alice)

    outcomes = await arc.broadcast_many(chain)

    assert list(outcomes) == [tx.txid for tx in chain]
    assert all(o.kind is OutcomeKind.ACCEPTED for o in outcomes.values())
    assert request_log.count("POST", "/v1/txs") == 1
