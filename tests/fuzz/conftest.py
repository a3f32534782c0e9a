"""One set of servers per test module, each on its own databases, on a loop thread of its own:
the Hypothesis tests are synchronous and call the servers with blocking clients."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chain_clients.sim import chainsim_process
from tests.fuzz.stacks import Stack, start_publisher_stack, start_signer_stack, start_utxo_stack, start_wallet_stack
from tests.harness.databases import DatabaseFactory
from tests.harness.loop_thread import LoopThread, loop_thread


@pytest.fixture(scope="module")
def servers_loop() -> Iterator[LoopThread]:
    with loop_thread("fuzz-servers") as loop:
        yield loop


@pytest.fixture(scope="module")
def signer_stack(servers_loop: LoopThread, database_factory: DatabaseFactory) -> Iterator[Stack]:
    stack = start_signer_stack(servers_loop, database_factory)
    try:
        yield stack
    finally:
        stack.close()


@pytest.fixture(scope="module")
def utxo_stack(servers_loop: LoopThread, database_factory: DatabaseFactory, redis_url: str) -> Iterator[Stack]:
    stack = start_utxo_stack(servers_loop, database_factory, redis_url)
    try:
        yield stack
    finally:
        stack.close()


@pytest.fixture(scope="module")
def publisher_stack(servers_loop: LoopThread, database_factory: DatabaseFactory, redis_url: str) -> Iterator[Stack]:
    stack = start_publisher_stack(servers_loop, database_factory, redis_url)
    try:
        yield stack
    finally:
        stack.close()


@pytest.fixture(scope="session")
def chainsim_url() -> Iterator[str]:
    """One chainsim process for the fuzz session, as tests/wallet starts it; each wallet stack resets it."""
    with chainsim_process(profile="arc_faithful") as url:
        yield url


@pytest.fixture(scope="module")
def wallet_stack(
    servers_loop: LoopThread, database_factory: DatabaseFactory, redis_url: str, chainsim_url: str
) -> Iterator[Stack]:
    stack = start_wallet_stack(servers_loop, database_factory, redis_url, chainsim_url)
    try:
        yield stack
    finally:
        stack.close()
