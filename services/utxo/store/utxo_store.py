"""The pool's database: transactions, snapshots, the maintenance fence sequence."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from services.utxo.store.unit_of_work import UtxoUnitOfWork

MIGRATIONS = Path(__file__).parent / "migrations"


class UtxoStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UtxoUnitOfWork]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield UtxoUnitOfWork(conn)

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[UtxoUnitOfWork]:
        """Several reads from one snapshot."""
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            yield UtxoUnitOfWork(conn)

    async def next_fence(self) -> int:
        async with self._pool.acquire() as conn:
            value: int = await conn.fetchval("SELECT nextval('maintenance_fences')")
        return value

    async def ping(self) -> None:
        async with self._pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
