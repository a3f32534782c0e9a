"""Fixtures: a real chainsim on 127.0.0.1, an ephemeral port, driven over HTTP with httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from services.chainsim import ChainSim, ChainsimSettings
from tests.chainsim.helpers import Key, Receiver

SimFactory = Callable[..., Awaitable[ChainSim]]


@pytest.fixture
async def sim_factory() -> AsyncIterator[SimFactory]:
    started: list[ChainSim] = []

    async def make(**overrides: Any) -> ChainSim:
        base: dict[str, Any] = {"port": 0, "callback_retry_pause_ms": 50, "callback_batch_interval_ms": 100}
        base.update(overrides)
        sim = ChainSim(ChainsimSettings(**base))
        await sim.start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        await sim.stop()


@pytest.fixture
async def sim(sim_factory: SimFactory) -> ChainSim:
    return await sim_factory()


@pytest.fixture
async def client(sim: ChainSim) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.base_url, timeout=10.0, trust_env=False) as c:
        yield c


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


@pytest.fixture
def alice() -> Key:
    return Key(0xA11CE)


@pytest.fixture
def bob() -> Key:
    return Key(0xB0B)
