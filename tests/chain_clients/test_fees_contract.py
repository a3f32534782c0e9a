"""Fee rate from ARC's /v1/policy, cached with a TTL and a floor, against a live chainsim."""

from __future__ import annotations

import pytest

from proofline_kit.chain import ArcClient, FeeRate, FeeRateCache, FeeSource
from tests.chain_clients.sim import SimControl

pytestmark = pytest.mark.timeout(60)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def test_policy_and_health(sim: SimControl, arc: ArcClient) -> None:
    policy = await arc.policy()
    health = await arc.health()

    assert policy.fee_rate == FeeRate(1, 1000)
    assert policy.max_tx_size == 100_000_000
    assert policy.standard_format_supported is True
    assert health.healthy


async def test_fee_rate_is_cached_refreshed_and_floored(sim: SimControl, arc: ArcClient) -> None:
    clock = FakeClock()
    cache = FeeRateCache(arc, ttl_s=60, floor=FeeRate(1, 1000), error_backoff_s=5, clock=clock)

    first = await cache.quote()
    await sim.faults({"policy_override": {"miningFee": {"satoshis": 50, "bytes": 1000}}})
    cached = await cache.quote()
    clock.now += 61
    refreshed = await cache.quote()
    await sim.faults({"policy_override": {"miningFee": {"satoshis": 5, "bytes": 10000}}})  # 0.5 sat/kB
    clock.now += 61
    floored = await cache.quote()

    assert (first.rate, first.source) == (FeeRate(1, 1000), FeeSource.FRESH)
    assert (cached.rate, cached.source) == (FeeRate(1, 1000), FeeSource.CACHED)
    assert (refreshed.rate, refreshed.source) == (FeeRate(50, 1000), FeeSource.FRESH)
    assert refreshed.rate.fee_for(226) == 12
    assert (floored.rate, floored.source) == (FeeRate(1, 1000), FeeSource.FRESH)


async def test_fee_rate_survives_arc_outage(sim: SimControl, arc: ArcClient) -> None:
    clock = FakeClock()
    cache = FeeRateCache(arc, ttl_s=60, floor=FeeRate(2, 1000), error_backoff_s=5, clock=clock)
    await sim.faults({"arc": {"error_rate": 1.0}, "policy_override": {"miningFee": {"satoshis": 10, "bytes": 1000}}})

    nothing_yet = await cache.quote()
    assert (nothing_yet.rate, nothing_yet.source) == (FeeRate(2, 1000), FeeSource.FLOOR)

    await sim.faults({"policy_override": {"miningFee": {"satoshis": 10, "bytes": 1000}}})
    clock.now += 1  # still inside the error backoff: no new fetch
    assert (await cache.quote()).source is FeeSource.FLOOR
    clock.now += 5
    assert (await cache.quote()).rate == FeeRate(10, 1000)

    await sim.faults({"arc": {"error_rate": 1.0}})
    clock.now += 61
    stale = await cache.quote()
    assert (stale.rate, stale.source) == (FeeRate(10, 1000), FeeSource.STALE)
