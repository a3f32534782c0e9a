"""Pool maintenance (seed 000): sync from chain, split, sweep, and the pass that strings them
together. Knows nothing of gRPC; the chain, the signer and the locks come in through ports."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import orjson
from bsv.utils import decode_address

from proofline_kit import wire
from proofline_kit.auth import ROLE_ADMIN, Caller
from proofline_kit.errors import DomainError, ErrorKind, invalid_argument
from proofline_kit.idempotency import check_request_id
from proofline_kit.logging import get_logger
from proofline_kit.wire import Outpoint
from services.utxo.domain import codec, fees, planning
from services.utxo.domain import validation as check
from services.utxo.domain.models import (
    KEY_ID_PATTERN,
    AddressComparison,
    BroadcastOutcome,
    ChainComparison,
    ComparisonState,
    ConflictKind,
    ConflictReport,
    Lease,
    LeaseRequest,
    MaintenanceAction,
    MaintenanceOutcome,
    MaintenanceResult,
    MaintenanceTx,
    OutputSpec,
    PlannedOutput,
    PruneResult,
    Purpose,
    Spend,
    SplitRequest,
    Strategy,
    SweepRequest,
    TrackedOutput,
    Utxo,
    UtxoStatus,
)
from services.utxo.domain.pool import UtxoPool
from services.utxo.domain.ports import (
    BroadcastKind,
    ChainReader,
    FeeRates,
    HeldLock,
    KeyDirectory,
    KeyInfo,
    Locks,
    Store,
    TransactionSigner,
    TxBroadcaster,
    UnitOfWork,
)
from services.utxo.domain.sync import (
    KeyView,
    MissingRule,
    SyncPlan,
    absent_confirmed_txids,
    name_spenders,
    plan_sync,
    txids_to_check_first,
    unnamed_spends,
)

# The identity maintenance uses for its own leases, commits and conflict reports.
MAINTENANCE_CALLER = Caller("utxo-maintenance", frozenset({"pool"}))
MAINTENANCE_LOCK = "utxo-maintenance"
MAX_SWEEP_INPUTS = 2000
MAX_SWEEP_TRANSACTIONS = 20
_PENDING_BATCH = 50
_CONFLICTS = {
    BroadcastKind.DOUBLE_SPEND: ConflictKind.DOUBLE_SPEND,
    BroadcastKind.MISSING_INPUTS: ConflictKind.MISSING_INPUTS,
    BroadcastKind.REJECTED: ConflictKind.REJECTED,
}


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


class PoolMaintenance:
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
        _check_split(request, self._config.split)

        async def body(lock: HeldLock | None) -> list[MaintenanceResult]:
            return [await self._split(request, dry_run, lock, request_id)]

        parts = ("Split", dry_run, *_split_key(request))
        return (await self._admin(caller, request_id, dry_run, parts, MAINTENANCE_LOCK, self._lock_ttl, body))[0]

    async def sweep(self, caller: Caller, request_id: str, dry_run: bool, request: SweepRequest) -> MaintenanceResult:
        _require_admin(caller)
        _check_sweep(request)
        change_key = request.change_key_id or self._config.change_key_id
        if not change_key:
            raise invalid_argument("CHANGE_KEY_ID_INVALID", "change_key_id", "required: UTXO_CHANGE_KEY_ID is unset")
        change_address = (
            request.change_address or self._config.change_address or (await self._keys.key(change_key)).address
        )

        async def body(lock: HeldLock | None) -> list[MaintenanceResult]:
            return [await self._sweep(request, dry_run, lock, request_id)]

        parts = ("Sweep", dry_run, *_sweep_key(request))
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

    # --- sync ------------------------------------------------------------------------------------

    async def _sync(self, owner_key_ids: Sequence[str], dry_run: bool, lock: HeldLock | None) -> MaintenanceResult:
        return (await self._sync_planned(owner_key_ids, dry_run, lock))[0]

    async def _sync_planned(
        self, owner_key_ids: Sequence[str], dry_run: bool, lock: HeldLock | None
    ) -> tuple[MaintenanceResult, SyncPlan]:
        chain = self._require_chain()
        rebroadcast = "" if dry_run else await self._rebroadcast_pending()
        async with self._store.reader() as uow:
            keys = list(dict.fromkeys(owner_key_ids or await self._default_keys(uow)))
            purposes = await uow.latest_purposes(keys)
            rows = await uow.unspent_of(keys)
            missing = MissingRule(
                await uow.missing_since([r.row_id for r in rows]), await uow.now(), self._config.invalid_after
            )
        infos = {k: await self._keys.key(k) for k in keys}
        states = await chain.tx_states(sorted(txids_to_check_first(rows)))
        tip = await chain.tip_height()
        views = [
            KeyView(
                k, infos[k].locking_script, self._purpose_for(k, purposes), tuple(await chain.unspent(infos[k].address))
            )
            for k in keys
        ]
        listed = {Outpoint(o.txid, o.vout) for v in views for o in v.chain_outputs}
        later = absent_confirmed_txids(rows, listed) - set(states)
        if later:
            states = {**states, **await chain.tx_states(sorted(later))}
        async with self._store.reader() as uow:
            pooled = {r.outpoint for r in rows}
            known = await uow.outpoints([o for o in listed if o not in pooled])
        plan = plan_sync(views, rows, set(known), states, tip, self._config.min_confirmations, missing)
        summary = plan.summary(tip)
        if not dry_run:
            await self._name_spenders(chain, plan)
            await self._apply_sync(plan, tip, lock)
        changed = summary.added + len(summary.changes)
        outcome = MaintenanceOutcome.DONE if changed else MaintenanceOutcome.NOTHING_TO_DO
        detail = f"{len(keys)} keys at tip {tip}: {summary.added} new, {len(summary.changes) - summary.added} changed"
        waiting = len(plan.first_missing) + len(plan.still_missing)
        if waiting:
            detail += (
                f", {waiting} missing from the chain (INVALID when still missing"
                f" {self._config.invalid_after.total_seconds():g} s after a sync first found them missing)"
            )
        result = MaintenanceResult(MaintenanceAction.SYNC, outcome, dry_run, sync=summary, detail=detail + rebroadcast)
        return result, plan

    async def _name_spenders(self, chain: ChainReader, plan: SyncPlan) -> None:
        """One bulk lookup of who spends the outpoints the plan marks SPENT without a known spender.
        Best effort: when the chain cannot say, they are SPENT with the spender unknown."""
        unnamed = unnamed_spends(plan)
        if not unnamed:
            return
        try:
            spenders = await chain.spenders(unnamed)
        except DomainError as error:
            self._log.warning("sync.spender_lookup_failed", outpoints=len(unnamed), reason=error.reason)
            return
        named = name_spenders(plan, spenders)
        if named < len(unnamed):
            self._log.info("sync.spenders_unnamed", named=named, unnamed=len(unnamed) - named)

    async def _apply_sync(self, plan: SyncPlan, tip: int, lock: HeldLock | None) -> None:
        async with self._store.unit_of_work() as uow:
            if lock is not None and not await uow.claim_fence("sync", lock.token):
                raise _stale_lock(lock)
            if plan.new_rows:
                await uow.insert_found(
                    [n.output for n in plan.new_rows],
                    [n.status for n in plan.new_rows],
                    [n.block_height for n in plan.new_rows],
                )
            if plan.changes:
                await uow.apply_chain_changes(
                    [c.utxo.row_id for c in plan.changes],
                    [c.utxo.status for c in plan.changes],
                    [c.to_status for c in plan.changes],
                    [c.reason for c in plan.changes],
                    [c.block_height for c in plan.changes],
                    [c.spent_by_txid for c in plan.changes],
                )
            if plan.first_missing or plan.seen_again:
                await uow.mark_missing(plan.first_missing, plan.seen_again)
            await uow.set_tip(tip)
            await uow.record_run("sync", lock.token if lock else None, "done")

    async def _default_keys(self, uow: UnitOfWork) -> list[str]:
        configured = [k for k in (self._config.funding_key_id, self._config.change_key_id) if k]
        return configured + [k for k in await uow.known_owner_keys() if k not in configured]

    def _purpose_for(self, key_id: str, purposes: dict[str, Purpose]) -> Purpose:
        if key_id == self._config.funding_key_id:
            return Purpose.FUNDING
        if key_id == self._config.change_key_id:
            return Purpose.CHANGE
        return purposes.get(key_id, Purpose.FUNDING)

    # --- split -----------------------------------------------------------------------------------

    async def _split(
        self,
        request: SplitRequest,
        dry_run: bool,
        lock: HeldLock | None,
        request_id: str,
        became_available: tuple[list[Utxo], int] = ([], 0),
    ) -> MaintenanceResult:
        """`became_available` (dry-run passes): coins and the count of publish outpoints that the
        pass's own sync would have made AVAILABLE."""
        config = self._config.split
        funding_key = request.funding_key_id or self._config.funding_key_id
        if not funding_key:
            raise invalid_argument("FUNDING_KEY_ID_INVALID", "funding_key_id", "required: UTXO_FUNDING_KEY_ID is unset")
        output_key = request.output_key_id or funding_key
        async with self._store.reader() as uow:
            now = await uow.now()
            state = (await uow.maintenance_rows()).get("split")
            available = await uow.count_available(Purpose.PUBLISH, "") + became_available[1]
        cooldown_until = state.cooldown_until if state else None
        if not request.ignore_cooldown and cooldown_until is not None and cooldown_until > now:
            return MaintenanceResult(
                MaintenanceAction.SPLIT,
                MaintenanceOutcome.SKIPPED_COOLDOWN,
                dry_run,
                next_allowed_at=cooldown_until,
                detail=f"split cooldown until {cooldown_until.isoformat()}",
            )
        count = request.output_count
        if count == 0:
            if available >= config.low_water:
                return MaintenanceResult(
                    MaintenanceAction.SPLIT,
                    MaintenanceOutcome.NOTHING_TO_DO,
                    dry_run,
                    detail=f"{available} AVAILABLE publish UTXOs, low water is {config.low_water}",
                )
            count = min(config.target - available, config.max_outputs_per_tx)
        size = request.output_satoshis or config.size_satoshis
        min_size = min(size, config.min_satoshis)
        rate = request.fee_rate_satoshis_per_kb or await self._fee_rates.satoshis_per_kb()
        buffer = self._config.fee_buffer_satoshis
        shrink = request.output_count == 0
        output_info = await self._keys.key(output_key)
        change_owner, change_purpose, change_info = await self._change_destination(funding_key)
        async with self._store.reader() as uow:
            coins = await uow.peek_available(Purpose.FUNDING, funding_key, Strategy.LARGEST_FIRST, 1, check.MAX_ITEMS)
        extra = [c for c in became_available[0] if c.owner_key_id == funding_key and c.purpose is Purpose.FUNDING]
        if extra:
            coins = sorted([*coins, *extra], key=lambda c: -c.satoshis)
        plan = planning.plan_split(coins, count, size, min_size, rate, buffer, shrink_count=shrink)

        def outputs_of(plan: planning.Plan) -> list[PlannedOutput]:
            outputs = [
                PlannedOutput(i, v, output_info.address, output_info.locking_script, output_key, Purpose.PUBLISH)
                for i, v in enumerate(plan.payouts)
            ]
            if plan.change_satoshis > 0:
                outputs.append(
                    PlannedOutput(
                        len(outputs),
                        plan.change_satoshis,
                        change_info.address,
                        change_info.locking_script,
                        change_owner,
                        change_purpose,
                    )
                )
            return outputs

        if dry_run:
            planned = _planned_tx(plan, outputs_of(plan), rate)
            return MaintenanceResult(
                MaintenanceAction.SPLIT,
                MaintenanceOutcome.DONE,
                True,
                transactions=(planned,),
                detail=f"would split into {len(plan.payouts)} outputs of {plan.payouts[0]} sat",
            )
        assert lock is not None
        async with self._store.unit_of_work() as uow:
            if not await uow.claim_fence("split", lock.token):
                raise _stale_lock(lock)
        lease = await self._lease_target(
            request_id, "split", Purpose.FUNDING, funding_key, sum(c.satoshis for c in plan.inputs)
        )
        try:
            final = planning.plan_split(
                lease.utxos, len(plan.payouts), plan.payouts[0], min_size, rate, buffer, shrink_count=shrink
            )
        except DomainError:
            await self._release(request_id, "split", lease)
            raise
        made = await self._execute(request_id, "split", 0, lease, final, outputs_of(final), rate)
        async with self._store.unit_of_work() as uow:
            next_allowed = await uow.record_run("split", lock.token, made.outcome.value, config.cooldown)
        self._log.info("split.done", txid=made.txid, outcome=made.outcome.value, outputs=len(final.payouts))
        return MaintenanceResult(
            MaintenanceAction.SPLIT,
            MaintenanceOutcome.DONE,
            False,
            transactions=(made,),
            next_allowed_at=next_allowed,
            detail=f"split into {len(final.payouts)} outputs of {final.payouts[0]} sat: {made.outcome.value}",
        )

    async def _change_destination(self, funding_key: str) -> tuple[str, Purpose, KeyInfo]:
        """Split change goes to UTXO_CHANGE_ADDRESS (the change key); without one, back to funding."""
        if self._config.change_key_id:
            info = await self._keys.key(self._config.change_key_id)
            if self._config.change_address and self._config.change_address != info.address:
                raise _address_mismatch(self._config.change_address, self._config.change_key_id)
            return self._config.change_key_id, Purpose.CHANGE, info
        return funding_key, Purpose.FUNDING, await self._keys.key(funding_key)

    # --- sweep -----------------------------------------------------------------------------------

    async def _sweep(
        self, request: SweepRequest, dry_run: bool, lock: HeldLock | None, request_id: str
    ) -> MaintenanceResult:
        change_key = request.change_key_id or self._config.change_key_id
        if not change_key:
            raise invalid_argument("CHANGE_KEY_ID_INVALID", "change_key_id", "required: UTXO_CHANGE_KEY_ID is unset")
        info = await self._keys.key(change_key)
        change_address = request.change_address or self._config.change_address or info.address
        if change_address != info.address:
            raise _address_mismatch(change_address, change_key)
        funding_key = self._config.funding_key_id
        funding = await self._keys.key(funding_key) if funding_key else None
        destination = request.destination_address or (funding.address if funding else "")
        if not destination:
            raise invalid_argument(
                "DESTINATION_ADDRESS_INVALID", "destination_address", "required: UTXO_FUNDING_KEY_ID is unset"
            )
        owner, purpose = "", None
        if funding is not None and destination == funding.address:
            # Back to the funding address: the swept coins return to the pool as funding.
            script, owner, purpose = funding.locking_script, funding_key, Purpose.FUNDING
        else:
            script = self._p2pkh_script(destination, "destination_address")
        max_inputs = request.max_inputs_per_transaction or self._config.sweep_max_inputs
        max_txs = request.max_transactions or 1
        rate = request.fee_rate_satoshis_per_kb or await self._fee_rates.satoshis_per_kb()
        buffer = self._config.fee_buffer_satoshis
        minimum = max(1, fees.input_fee(rate) + 1)

        def outputs_of(plan: planning.Plan) -> list[PlannedOutput]:
            return [PlannedOutput(0, plan.payouts[0], destination, script, owner, purpose)]

        made: list[MaintenanceTx] = []
        if dry_run:
            async with self._store.reader() as uow:
                coins = await uow.peek_available(
                    Purpose.CHANGE, change_key, Strategy.SMALLEST_FIRST, minimum, max_inputs * max_txs
                )
            for start in range(0, len(coins), max_inputs):
                plan = planning.plan_sweep(coins[start : start + max_inputs], rate, buffer)
                if plan is not None:
                    made.append(_planned_tx(plan, outputs_of(plan), rate))
        else:
            assert lock is not None
            for index in range(max_txs):
                lease = await self._lease_count(request_id, f"sweep{index}", change_key, minimum, max_inputs)
                if lease is None:
                    break
                plan = planning.plan_sweep(list(lease.utxos), rate, buffer)
                if plan is None:
                    await self._release(request_id, f"sweep{index}", lease)
                    break
                made.append(await self._execute(request_id, "sweep", index, lease, plan, outputs_of(plan), rate))
            async with self._store.unit_of_work() as uow:
                await uow.record_run("sweep", None, "done" if made else "nothing_to_do")
        if not made:
            return MaintenanceResult(
                MaintenanceAction.SWEEP,
                MaintenanceOutcome.NOTHING_TO_DO,
                dry_run,
                detail=f"nothing worth sweeping at {change_address}",
            )
        inputs = sum(len(t.inputs) for t in made)
        return MaintenanceResult(
            MaintenanceAction.SWEEP,
            MaintenanceOutcome.DONE,
            dry_run,
            transactions=tuple(made),
            detail=f"{'would sweep' if dry_run else 'swept'} {inputs} outputs of {change_address} to {destination}",
        )

    def _p2pkh_script(self, address: str, field: str) -> bytes:
        try:
            pubkey_hash, network = decode_address(address)
        except (ValueError, TypeError, AssertionError) as exc:
            raise invalid_argument("ADDRESS_INVALID", field, "not a P2PKH address") from exc
        if (network.value == "mainnet") != self._config.mainnet:
            raise invalid_argument("ADDRESS_WRONG_NETWORK", field, "the address belongs to another network")
        return b"\x76\xa9\x14" + bytes(pubkey_hash) + b"\x88\xac"

    # --- transactions ----------------------------------------------------------------------------

    async def _lease_target(self, request_id: str, step: str, purpose: Purpose, owner: str, target: int) -> Lease:
        try:
            return await self._pool.lease(
                MAINTENANCE_CALLER,
                _internal_id(request_id, step, "lease"),
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
                _internal_id(request_id, step, "lease"),
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
        await self._pool.release(MAINTENANCE_CALLER, _internal_id(request_id, step, "release"), lease.lease_id, ())

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
                _internal_id(request_id, step, "sign"),
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
            _internal_id(request_id, step, "commit"),
            lease.lease_id,
            lease.fencing_token,
            [spend],
            release_unspent=True,
            within=keep_bytes,
        )
        outcome, detail, attempts = await self._broadcast(signed.txid, extended, list(spend.inputs))
        return replace(
            _planned_tx(plan, outputs, rate),
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
                _internal_id(txid, "conflict", kind.value),
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
        async with self._store.reader() as uow:
            pending = await uow.pending_maintenance_txs(_PENDING_BATCH)
        outcomes = []
        for txid, extended, inputs in pending:
            result = await self._broadcaster.broadcast(extended)
            outcomes.append(await self._settle(txid, result.kind, result.detail, result.competing_txids, inputs))
        if not pending:
            return ""
        accepted = sum(1 for o in outcomes if o is BroadcastOutcome.ACCEPTED)
        return f"; re-broadcast {len(pending)} pending maintenance transactions ({accepted} accepted)"

    def _require_chain(self) -> ChainReader:
        if self._chain is None:
            raise _no_chain()
        return self._chain


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
                raise _no_chain()
            tip = await self._chain.tip_height()
            infos = {k: await self._keys.key(k) for k in keys}
            lists = {k: await self._chain.unspent(infos[k].address) for k in keys}
        except DomainError as error:
            return ChainComparison(ComparisonState.UNAVAILABLE, detail=f"{error.reason}: {error.message}")
        async with self._store.reader() as uow:
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
                    chain_satoshis=sum(o.satoshis for o in on_chain.values()),
                    pool_utxos=len(in_pool),
                    pool_satoshis=sum(r.satoshis for r in in_pool.values()),
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


def _planned_tx(plan: planning.Plan, outputs: Sequence[PlannedOutput], rate: int) -> MaintenanceTx:
    return MaintenanceTx(
        inputs=tuple(plan.inputs),
        outputs=tuple(outputs),
        fee_satoshis=plan.fee_satoshis,
        fee_rate_satoshis_per_kb=rate,
        size_bytes=plan.size_bytes,
    )


def _internal_id(request_id: str, *parts: str) -> str:
    """A request id for the pool's own idempotent calls, derived from the admin's request id."""
    return "m:" + hashlib.sha256(":".join((request_id, *parts)).encode()).hexdigest()[:40]


def _no_chain() -> DomainError:
    return DomainError(
        ErrorKind.UNAVAILABLE, "CHAIN_UNAVAILABLE", "no chain client is configured (WOC_URL)", retry_after_ms=60_000
    )


def _stale_lock(lock: HeldLock) -> DomainError:
    return DomainError(
        ErrorKind.ABORTED,
        "MAINTENANCE_IN_PROGRESS",
        f"the lease on {lock.name} (token {lock.token}) was taken over by a newer holder",
        metadata={"holder": "", "lock": lock.name},
    )


def _address_mismatch(address: str, key_id: str) -> DomainError:
    return invalid_argument(
        "ADDRESS_KEY_MISMATCH", "change_address", f"{address} is not the P2PKH address of key {key_id}"
    )


def _check_split(request: SplitRequest, config: SplitConfig) -> None:
    check.key_id(request.funding_key_id, "funding_key_id", optional=True)
    check.key_id(request.output_key_id, "output_key_id", optional=True)
    if not 0 <= request.output_count <= config.max_outputs_per_tx:
        raise invalid_argument("OUTPUT_COUNT_INVALID", "output_count", f"0 to {config.max_outputs_per_tx}")
    check.non_negative(request.output_satoshis, "output_satoshis")
    check.non_negative(request.fee_rate_satoshis_per_kb, "fee_rate_satoshis_per_kb")


def _check_sweep(request: SweepRequest) -> None:
    check.key_id(request.change_key_id, "change_key_id", optional=True)
    if not 0 <= request.max_inputs_per_transaction <= MAX_SWEEP_INPUTS:
        raise invalid_argument(
            "MAX_INPUTS_PER_TRANSACTION_INVALID", "max_inputs_per_transaction", f"0 to {MAX_SWEEP_INPUTS}"
        )
    if not 0 <= request.max_transactions <= MAX_SWEEP_TRANSACTIONS:
        raise invalid_argument("MAX_TRANSACTIONS_INVALID", "max_transactions", f"0 to {MAX_SWEEP_TRANSACTIONS}")
    check.non_negative(request.fee_rate_satoshis_per_kb, "fee_rate_satoshis_per_kb")
    for name in ("change_address", "destination_address"):
        value = getattr(request, name)
        if value and (len(value) > 64 or not value.isalnum()):
            raise invalid_argument("ADDRESS_INVALID", name, "not a P2PKH address")


def _split_key(request: SplitRequest) -> list[object]:
    return [
        request.funding_key_id,
        request.output_key_id,
        request.output_count,
        request.output_satoshis,
        request.fee_rate_satoshis_per_kb,
        request.ignore_cooldown,
    ]


def _sweep_key(request: SweepRequest) -> list[object]:
    return [
        request.change_address,
        request.change_key_id,
        request.destination_address,
        request.max_inputs_per_transaction,
        request.max_transactions,
        request.fee_rate_satoshis_per_kb,
    ]


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
