"""The pool's database: units of work, snapshots, the maintenance fence sequence."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from proofline_kit.database import PooledStore
from services.utxo.store.unit_of_work import UtxoUnitOfWork

MIGRATIONS = Path(__file__).parent / "migrations"


class UtxoStore(PooledStore[UtxoUnitOfWork]):
    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool, UtxoUnitOfWork)

    async def next_fence(self) -> int:
        async with self._pool.acquire() as conn:
            value: int = await conn.fetchval("SELECT nextval('maintenance_fences')")
        return value
