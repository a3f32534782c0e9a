"""Maintenance transactions: lease the inputs, sign, commit with the signed bytes, broadcast, settle."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from structlog.typing import FilteringBoundLogger

from proofline_kit import wire
from proofline_kit.auth import Caller
from proofline_kit.errors import DomainError, ErrorKind, invalid_argument
from proofline_kit.wire import Outpoint
from services.utxo.domain import planning
from services.utxo.domain import validation as check
from services.utxo.domain.models import (
    BroadcastOutcome,
    ConflictKind,
    ConflictReport,
    Lease,
    LeaseRequest,
    MaintenanceTx,
    OutputSpec,
    PlannedOutput,
    Purpose,
    Spend,
    Strategy,
)
from services.utxo.domain.pool import UtxoPool
from services.utxo.domain.ports import (
    BroadcastKind,
    FeeRates,
    HeldLock,
    KeyDirectory,
    Store,
    TransactionSigner,
    TxBroadcaster,
    UnitOfWork,
)

if TYPE_CHECKING:
    from services.utxo.domain.maintenance import MaintenanceConfig


class MaintenanceTransactions:
    """The transaction steps split, sweep and sync share; part of PoolMaintenance (which sets these attributes)."""

    _store: Store
    _pool: UtxoPool
    _config: MaintenanceConfig
    _keys: KeyDirectory
    _signer: TransactionSigner
    _broadcaster: TxBroadcaster | None
    _fee_rates: FeeRates
    _log: FilteringBoundLogger

    async def _lease_target(self, request_id: str, step: str, purpose: Purpose, owner: str, target: int) -> Lease:
        try:
            return await self._pool.lease(
                MAINTENANCE_CALLER,
                internal_id(request_id, step, "lease"),
                LeaseRequest(
                    purpose=purpose,
                    owner_key_id=owner,
                    target_satoshis=target,
                    strategy=Strategy.LARGEST_FIRST,
                    duration=self._config.split.lease,
                    holder=f"maintenance/{step}",
                ),
            )
        except DomainError as error:
            if error.reason == "POOL_EXHAUSTED":
                raise planning.insufficient_funds(int(error.metadata.get("availableSatoshis", "0")), target) from error
            raise

    async def _lease_count(self, request_id: str, step: str, owner: str, minimum: int, count: int) -> Lease | None:
        try:
            return await self._pool.lease(
                MAINTENANCE_CALLER,
                internal_id(request_id, step, "lease"),
                LeaseRequest(
                    purpose=Purpose.CHANGE,
                    owner_key_id=owner,
                    count=count,
                    allow_partial=True,
                    min_satoshis=minimum,
                    strategy=Strategy.SMALLEST_FIRST,
                    duration=self._config.sweep_lock,
                    holder=f"maintenance/{step}",
                ),
            )
        except DomainError as error:
            if error.reason == "POOL_EXHAUSTED":
                return None
            raise

    async def _release(self, request_id: str, step: str, lease: Lease) -> None:
        await self._pool.release(MAINTENANCE_CALLER, internal_id(request_id, step, "release"), lease.lease_id, ())

    async def _execute(
        self,
        request_id: str,
        action: str,
        index: int,
        lease: Lease,
        plan: planning.Plan,
        outputs: Sequence[PlannedOutput],
        rate: int,
    ) -> MaintenanceTx:
        """Sign, commit (with the signed bytes) before the first broadcast, broadcast with retry."""
        step = f"{action}{index}"
        inputs = plan.inputs
        unsigned = wire.serialize(
            wire.Tx(
                tuple(wire.TxInput(u.outpoint) for u in inputs),
                tuple(wire.TxOutput(o.satoshis, o.locking_script) for o in outputs),
            )
        )
        try:
            signed = await self._signer.sign(
                internal_id(request_id, step, "sign"),
                unsigned,
                [(u.satoshis, u.locking_script) for u in inputs],
                [(i, u.owner_key_id) for i, u in enumerate(inputs)],
            )
        except DomainError:
            await self._release(request_id, step, lease)
            raise
        extended = wire.extended_format(signed.raw, [wire.TxOutput(u.satoshis, u.locking_script) for u in inputs])
        spend = Spend(
            signed.txid,
            tuple(u.outpoint for u in inputs),
            tuple(
                OutputSpec(Outpoint(signed.txid, o.vout), o.satoshis, o.locking_script, o.owner_key_id, o.purpose)
                for o in outputs
                if o.purpose is not None
            ),
        )

        async def keep_bytes(uow: UnitOfWork) -> None:
            await uow.save_maintenance_tx(signed.txid, action, extended)

        await self._pool.commit(
            MAINTENANCE_CALLER,
            internal_id(request_id, step, "commit"),
            lease.lease_id,
            lease.fencing_token,
            [spend],
            release_unspent=True,
            within=keep_bytes,
        )
        outcome, detail, attempts = await self._broadcast(signed.txid, extended, list(spend.inputs))
        return replace(
            planned_tx(plan, outputs, rate),
            size_bytes=len(signed.raw),
            txid=signed.txid,
            outcome=outcome,
            detail=detail,
            attempts=attempts,
        )

    async def _broadcast(self, txid: str, extended: bytes, inputs: list[Outpoint]) -> tuple[BroadcastOutcome, str, int]:
        """Broadcast with retry on "Missing inputs" and on an unreachable chain (seed 000)."""
        broadcaster = self._broadcaster
        if broadcaster is None:
            return BroadcastOutcome.PENDING, "no broadcaster is configured", 0
        attempts = self._config.broadcast_attempts
        result = None
        for attempt in range(1, attempts + 1):
            result = await broadcaster.broadcast(extended)
            if result.kind is BroadcastKind.ACCEPTED:
                break
            if result.kind in (BroadcastKind.MISSING_INPUTS, BroadcastKind.UNAVAILABLE) and attempt < attempts:
                await asyncio.sleep(self._config.broadcast_retry_pause_s * attempt)
                continue
            break
        assert result is not None
        return (
            await self._settle(txid, result.kind, result.detail, result.competing_txids, inputs),
            result.detail,
            attempt,
        )

    async def _settle(
        self, txid: str, kind: BroadcastKind, detail: str, competing: Sequence[str], inputs: list[Outpoint]
    ) -> BroadcastOutcome:
        if kind is BroadcastKind.ACCEPTED:
            async with self._store.unit_of_work() as uow:
                await uow.set_maintenance_tx_state(txid, "accepted", detail)
            return BroadcastOutcome.ACCEPTED
        if kind is BroadcastKind.UNAVAILABLE:
            async with self._store.unit_of_work() as uow:
                await uow.set_maintenance_tx_state(txid, "pending", detail)
            return BroadcastOutcome.PENDING
        if inputs:
            await self._pool.report_conflict(
                MAINTENANCE_CALLER,
                internal_id(txid, "conflict", kind.value),
                ConflictReport(
                    outpoints=tuple(inputs),
                    kind=_CONFLICTS[kind],
                    spending_txid=txid,
                    competing_txids=tuple(c for c in competing if c != txid),
                    detail=detail[: check.MAX_DETAIL_CHARS],
                ),
            )
        async with self._store.unit_of_work() as uow:
            await uow.set_maintenance_tx_state(txid, "rejected", detail)
        self._log.warning("maintenance.tx_rejected", txid=txid, kind=kind.value, detail=detail[:200])
        return BroadcastOutcome.REJECTED

    async def _rebroadcast_pending(self) -> str:
        if self._broadcaster is None:
            return ""
        async with self._store.snapshot() as uow:
            pending = await uow.pending_maintenance_txs(_PENDING_BATCH)
        outcomes = []
        for txid, extended, inputs in pending:
            result = await self._broadcaster.broadcast(extended)
            outcomes.append(await self._settle(txid, result.kind, result.detail, result.competing_txids, inputs))
        if not pending:
            return ""
        accepted = sum(1 for o in outcomes if o is BroadcastOutcome.ACCEPTED)
        return f"; re-broadcast {len(pending)} pending maintenance transactions ({accepted} accepted)"


# The identity maintenance uses for its own leases, commits and conflict reports.
MAINTENANCE_CALLER = Caller("utxo-maintenance", frozenset({"pool"}))


_PENDING_BATCH = 50


_CONFLICTS = {
    BroadcastKind.DOUBLE_SPEND: ConflictKind.DOUBLE_SPEND,
    BroadcastKind.MISSING_INPUTS: ConflictKind.MISSING_INPUTS,
    BroadcastKind.REJECTED: ConflictKind.REJECTED,
}


def planned_tx(plan: planning.Plan, outputs: Sequence[PlannedOutput], rate: int) -> MaintenanceTx:
    return MaintenanceTx(
        inputs=tuple(plan.inputs),
        outputs=tuple(outputs),
        fee_satoshis=plan.fee_satoshis,
        fee_rate_satoshis_per_kb=rate,
        size_bytes=plan.size_bytes,
    )


def internal_id(request_id: str, *parts: str) -> str:
    """A request id for the pool's own idempotent calls, derived from the admin's request id."""
    return "m:" + hashlib.sha256(":".join((request_id, *parts)).encode()).hexdigest()[:40]


def stale_lock(lock: HeldLock) -> DomainError:
    return DomainError(
        ErrorKind.ABORTED,
        "MAINTENANCE_IN_PROGRESS",
        f"the lease on {lock.name} (token {lock.token}) was taken over by a newer holder",
        metadata={"holder": "", "lock": lock.name},
    )


def address_mismatch(address: str, key_id: str) -> DomainError:
    return invalid_argument(
        "ADDRESS_KEY_MISMATCH", "change_address", f"{address} is not the P2PKH address of key {key_id}"
    )
