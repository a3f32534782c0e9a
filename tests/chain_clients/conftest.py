"""Fixtures: a live chainsim subprocess per profile (reset before every test), the clients under
test wired to it, funded keys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest

from proofline_kit.chain import ArcClient, ArcConfig, Broadcaster, RetryPolicy, WocClient, WocConfig
from tests.chain_clients.receiver import CallbackReceiver
from tests.chain_clients.sim import SimControl, chainsim_process
from tests.chain_clients.wallet import Key

# Small pages so paging is exercised; quick callback retries so callback tests stay short.
SIM_SETTINGS = {"woc_page_size": "3", "callback_retry_pause_ms": "50", "callback_batch_interval_ms": "100"}
FAST_RETRY = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.05)


@pytest.fixture(scope="session")
def chainsim_url() -> Iterator[str]:
    with chainsim_process(profile="arc_faithful", **SIM_SETTINGS) as url:
        yield url


@pytest.fixture(scope="session")
def strict_chainsim_url() -> Iterator[str]:
    with chainsim_process(profile="strict", **SIM_SETTINGS) as url:
        yield url


@dataclass
class RequestLog:
    """Every request our clients put on the wire (to count retries from the client side)."""

    requests: list[httpx.Request]

    def count(self, method: str, path_suffix: str) -> int:
        return sum(1 for r in self.requests if r.method == method and r.url.path.endswith(path_suffix))


@pytest.fixture
def request_log() -> RequestLog:
    return RequestLog([])


@pytest.fixture
async def http(request_log: RequestLog) -> AsyncIterator[httpx.AsyncClient]:
    async def record(request: httpx.Request) -> None:
        request_log.requests.append(request)

    async with httpx.AsyncClient(trust_env=False, event_hooks={"request": [record]}) as client:
        yield client


@pytest.fixture
async def control_http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=10.0) as client:
        yield client


@pytest.fixture
async def sim(chainsim_url: str, control_http: httpx.AsyncClient) -> AsyncIterator[SimControl]:
    control = SimControl(control_http, chainsim_url)
    await control.reset()
    yield control
    await control.clear_faults()


@pytest.fixture
async def strict_sim(strict_chainsim_url: str, control_http: httpx.AsyncClient) -> SimControl:
    control = SimControl(control_http, strict_chainsim_url)
    await control.reset()
    return control


def arc_config(base_url: str, **overrides: Any) -> ArcConfig:
    config = ArcConfig(
        base_url=base_url, api_key="test-arc-key", attempt_timeout_s=3.0, default_budget_s=10.0, retry=FAST_RETRY
    )
    return replace(config, **overrides)


def woc_config(base_url: str, **overrides: Any) -> WocConfig:
    config = WocConfig(
        base_url=base_url,
        network="test",
        api_key="testnet_key",
        attempt_timeout_s=3.0,
        default_budget_s=10.0,
        retry=FAST_RETRY,
    )
    return replace(config, **overrides)


@pytest.fixture
def arc(http: httpx.AsyncClient, sim: SimControl) -> ArcClient:
    return ArcClient(http, arc_config(sim.base_url))


@pytest.fixture
def woc(http: httpx.AsyncClient, sim: SimControl) -> WocClient:
    return WocClient(http, woc_config(sim.base_url))


@pytest.fixture
def broadcaster(arc: ArcClient, woc: WocClient) -> Broadcaster:
    return Broadcaster([arc, woc], default_budget_s=10.0)


@pytest.fixture
async def receiver() -> AsyncIterator[CallbackReceiver]:
    r = CallbackReceiver()
    await r.start()
    yield r
    await r.stop()


@pytest.fixture
def alice() -> Key:
    return Key(0xA11CE)


@pytest.fixture
def bob() -> Key:
    return Key(0xB0B)
