"""The ARC-then-WhatsOnChain broadcaster against a live chainsim: who answered what."""

from __future__ import annotations

import time

import httpx
import pytest

from proofline_kit.chain import (
    ArcClient,
    Attempt,
    Broadcaster,
    Deadline,
    OutcomeKind,
    Provider,
    WocClient,
)
from tests.chain_clients.conftest import RequestLog, arc_config
from tests.chain_clients.sim import SimControl
from tests.chain_clients.wallet import Key, coins_of, pay

pytestmark = pytest.mark.timeout(60)


def trail(attempts: tuple[Attempt, ...]) -> list[tuple[Provider, OutcomeKind]]:
    return [(a.provider, a.outcome.kind) for a in attempts]


async def test_arc_answer_ends_the_broadcast(
    sim: SimControl, broadcaster: Broadcaster, request_log: RequestLog, alice: Key, bob: Key
) -> None:
    [coin, coin2] = await sim.fund(alice, count=2)

    ok = await broadcaster.broadcast(pay(coin, bob))
    low_fee = await broadcaster.broadcast(pay(coin2, bob, fee=0))

    assert ok.answered_by is Provider.ARC
    assert trail(ok.attempts) == [(Provider.ARC, OutcomeKind.ACCEPTED)]
    assert trail(low_fee.attempts) == [(Provider.ARC, OutcomeKind.FEE_TOO_LOW)]
    assert request_log.count("POST", "/tx/raw") == 0


async def test_falls_back_to_woc_when_arc_is_down(
    sim: SimControl, broadcaster: Broadcaster, arc: ArcClient, woc: WocClient, alice: Key, bob: Key
) -> None:
    [coin] = await sim.fund(alice)
    tx = pay(coin, bob)
    await sim.faults({"arc": {"error_rate": 1.0, "error_statuses": [503]}})

    report = await broadcaster.broadcast(tx)

    assert report.outcome.kind is OutcomeKind.ACCEPTED
    assert report.answered_by is Provider.WOC
    assert trail(report.attempts) == [(Provider.ARC, OutcomeKind.UNAVAILABLE), (Provider.WOC, OutcomeKind.ACCEPTED)]
    assert report.attempts[0].outcome.http_status == 503
    await sim.clear_faults()
    # ARC learns the tx from the node: re-sending the same bytes now gets ARC's status.
    assert (await broadcaster.broadcast(tx)).answered_by is Provider.ARC


async def test_both_down_is_unavailable_with_both_attempts(
    sim: SimControl, broadcaster: Broadcaster, alice: Key, bob: Key
) -> None:
    [coin] = await sim.fund(alice)
    await sim.faults({"arc": {"error_rate": 1.0}, "woc": {"error_rate": 1.0, "error_statuses": [502]}})

    report = await broadcaster.broadcast(pay(coin, bob))

    assert report.outcome.kind is OutcomeKind.UNAVAILABLE
    assert trail(report.attempts) == [(Provider.ARC, OutcomeKind.UNAVAILABLE), (Provider.WOC, OutcomeKind.UNAVAILABLE)]


async def test_hanging_arc_leaves_woc_time_to_answer(
    sim: SimControl, http: httpx.AsyncClient, woc: WocClient, alice: Key, bob: Key
) -> None:
    arc = ArcClient(http, arc_config(sim.base_url, attempt_timeout_s=30.0))
    broadcaster = Broadcaster([arc, woc])
    [coin] = await sim.fund(alice)
    await sim.faults({"rules": [{"face": "arc", "match": "any", "action": "hang", "times": 5}]})

    started = time.monotonic()
    report = await broadcaster.broadcast(pay(coin, bob), deadline=Deadline.after(2.0))
    elapsed = time.monotonic() - started

    assert report.answered_by is Provider.WOC
    assert report.outcome.accepted
    assert 0.9 < elapsed < 2.0  # ARC got half of the budget


async def test_batch_falls_back_per_tx_parents_first(
    sim: SimControl, broadcaster: Broadcaster, request_log: RequestLog, alice: Key, bob: Key
) -> None:
    coins = await sim.fund(alice, count=2)
    chain = [pay(coins[0], alice)]
    for _ in range(3):
        [coin] = coins_of(chain[-1], alice)
        chain.append(pay(coin, alice))
    low_fee = pay(coins[1], bob, fee=0)
    await sim.faults({"arc": {"error_rate": 1.0, "error_statuses": [500]}})

    reports = await broadcaster.broadcast_many([*reversed(chain), low_fee])

    assert request_log.count("POST", "/v1/txs") == 3
    assert request_log.count("POST", "/tx/raw") == 5
    assert list(reports) == [tx.txid for tx in [*reversed(chain), low_fee]]
    for tx in chain:
        assert reports[tx.txid].answered_by is Provider.WOC
        assert trail(reports[tx.txid].attempts) == [
            (Provider.ARC, OutcomeKind.UNAVAILABLE),
            (Provider.WOC, OutcomeKind.ACCEPTED),
        ]
    assert reports[low_fee.txid].outcome.kind is OutcomeKind.FEE_TOO_LOW
    assert reports[low_fee.txid].answered_by is Provider.WOC


async def test_batch_answered_by_arc(sim: SimControl, broadcaster: Broadcaster, alice: Key, bob: Key) -> None:
    coins = await sim.fund(alice, count=2)
    good, bad = pay(coins[0], bob), pay(coins[1], bob, signer=bob)

    reports = await broadcaster.broadcast_many([bad, good])

    assert trail(reports[good.txid].attempts) == [(Provider.ARC, OutcomeKind.ACCEPTED)]
    assert trail(reports[bad.txid].attempts) == [(Provider.ARC, OutcomeKind.INVALID)]
