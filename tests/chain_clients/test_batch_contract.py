"""``POST /v1/txs`` with mixed results: every outcome is matched to its transaction by txid."""

from __future__ import annotations

import httpx
import pytest

from proofline_kit.chain import ArcClient, ArcStatus, OutcomeKind
from tests.chain_clients.conftest import RequestLog
from tests.chain_clients.sim import SimControl
from tests.chain_clients.wallet import Key, pay

pytestmark = pytest.mark.timeout(60)


async def test_batch_with_mixed_results_is_matched_by_txid(
    sim: SimControl, arc: ArcClient, alice: Key, bob: Key, request_log: RequestLog
) -> None:
    coins = await sim.fund(alice, count=6)
    mined_first = pay(coins[4], bob)
    assert (await arc.broadcast(mined_first)).accepted
    await sim.mine()
    seen_first = pay(coins[5], bob)
    assert (await arc.broadcast(seen_first)).accepted
    # Failures first in the request: ARC lists successes first, so position matching would mix them up.
    fee_too_low = pay(coins[0], bob, fee=0)
    bad_script = pay(coins[1], bob, signer=bob)
    good = pay(coins[2], bob)
    double_spend = pay(coins[5], alice, fee=2)
    orphan = pay(coins[4], alice, fee=2)  # spends an output already spent in a block
    good_too = pay(coins[3], bob, data=b"batch")
    batch = [fee_too_low, bad_script, good, double_spend, orphan, good_too, good]  # good twice

    outcomes = await arc.broadcast_many(batch)

    assert request_log.count("POST", "/v1/txs") == 1
    assert list(outcomes) == [
        fee_too_low.txid,
        bad_script.txid,
        good.txid,
        double_spend.txid,
        orphan.txid,
        good_too.txid,
    ]
    assert all(txid == o.txid for txid, o in outcomes.items())
    assert outcomes[fee_too_low.txid].kind is OutcomeKind.FEE_TOO_LOW
    assert outcomes[fee_too_low.txid].arc_code == 465
    assert outcomes[bad_script.txid].kind is OutcomeKind.INVALID
    assert outcomes[bad_script.txid].arc_code == 461
    assert outcomes[good.txid].kind is OutcomeKind.ACCEPTED
    assert outcomes[good.txid].status is ArcStatus.SEEN_ON_NETWORK
    assert outcomes[double_spend.txid].kind is OutcomeKind.DOUBLE_SPEND
    assert outcomes[double_spend.txid].competing_txids == (seen_first.txid,)
    assert outcomes[orphan.txid].kind is OutcomeKind.MISSING_INPUTS
    assert outcomes[good_too.txid].kind is OutcomeKind.ACCEPTED


async def test_batch_response_order_differs_from_request(
    sim: SimControl, http: httpx.AsyncClient, alice: Key, bob: Key
) -> None:
    """Guards the premise of the test above: chainsim, like ARC, lists successes before errors."""
    coins = await sim.fund(alice, count=2)
    bad = pay(coins[0], bob, fee=0)
    good = pay(coins[1], bob)

    response = await http.post(
        f"{sim.base_url}/v1/txs", json=[{"rawTx": bad.arc_payload.hex()}, {"rawTx": good.arc_payload.hex()}]
    )

    assert [entry["txid"] for entry in response.json()] == [good.txid, bad.txid]
