"""The wallet's database: units of work over pooled connections."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from proofline_kit.database import PooledStore
from services.wallet.store.unit_of_work import WalletUnitOfWork

MIGRATIONS = Path(__file__).parent / "migrations"


class WalletStore(PooledStore[WalletUnitOfWork]):
    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool, WalletUnitOfWork)
