"""Faults injected through chainsim's fault API: the clients retry 5xx, 429, timeouts and dropped
connections with backoff, then report UNAVAILABLE; 4xx answers are never retried (§6.8, §6.10)."""

from __future__ import annotations

import time
from dataclasses import replace

import httpx
import pytest

from proofline_kit.chain import ArcClient, ChainUnavailable, Deadline, OutcomeKind, RetryPolicy, WocClient
from tests.chain_clients.conftest import RequestLog, arc_config, woc_config
from tests.chain_clients.sim import SimControl
from tests.chain_clients.wallet import Key, pay

pytestmark = pytest.mark.timeout(60)


def arc_rule(action: str, times: int = 10) -> dict[str, object]:
    return {"rules": [{"face": "arc", "match": "any", "action": action, "times": times}]}


def woc_rule(action: str, times: int = 10) -> dict[str, object]:
    return {"rules": [{"face": "woc", "match": "any", "action": action, "times": times}]}


async def test_arc_5xx_is_retried_until_it_succeeds(
    sim: SimControl, arc: ArcClient, request_log: RequestLog, alice: Key, bob: Key
) -> None:
    [coin] = await sim.fund(alice)
    await sim.faults(arc_rule("http:503", times=2))

    outcome = await arc.broadcast(pay(coin, bob))

    assert outcome.kind is OutcomeKind.ACCEPTED
    assert request_log.count("POST", "/v1/tx") == 3
    assert (await sim.fault_rules())[0]["used"] == 2


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_arc_persistent_5xx_ends_unavailable(
    sim: SimControl, arc: ArcClient, request_log: RequestLog, alice: Key, bob: Key, status: int
) -> None:
    [coin] = await sim.fund(alice)
    await sim.faults({"arc": {"error_rate": 1.0, "error_statuses": [status]}})

    outcome = await arc.broadcast(pay(coin, bob))

    assert outcome.kind is OutcomeKind.UNAVAILABLE
    assert outcome.http_status == status
    assert f"HTTP {status} after 3 attempt(s)" in outcome.reason
    assert request_log.count("POST", "/v1/tx") == 3


async def test_arc_429_is_retried_then_unavailable(
    sim: SimControl, arc: ArcClient, request_log: RequestLog, alice: Key, bob: Key
) -> None:
    [coin] = await sim.fund(alice)
    await sim.faults(arc_rule("http:429"))

    outcome = await arc.broadcast(pay(coin, bob))

    assert outcome.kind is OutcomeKind.UNAVAILABLE
    assert outcome.http_status == 429
    assert request_log.count("POST", "/v1/tx") == 3


async def test_arc_timeouts_are_retried_within_bounds(
    sim: SimControl, http: httpx.AsyncClient, request_log: RequestLog, alice: Key, bob: Key
) -> None:
    arc = ArcClient(http, arc_config(sim.base_url, attempt_timeout_s=0.3))
    [coin] = await sim.fund(alice)
    await sim.faults({"arc": {"timeout_rate": 1.0}})

    started = time.monotonic()
    outcome = await arc.broadcast(pay(coin, bob))
    elapsed = time.monotonic() - started

    assert outcome.kind is OutcomeKind.UNAVAILABLE
    assert "Timeout" in outcome.reason or "timeout" in outcome.reason.lower()
    assert request_log.count("POST", "/v1/tx") == 3
    assert 0.9 <= elapsed < 2.0


async def test_arc_dropped_connections_are_retried(
    sim: SimControl, arc: ArcClient, request_log: RequestLog, alice: Key, bob: Key
) -> None:
    [coin] = await sim.fund(alice)
    await sim.faults({"arc": {"drop_connection_rate": 1.0}})

    outcome = await arc.broadcast(pay(coin, bob))

    assert outcome.kind is OutcomeKind.UNAVAILABLE
    assert request_log.count("POST", "/v1/tx") == 3


async def test_the_deadline_bounds_every_attempt(
    sim: SimControl, http: httpx.AsyncClient, request_log: RequestLog, alice: Key, bob: Key
) -> None:
    arc = ArcClient(http, arc_config(sim.base_url, attempt_timeout_s=10.0))
    [coin] = await sim.fund(alice)
    await sim.faults(arc_rule("hang"))

    started = time.monotonic()
    outcome = await arc.broadcast(pay(coin, bob), deadline=Deadline.after(0.8))
    elapsed = time.monotonic() - started

    assert outcome.kind is OutcomeKind.UNAVAILABLE
    assert elapsed < 1.3
    assert request_log.count("POST", "/v1/tx") == 1


