"""Shared fixtures: real PostgreSQL (a fresh database per test) and real Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.publisher.store import MIGRATIONS as PUBLISHER_MIGRATIONS
from services.signer_gateway.store.signer_store import MIGRATIONS as SIGNER_MIGRATIONS
from services.utxo.store import MIGRATIONS as UTXO_MIGRATIONS
from services.wallet.store import MIGRATIONS as WALLET_MIGRATIONS
from tests.harness.databases import DatabaseFactory, postgres_server, redis_server

# Every service schema with its migrations; later services add themselves here.
SERVICE_SCHEMAS = {
    "signer": [SIGNER_MIGRATIONS],
    "publisher": [PUBLISHER_MIGRATIONS],
    "utxo": [UTXO_MIGRATIONS],
    "wallet": [WALLET_MIGRATIONS],
}


@pytest.fixture(scope="session")
def database_factory() -> Iterator[DatabaseFactory]:
    with postgres_server() as server_url:
        factory = DatabaseFactory(server_url, SERVICE_SCHEMAS)
        try:
            yield factory
        finally:
            factory.close()


@pytest.fixture
def database_url(database_factory: DatabaseFactory) -> Iterator[str]:
    url = database_factory.create()
    try:
        yield url
    finally:
        database_factory.drop(url)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url
