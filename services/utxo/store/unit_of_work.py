"""One database transaction of the pool: the query families over one connection."""

from __future__ import annotations

from datetime import datetime

from proofline_kit.idempotency import RecordedAnswers
from services.utxo.store.acceptance import AcceptanceQueries
from services.utxo.store.chain_sync import ChainSyncQueries
from services.utxo.store.conflicts import ConflictQueries
from services.utxo.store.health import HealthQueries
from services.utxo.store.leases import LeaseQueries
from services.utxo.store.maintenance import MaintenanceQueries
from services.utxo.store.outpoints import OutpointQueries
from services.utxo.store.retention import RetentionQueries
from services.utxo.store.spends import SpendQueries


class UtxoUnitOfWork(
    RecordedAnswers,
    LeaseQueries,
    OutpointQueries,
    SpendQueries,
    ConflictQueries,
    AcceptanceQueries,
    ChainSyncQueries,
    HealthQueries,
    MaintenanceQueries,
    RetentionQueries,
):
    """One database transaction of the pool."""

    async def now(self) -> datetime:
        value: datetime = await self._conn.fetchval("SELECT now()")
        return value
