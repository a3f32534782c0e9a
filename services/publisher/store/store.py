"""The publisher's database: units of work over pooled connections."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from services.publisher.store.unit_of_work import PublisherUnitOfWork

MIGRATIONS = Path(__file__).parent / "migrations"


class PublisherStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[PublisherUnitOfWork]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield PublisherUnitOfWork(conn)

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[PublisherUnitOfWork]:
        """Autocommit reads: no transaction to open and close."""
        async with self._pool.acquire() as conn:
            yield PublisherUnitOfWork(conn)

    async def ping(self) -> None:
        async with self._pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