async def test_max_timeout_header_follows_the_attempt_timeout(
    sim: SimControl, http: httpx.AsyncClient, request_log: RequestLog, alice: Key, bob: Key
) -> None:
    [coin, coin2] = await sim.fund(alice, count=2)
    await ArcClient(http, arc_config(sim.base_url, attempt_timeout_s=3.5, max_wait_s=30)).broadcast(pay(coin, bob))
    await ArcClient(http, arc_config(sim.base_url, attempt_timeout_s=60.0, max_wait_s=7)).broadcast(pay(coin2, bob))

    sent = [r.headers["X-MaxTimeout"] for r in request_log.requests if r.url.path == "/v1/tx"]
    assert sent == ["2", "7"]
    assert all(r.headers["Authorization"] == "Bearer test-arc-key" for r in request_log.requests)


@pytest.mark.parametrize(("status", "kind"), [(400, OutcomeKind.INVALID), (409, OutcomeKind.UNAVAILABLE)])
async def test_arc_4xx_is_not_retried(
    sim: SimControl,
    arc: ArcClient,
    request_log: RequestLog,
    alice: Key,
    bob: Key,
    status: int,
    kind: OutcomeKind,
) -> None:
    [coin] = await sim.fund(alice)
    await sim.faults(arc_rule(f"http:{status}"))

    outcome = await arc.broadcast(pay(coin, bob))

    assert outcome.kind is kind
    assert outcome.http_status == status
    assert request_log.count("POST", "/v1/tx") == 1


async def test_arc_lookups_raise_unavailable_after_retries(
    sim: SimControl, arc: ArcClient, request_log: RequestLog
) -> None:
    await sim.faults({"arc": {"error_rate": 1.0, "error_statuses": [502]}})

    with pytest.raises(ChainUnavailable) as caught:
        await arc.status("ab" * 32)

    assert caught.value.attempts == 3
    assert caught.value.http_status == 502
    assert caught.value.reason == "CHAIN_PROVIDER_UNAVAILABLE"
    assert request_log.count("GET", "/v1/tx/" + "ab" * 32) == 3


async def test_arc_unknown_txid_is_none_without_retry(sim: SimControl, arc: ArcClient, request_log: RequestLog) -> None:
    assert await arc.status("ab" * 32) is None
    assert request_log.count("GET", "/v1/tx/" + "ab" * 32) == 1


async def test_woc_injected_5xx_is_retried(
    sim: SimControl, woc: WocClient, request_log: RequestLog, alice: Key, bob: Key
) -> None:
    [coin] = await sim.fund(alice)
    await sim.faults(woc_rule("http:500", times=2))

    outcome = await woc.broadcast(pay(coin, bob))

    assert outcome.kind is OutcomeKind.ACCEPTED
    assert request_log.count("POST", "/tx/raw") == 3


async def test_woc_node_verdict_in_a_500_is_not_retried(
    sim: SimControl, woc: WocClient, request_log: RequestLog, alice: Key, bob: Key
) -> None:
    [coin] = await sim.fund(alice)
    assert (await woc.broadcast(pay(coin, bob))).accepted
    await sim.mine()

    outcome = await woc.broadcast(pay(coin, alice, fee=2))  # "unexpected response code 500: Missing inputs"

    assert outcome.kind is OutcomeKind.MISSING_INPUTS
    assert outcome.http_status == 500
    assert request_log.count("POST", "/tx/raw") == 2


async def test_woc_rate_limit_then_unavailable(
    sim: SimControl, http: httpx.AsyncClient, request_log: RequestLog
) -> None:
    woc = WocClient(
        http, woc_config(sim.base_url, retry=RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.02))
    )
    await sim.faults(woc_rule("http:429"))

    with pytest.raises(ChainUnavailable) as caught:
        await woc.chain_tip()

    assert caught.value.http_status == 429
    assert request_log.count("GET", "/chain/info") == 2


async def test_woc_rate_limiter_recovers_with_backoff(sim: SimControl, http: httpx.AsyncClient) -> None:
    """chainsim's token bucket at 3 req/s: a burst hits 429s, and retries with backoff get through."""
    patient = RetryPolicy(max_attempts=6, base_delay_s=0.2, max_delay_s=0.8)
    woc = WocClient(http, replace(woc_config(sim.base_url, retry=patient), api_key=None))
    await sim.faults({"woc": {"rate_limit_rps": 3}})

    tips = [await woc.chain_tip() for _ in range(6)]

    assert len({t.block_hash for t in tips}) == 1
