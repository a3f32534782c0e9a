"""The publisher's database: units of work over pooled connections."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from proofline_kit.database import PooledStore
from services.publisher.store.unit_of_work import PublisherUnitOfWork

MIGRATIONS = Path(__file__).parent / "migrations"


class PublisherStore(PooledStore[PublisherUnitOfWork]):
    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool, PublisherUnitOfWork)
