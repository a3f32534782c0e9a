"""Pool maintenance (seed 000): the admin RPCs, the maintenance lock, and the pass that strings
sync (sync_from_chain), split and sweep together. Knows nothing of gRPC; the chain, the signer and
the locks come in through ports."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import orjson

from proofline_kit.auth import ROLE_ADMIN, Caller
from proofline_kit.errors import DomainError, ErrorKind, invalid_argument
from proofline_kit.idempotency import check_request_id
from proofline_kit.logging import get_logger
from proofline_kit.wire import Outpoint
from services.utxo.domain import codec
from services.utxo.domain import validation as check
from services.utxo.domain.models import (
    KEY_ID_PATTERN,
    AddressComparison,
    ChainComparison,
    ComparisonState,
    MaintenanceAction,
    MaintenanceOutcome,
    MaintenanceResult,
    PruneResult,
    Purpose,
    SplitRequest,
    SweepRequest,
    TrackedOutput,
    Utxo,
    UtxoStatus,
    saturated,
)
from services.utxo.domain.pool import UtxoPool
from services.utxo.domain.ports import (
    ChainReader,
    FeeRates,
    HeldLock,
    KeyDirectory,
    Locks,
    Store,
    TransactionSigner,
    TxBroadcaster,
)
from services.utxo.domain.split import SplitMaintenance, check_split, split_key
from services.utxo.domain.sweep import SweepMaintenance, check_sweep, sweep_key
from services.utxo.domain.sync import SyncPlan
from services.utxo.domain.sync_from_chain import SyncMaintenance, no_chain

MAINTENANCE_LOCK = "utxo-maintenance"


@dataclass(frozen=True, slots=True)
class SplitConfig:
    # MIN_UTXO_COUNT: split when fewer AVAILABLE publish UTXOs than this.
    low_water: int = 50
    # UTXO_SPLIT_TARGET: how many AVAILABLE publish UTXOs a split aims for.
    target: int = 100
    size_satoshis: int = 1_000
    min_satoshis: int = 1_000
    max_outputs_per_tx: int = 1_000
    cooldown: timedelta = timedelta(minutes=1)
    lease: timedelta = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class MaintenanceConfig:
    mainnet: bool
    min_confirmations: int
    funding_key_id: str
    change_key_id: str
    change_address: str
    split: SplitConfig
    fee_buffer_satoshis: int = 0
    sweep_max_inputs: int = 250
    sweep_lock: timedelta = timedelta(minutes=5)
    broadcast_attempts: int = 3
    broadcast_retry_pause_s: float = 0.5
    # How long an unspent outpoint must stay missing from the chain, across two syncs at least,
    # before a sync writes it off as INVALID.
    invalid_after: timedelta = timedelta(minutes=10)
    # UTXO_RETENTION_MS: how long SPENT/INVALID outpoints, their events and finished leases are
    # kept; a PASS deletes older ones. Zero keeps everything.
    retention: timedelta = timedelta(days=7)


Body = Callable[[HeldLock | None], Awaitable[list[MaintenanceResult]]]


class PoolMaintenance(SyncMaintenance, SplitMaintenance, SweepMaintenance):
    def __init__(
        self,
        store: Store,
        pool: UtxoPool,
        config: MaintenanceConfig,
        keys: KeyDirectory,
        signer: TransactionSigner,
        chain: ChainReader | None,
        broadcaster: TxBroadcaster | None,
        locks: Locks,
        fee_rates: FeeRates,
        on_pruned: Callable[[PruneResult], None] | None = None,
    ) -> None:
        self._on_pruned = on_pruned
        self._store = store
        self._pool = pool
        self._config = config
        self._keys = keys
        self._signer = signer
        self._chain = chain
        self._broadcaster = broadcaster
        self._locks = locks
        self._fee_rates = fee_rates
        self._log = get_logger("utxo.maintenance")

    # --- admin RPCs ------------------------------------------------------------------------------

    async def sync(
        self, caller: Caller, request_id: str, dry_run: bool, owner_key_ids: Sequence[str]
    ) -> MaintenanceResult:
        _require_admin(caller)
        if len(owner_key_ids) > check.MAX_ITEMS:
            raise invalid_argument("OWNER_KEY_IDS_INVALID", "owner_key_ids", f"at most {check.MAX_ITEMS}")
        for index, key_id in enumerate(owner_key_ids):
            if not KEY_ID_PATTERN.match(key_id):
                raise invalid_argument(
                    "OWNER_KEY_IDS_INVALID", f"owner_key_ids[{index}]", "1-128 characters of [A-Za-z0-9._:-]"
                )

        async def body(lock: HeldLock | None) -> list[MaintenanceResult]:
            return [await self._sync(owner_key_ids, dry_run, lock)]

        parts = ("SyncFromChain", dry_run, sorted(owner_key_ids))
        return (await self._admin(caller, request_id, dry_run, parts, MAINTENANCE_LOCK, self._lock_ttl, body))[0]

    async def split(self, caller: Caller, request_id: str, dry_run: bool, request: SplitRequest) -> MaintenanceResult:
        _require_admin(caller)
        check_split(request, self._config.split)

        async def body(lock: HeldLock | None) -> list[MaintenanceResult]:
            return [await self._split(request, dry_run, lock, request_id)]

        parts = ("Split", dry_run, *split_key(request))
        return (await self._admin(caller, request_id, dry_run, parts, MAINTENANCE_LOCK, self._lock_ttl, body))[0]

    async def sweep(self, caller: Caller, request_id: str, dry_run: bool, request: SweepRequest) -> MaintenanceResult:
        _require_admin(caller)
        check_sweep(request)
        change_key = request.change_key_id or self._config.change_key_id
        if not change_key:
            raise invalid_argument("CHANGE_KEY_ID_INVALID", "change_key_id", "required: UTXO_CHANGE_KEY_ID is unset")
        change_address = (
            request.change_address or self._config.change_address or (await self._keys.key(change_key)).address
        )

        async def body(lock: HeldLock | None) -> list[MaintenanceResult]:
            return [await self._sweep(request, dry_run, lock, request_id)]

        parts = ("Sweep", dry_run, *sweep_key(request))
        lock_name = f"sweep-address-{change_address}"
        return (await self._admin(caller, request_id, dry_run, parts, lock_name, self._config.sweep_lock, body))[0]

    async def run(
        self, caller: Caller, request_id: str, action: MaintenanceAction | None, dry_run: bool
    ) -> list[MaintenanceResult]:
        _require_admin(caller)
        if action is None:
            raise invalid_argument("ACTION_INVALID", "action", "one of SYNC, SWEEP, SPLIT, REAP_LEASES, PASS")
        if action is MaintenanceAction.SWEEP:
            return [await self.sweep(caller, request_id, dry_run, SweepRequest())]

        async def body(lock: HeldLock | None) -> list[MaintenanceResult]:
            return await self._run(action, dry_run, lock, request_id)

        parts = ("RunMaintenance", action.value, dry_run)
        return await self._admin(caller, request_id, dry_run, parts, MAINTENANCE_LOCK, self._lock_ttl, body)

    async def background_pass(self) -> list[MaintenanceResult] | None:
        """One PASS when nobody else holds the maintenance lease (the service's own loop)."""
        lock = await self._locks.acquire(MAINTENANCE_LOCK, self._lock_ttl)
        if lock is None:
            return None
        request_id = f"loop-{lock.token}"
        try:
            async with self._renewing(lock, self._lock_ttl):
                return await self._run(MaintenanceAction.PASS, False, lock, request_id)
        finally:
            await self._locks.release(lock)

    async def holder(self) -> str:
        return await self._locks.holder(MAINTENANCE_LOCK)

    @property
    def _lock_ttl(self) -> timedelta:
        return self._config.split.lease

    async def _admin(
        self,
        caller: Caller,
        request_id: str,
        dry_run: bool,
        parts: Sequence[object],
        lock_name: str,
        ttl: timedelta,
        body: Body,
    ) -> list[MaintenanceResult]:
        _require_admin(caller)
        if dry_run:
            if request_id:
                check_request_id(request_id)
            return await body(None)
        check_request_id(request_id)
        method = str(parts[0])
        fingerprint = hashlib.sha256(orjson.dumps(list(parts))).digest()
        async with self._store.unit_of_work() as uow:
            replay = await uow.find_answer(caller.caller_id, method, request_id, fingerprint)
        if replay is not None:
            return codec.results_from_json(replay)
        lock = await self._locks.acquire(lock_name, ttl)
        if lock is None:
            holder = await self._locks.holder(lock_name)
            raise DomainError(
                ErrorKind.ABORTED,
                "MAINTENANCE_IN_PROGRESS",
                f"{holder or 'another host'} holds {lock_name}; try again later",
                metadata={"holder": holder, "lock": lock_name},
                retry_after_ms=int(ttl.total_seconds() * 1000),
            )
        try:
            async with self._renewing(lock, ttl):
                results = await body(lock)
        finally:
            await self._locks.release(lock)
        async with self._store.unit_of_work() as uow:
            await uow.record_answer(caller.caller_id, method, request_id, fingerprint, codec.results_to_json(results))
        return results

    @contextlib.asynccontextmanager
    async def _renewing(self, lock: HeldLock, ttl: timedelta) -> AsyncIterator[None]:
        """Keeps the lock alive while the body runs; a lost lock is caught by the database fence."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(max(0.2, ttl.total_seconds() / 3))
                if not await self._locks.renew(lock, ttl):
                    self._log.warning("maintenance.lock_lost", lock=lock.name)
                    return

        task = asyncio.create_task(renew())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(
        self, action: MaintenanceAction, dry_run: bool, lock: HeldLock | None, request_id: str
    ) -> list[MaintenanceResult]:
        if action is MaintenanceAction.REAP_LEASES:
            return [await self._reap(dry_run)]
        if action is MaintenanceAction.SYNC:
            return [await self._sync((), dry_run, lock)]
        if action is MaintenanceAction.SPLIT:
            return [await self._split(SplitRequest(), dry_run, lock, request_id)]
        # PASS: retention, reap, sync, then split when the pool is low. Sweep is never part of a pass.
        # Retention goes first so that a pass whose sync fails (chain down) still bounds the tables.
        pruned = None if dry_run else await self._prune()
        synced, plan = await self._sync_planned((), dry_run, lock)
        results = [await self._reap(dry_run), synced]
        # A dry run applies nothing, so its split plans with what the sync would have made AVAILABLE.
        became_available = _became_available(plan) if dry_run else ([], 0)
        try:
            results.append(await self._split(SplitRequest(), dry_run, lock, request_id, became_available))
        except DomainError as error:
            if error.reason not in ("INSUFFICIENT_FUNDS", "FUNDING_KEY_ID_INVALID"):
                raise
            # A pass reports a split it cannot make instead of failing after the reap and sync.
            results.append(
                MaintenanceResult(
                    MaintenanceAction.SPLIT,
                    MaintenanceOutcome.NOTHING_TO_DO,
                    dry_run,
                    detail=f"split not possible: {error.reason}: {error.message}",
                )
            )
        if pruned is not None:
            results[0] = _with_pruned(results[0], pruned)
        return results

    async def _prune(self) -> PruneResult:
        """Retention, as part of a PASS (the proto has no action of its own for it)."""
        pruned = await self._pool.prune(self._config.retention)
        if self._on_pruned is not None:
            self._on_pruned(pruned)
        return pruned

    async def _reap(self, dry_run: bool) -> MaintenanceResult:
        reaped = await self._pool.reap_expired(dry_run=dry_run)
        if not dry_run:
            async with self._store.unit_of_work() as uow:
                await uow.record_run("reap", None, "done")
        outcome = MaintenanceOutcome.DONE if reaped.utxos else MaintenanceOutcome.NOTHING_TO_DO
        return MaintenanceResult(
            MaintenanceAction.REAP_LEASES,
            outcome,
            dry_run,
            reaped_leases=reaped.leases,
            reaped_utxos=reaped.utxos,
            detail=f"{reaped.utxos} outpoints of {reaped.leases} expired leases back to AVAILABLE",
        )


class PoolChainComparer:
    """The health snapshot's chain comparison: per address, the chain's unspent list against the pool."""

    def __init__(self, store: Store, config: MaintenanceConfig, keys: KeyDirectory, chain: ChainReader | None):
        self._store = store
        self._config = config
        self._keys = keys
        self._chain = chain

    async def compare(self, owner_key_ids: Sequence[str]) -> ChainComparison:
        keys = [k for k in (self._config.funding_key_id, self._config.change_key_id, *owner_key_ids) if k]
        keys = list(dict.fromkeys(keys))
        try:
            if self._chain is None:
                raise no_chain()
            tip = await self._chain.tip_height()
            infos = {k: await self._keys.key(k) for k in keys}
            lists = {k: await self._chain.unspent(infos[k].address) for k in keys}
        except DomainError as error:
            return ChainComparison(ComparisonState.UNAVAILABLE, detail=f"{error.reason}: {error.message}")
        async with self._store.snapshot() as uow:
            rows = await uow.unspent_of(keys)
        comparisons = []
        for key in keys:
            on_chain = {Outpoint(o.txid, o.vout): o for o in lists[key] if not o.spent_in_mempool}
            in_pool = {r.outpoint: r for r in rows if r.owner_key_id == key}
            comparisons.append(
                AddressComparison(
                    owner_key_id=key,
                    address=infos[key].address,
                    chain_utxos=len(on_chain),
                    chain_satoshis=saturated(sum(o.satoshis for o in on_chain.values())),
                    pool_utxos=len(in_pool),
                    pool_satoshis=saturated(sum(r.satoshis for r in in_pool.values())),
                    only_on_chain=len(on_chain.keys() - in_pool.keys()),
                    only_in_pool=len(in_pool.keys() - on_chain.keys()),
                )
            )
        return ChainComparison(ComparisonState.OK, tip, tuple(comparisons))


# --- helpers -------------------------------------------------------------------------------------


def _became_available(plan: SyncPlan) -> tuple[list[Utxo], int]:
    """What a sync plan makes AVAILABLE: the coins (new ones as unsaved rows), and how many are PUBLISH."""
    coins = [replace(c.utxo, status=UtxoStatus.AVAILABLE) for c in plan.changes if c.to_status is UtxoStatus.AVAILABLE]
    coins += [_unsaved(n.output) for n in plan.new_rows if n.status is UtxoStatus.AVAILABLE]
    return coins, sum(1 for c in coins if c.purpose is Purpose.PUBLISH)


def _unsaved(output: TrackedOutput) -> Utxo:
    epoch = datetime.fromtimestamp(0, UTC)
    return Utxo(
        row_id=0,
        fencing_token=None,
        outpoint=output.outpoint,
        satoshis=output.satoshis,
        locking_script=output.locking_script,
        owner_key_id=output.owner_key_id,
        purpose=output.purpose,
        status=UtxoStatus.AVAILABLE,
        block_height=0,
        confirmations=0,
        lease_id="",
        lease_expires_at=None,
        spent_by_txid="",
        competing_txids=(),
        status_reason="",
        created_at=epoch,
        updated_at=epoch,
    )


def _require_admin(caller: Caller) -> None:
    if ROLE_ADMIN not in caller.roles:
        raise DomainError(
            ErrorKind.PERMISSION_DENIED,
            "ADMIN_REQUIRED",
            "maintenance needs the admin role",
            metadata={"callerId": caller.caller_id},
        )


def _with_pruned(reaped: MaintenanceResult, pruned: PruneResult) -> MaintenanceResult:
    """The reap step's result with what retention deleted in the same pass."""
    if not pruned.rows and pruned.complete:
        return reaped
    detail = (
        f"{reaped.detail}; retention pruned {pruned.utxos} outpoints, {pruned.events} events, {pruned.leases} leases"
    )
    if not pruned.complete:
        detail += " (time budget reached; the next pass goes on)"
    outcome = MaintenanceOutcome.DONE if pruned.rows else reaped.outcome
    return replace(reaped, outcome=outcome, detail=detail)
