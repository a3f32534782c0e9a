"""The pool's use cases: leases, spends, conflicts, tracking, listing and health. Knows nothing of gRPC."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson

from proofline_kit.auth import Caller
from proofline_kit.errors import invalid_argument
from proofline_kit.idempotency import check_request_id, request_fingerprint
from proofline_kit.logging import get_logger
from proofline_kit.pagination import decode_page_token, encode_page_token, page_size
from proofline_kit.wire import Outpoint
from services.utxo.domain import codec, errors, fees
from services.utxo.domain import validation as check
from services.utxo.domain.models import (
    KEY_ID_PATTERN,
    TXID_PATTERN,
    Bucket,
    ChainComparison,
    CommitResult,
    ComparisonState,
    ConflictReport,
    ConflictResult,
    InputState,
    Lease,
    LeaseRequest,
    LeaseRow,
    LeaseState,
    LeaseStats,
    MaintenanceStatus,
    OutputSpec,
    PoolHealth,
    PruneResult,
    Purpose,
    ReapResult,
    ReleaseResult,
    Runway,
    Spend,
    Strategy,
    TrackedOutput,
    Utxo,
    UtxoFilter,
    UtxoPage,
    UtxoStatus,
    in_strategy_order,
)
from services.utxo.domain.ports import ChainComparer, FeeRates, MaintenanceHolderView, Store, UnitOfWork

ROLE_POOL = "pool"
# Target mode locks candidates in growing chunks: most targets are met by the first one.
_FIRST_CHUNK = 16
_REAP_BATCH = 5_000
# Retention: rows per DELETE statement, and how long one prune may keep going.
PRUNE_BATCH = 10_000
PRUNE_BUDGET = timedelta(seconds=10)
_CARRYING = (UtxoStatus.RESERVED, UtxoStatus.AVAILABLE)


@dataclass(frozen=True, slots=True)
class PoolConfig:
    default_lease: timedelta = timedelta(minutes=5)
    max_lease: timedelta = timedelta(hours=1)
    default_strategy: Strategy = Strategy.SMALLEST_FIRST
    low_water_utxos: int = 50
    publish_tx_bytes: int = fees.DEFAULT_PUBLISH_TX_BYTES


class UtxoPool:
    def __init__(
        self,
        store: Store,
        config: PoolConfig,
        fee_rates: FeeRates,
        maintenance_holder: MaintenanceHolderView,
        chain: ChainComparer | None = None,
        on_dirty: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._config = config
        self._fee_rates = fee_rates
        self._maintenance_holder = maintenance_holder
        self._chain = chain
        self._on_dirty = on_dirty
        self._log = get_logger("utxo.pool")

    # --- leases ----------------------------------------------------------------------------------

    async def lease(self, caller: Caller, request_id: str, request: LeaseRequest) -> Lease:
        _require_pool(caller)
        check_request_id(request_id)
        purpose = check.purpose(request.purpose)
        check.key_id(request.owner_key_id, "owner_key_id", optional=True)
        if (request.count is None) == (request.target_satoshis is None):
            raise invalid_argument("QUANTITY_INVALID", "quantity", "set exactly one of count and target_satoshis")
        if request.count is not None and not 1 <= request.count <= check.MAX_ITEMS:
            raise invalid_argument("COUNT_INVALID", "count", f"must be 1 to {check.MAX_ITEMS}")
        if request.target_satoshis is not None:
            check.positive_satoshis(request.target_satoshis, "target_satoshis", "TARGET_SATOSHIS_INVALID")
        duration = check.lease_duration(
            request.duration, self._config.default_lease, self._config.max_lease, "lease_duration"
        )
        check.non_negative(request.min_satoshis, "min_satoshis")
        check.non_negative(request.fee_rate_satoshis_per_kb, "fee_rate_satoshis_per_kb")
        if not 0 <= request.max_count <= check.MAX_ITEMS:
            raise invalid_argument("MAX_COUNT_INVALID", "max_count", f"must be 0 to {check.MAX_ITEMS}")
        check.text(request.holder, "holder", check.MAX_HOLDER_CHARS)
        strategy = request.strategy or self._config.default_strategy
        fingerprint = request_fingerprint(
            "LeaseUtxos",
            purpose.value,
            request.owner_key_id,
            request.count,
            request.target_satoshis,
            strategy.value,
            duration.total_seconds(),
            request.allow_partial,
            request.min_satoshis,
            request.fee_rate_satoshis_per_kb,
            request.max_count,
            request.holder,
        )
        async with self._store.unit_of_work() as uow:
            replay = await uow.find_answer(caller.caller_id, "LeaseUtxos", request_id, fingerprint)
            if replay is not None:
                return codec.lease_from_json(replay)
            if request.count is not None:
                row, claimed = await uow.insert_lease_and_claim(
                    uuid.uuid4().hex,
                    caller.caller_id,
                    request.holder,
                    purpose,
                    strategy,
                    duration,
                    request.owner_key_id,
                    request.min_satoshis,
                    request.count,
                )
                utxos = await self._claim_count(uow, row, request, request.count, claimed)
            else:
                assert request.target_satoshis is not None
                row = await uow.insert_lease(
                    uuid.uuid4().hex, caller.caller_id, request.holder, purpose, strategy, duration
                )
                utxos = await self._claim_target(uow, row, request, request.target_satoshis)
            lease = _lease(row, utxos)
            await uow.record_answer(caller.caller_id, "LeaseUtxos", request_id, fingerprint, codec.lease_to_json(lease))
        return lease

    async def _claim_count(
        self, uow: UnitOfWork, row: LeaseRow, request: LeaseRequest, count: int, claimed: list[Utxo]
    ) -> list[Utxo]:
        """`claimed`: what the lease's first claim took."""
        owner, minimum = request.owner_key_id, request.min_satoshis
        utxos = claimed
        if len(utxos) < count:
            # Expired reservations count as AVAILABLE: reap them (for this purpose) and try again.
            _, reaped = await uow.reap_expired(row.purpose, _REAP_BATCH)
            if reaped:
                utxos = in_strategy_order(
                    row.strategy, utxos + await uow.claim_count(row, owner, minimum, count - len(utxos))
                )
        if not utxos or (len(utxos) < count and not request.allow_partial):
            available, satoshis = await uow.leasable_summary(row.purpose, owner, minimum)
            raise errors.pool_exhausted(
                row.purpose, available + len(utxos), satoshis + sum(u.satoshis for u in utxos), f"{count} UTXOs"
            )
        return utxos

    async def _claim_target(self, uow: UnitOfWork, row: LeaseRow, request: LeaseRequest, target: int) -> list[Utxo]:
        input_fee = fees.input_fee(request.fee_rate_satoshis_per_kb)
        # An input that does not pay for itself never brings the selection closer to the target.
        minimum = max(request.min_satoshis, input_fee + 1) if input_fee else request.min_satoshis
        max_count = request.max_count or check.MAX_ITEMS
        chosen: list[int] = []
        covered = 0
        chunk = _FIRST_CHUNK
        reaped = False
        while covered < target and len(chosen) < max_count:
            wanted = min(chunk, max_count - len(chosen))
            candidates = await uow.lock_candidates(row, request.owner_key_id, minimum, wanted, chosen)
            for row_id, satoshis in candidates:
                chosen.append(row_id)
                covered += satoshis - input_fee
                if covered >= target:
                    break
            if covered >= target:
                break
            if len(candidates) < wanted:
                if reaped:
                    break
                reaped = True
                await uow.reap_expired(row.purpose, _REAP_BATCH)
            chunk *= 4
        if covered < target:
            available, satoshis = await uow.leasable_summary(row.purpose, request.owner_key_id, minimum)
            within = f" within {max_count} UTXOs" if len(chosen) >= max_count else ""
            raise errors.pool_exhausted(row.purpose, available, satoshis, f"{target} sat{within}")
        return await uow.reserve_rows(row, chosen)

    async def renew(
        self, caller: Caller, request_id: str, lease_id: str, fencing_token: int, duration: timedelta | None
    ) -> Lease:
        _require_pool(caller)
        check_request_id(request_id)
        check.lease_id(lease_id)
        duration = check.lease_duration(duration, self._config.default_lease, self._config.max_lease, "lease_duration")
        fingerprint = request_fingerprint("RenewLease", lease_id, fencing_token, duration.total_seconds())
        async with self._store.unit_of_work() as uow:
            replay = await uow.find_answer(caller.caller_id, "RenewLease", request_id, fingerprint)
            if replay is not None:
                return codec.lease_from_json(replay)
            row = await _owned_lease(uow, caller, lease_id, lock=True)
            if fencing_token != row.fencing_token:
                raise errors.fencing_token_stale(lease_id, fencing_token)
            held = await uow.carrying(row, lock=True)
            if not held:
                raise errors.lease_closed(lease_id)
            history = await uow.lease_history(row.fencing_token)
            if history.granted - history.given_up - {u.row_id for u in held}:
                raise errors.fencing_token_stale(lease_id, fencing_token)
            row = await uow.set_lease_expiry(row.fencing_token, duration)
            await uow.renew_rows(row, caller.caller_id)
            lease = _lease(row, await uow.carrying(row))
            await uow.record_answer(caller.caller_id, "RenewLease", request_id, fingerprint, codec.lease_to_json(lease))
        return lease

    async def release(
        self, caller: Caller, request_id: str, lease_id: str, outpoints: Sequence[Outpoint]
    ) -> ReleaseResult:
        _require_pool(caller)
        check_request_id(request_id)
        check.lease_id(lease_id)
        check.outpoints(outpoints, "outpoints", allow_empty=True)
        fingerprint = request_fingerprint("ReleaseLease", lease_id, *(str(o) for o in outpoints))
        async with self._store.unit_of_work() as uow:
            replay = await uow.find_answer(caller.caller_id, "ReleaseLease", request_id, fingerprint)
            if replay is not None:
                return codec.release_from_json(replay)
            row = await _owned_lease(uow, caller, lease_id, lock=True)
            row_ids: list[int] | None = None
            if outpoints:
                row_ids = [u.row_id for u in (await uow.outpoints(outpoints)).values()]
            released = await uow.release(row.fencing_token, row_ids, caller.caller_id)
            result = ReleaseResult(tuple(released), _lease(row, await uow.carrying(row)))
            await uow.record_answer(
                caller.caller_id, "ReleaseLease", request_id, fingerprint, codec.release_to_json(result)
            )
        return result

    # --- spends and conflicts --------------------------------------------------------------------

    async def commit(
        self,
        caller: Caller,
        request_id: str,
        lease_id: str,
        fencing_token: int,
        spends: Sequence[Spend],
        release_unspent: bool,
        within: Callable[[UnitOfWork], Awaitable[None]] | None = None,
    ) -> CommitResult:
        """`within` runs in the commit's database transaction (maintenance stores its signed bytes)."""
        _require_pool(caller)
        check_request_id(request_id)
        check.lease_id(lease_id)
        tracked = _checked_spends(spends)
        fingerprint = request_fingerprint(
            "CommitSpend",
            lease_id,
            fencing_token,
            release_unspent,
            *(
                (s.txid, [str(i) for i in s.inputs], [_output_key(o) for o in outputs])
                for s, outputs in zip(spends, tracked, strict=True)
            ),
        )
        async with self._store.unit_of_work() as uow:
            replay = await uow.find_answer(caller.caller_id, "CommitSpend", request_id, fingerprint)
            if replay is not None:
                return codec.commit_from_json(replay)
            row = await _owned_lease(uow, caller, lease_id, lock=False)
            inputs = [(i, s.txid) for s in spends for i in s.inputs]
            # One statement locks the inputs and spends those that carry the lease's token; when not
            # every input was spent, the inputs are judged as found before the change and a refusal
            # rolls the whole transaction (those changes included) back.
            carried_token = row.fencing_token if fencing_token == row.fencing_token else None
            # The lease's remaining outpoints come back from the same statement unless the commit
            # releases them all (then it holds none).
            by_outpoint, states, held = await uow.spend_carried(
                inputs, carried_token, caller.caller_id, None if release_unspent else row
            )
            pending: list[Outpoint] = []
            done_before: list[Outpoint] = []
            if len(by_outpoint) < len(inputs):
                # Inputs already SPENT are judged first: same txid = done before, another txid = refused.
                for outpoint, txid in inputs:
                    found = states.get(outpoint)
                    if found is not None and found.status is UtxoStatus.SPENT:
                        if found.spent_by_txid != txid:
                            raise errors.already_spent(outpoint, found.spent_by_txid)
                        done_before.append(outpoint)
                    else:
                        pending.append(outpoint)
                if pending:
                    await _check_fenced(uow, row, fencing_token, [(o, states.get(o)) for o in pending])
                # Every input that passed the checks carried the token, so the statement spent it.
                assert all(o in by_outpoint for o in pending)
                if done_before:
                    by_outpoint.update(await uow.outpoints(done_before))
            spent = tuple(by_outpoint[o] for o, _ in inputs)
            # A spend all of whose inputs were committed before tracked its outputs then: those still
            # in the pool are checked as before, those retention has deleted since are not re-created.
            outputs_to_track = [o for outputs in tracked for o in outputs]
            if done_before:
                replayed = set(done_before)
                again = [
                    o.outpoint
                    for s, outputs in zip(spends, tracked, strict=True)
                    if replayed.issuperset(s.inputs)
                    for o in outputs
                ]
                if again:
                    known = await uow.outpoints(again)
                    gone = {o for o in again if o not in known}
                    outputs_to_track = [o for o in outputs_to_track if o.outpoint not in gone]
            added = await _track(uow, outputs_to_track, caller.caller_id, "change")
            released: list[Outpoint] = []
            if release_unspent:
                released = await uow.release(row.fencing_token, None, caller.caller_id)
                held = []  # nothing carries the token any more
            result = CommitResult(spent, tuple(added), tuple(released), _lease(row, held))
            if within is not None:
                await within(uow)
            await uow.record_answer(
                caller.caller_id, "CommitSpend", request_id, fingerprint, codec.commit_to_json(result)
            )
        self._log.info("spend.committed", lease_id=lease_id, inputs=len(spent) - len(done_before), outputs=len(added))
        return result

    async def report_conflict(self, caller: Caller, request_id: str, report: ConflictReport) -> ConflictResult:
        _require_pool(caller)
        check_request_id(request_id)
        check.outpoints(report.outpoints, "outpoints")
        if report.lease_id:
            check.lease_id(report.lease_id)
        if report.spending_txid:
            check.txid(report.spending_txid, "spending_txid", "SPENDING_TXID_INVALID")
        if len(report.competing_txids) > check.MAX_ITEMS:
            raise invalid_argument("COMPETING_TXIDS_INVALID", "competing_txids", f"at most {check.MAX_ITEMS}")
        for index, competing in enumerate(report.competing_txids):
            check.txid(competing, f"competing_txids[{index}]", "COMPETING_TXIDS_INVALID")
        check.text(report.detail, "detail", check.MAX_DETAIL_CHARS)
        fingerprint = request_fingerprint(
            "ReportConflict",
            report.lease_id,
            report.fencing_token,
            [str(o) for o in report.outpoints],
            report.kind.value,
            report.spending_txid,
            list(report.competing_txids),
            report.detail,
        )
        async with self._store.unit_of_work() as uow:
            replay = await uow.find_answer(caller.caller_id, "ReportConflict", request_id, fingerprint)
            if replay is not None:
                return codec.conflict_from_json(replay)
            lease: LeaseRow | None = None
            if report.lease_id:
                lease = await _owned_lease(uow, caller, report.lease_id, lock=False)
                if report.fencing_token != lease.fencing_token:
                    raise errors.fencing_token_stale(report.lease_id, report.fencing_token)
            now = await uow.now()
            rows = await uow.lock_outpoints(report.outpoints)
            targets: list[Utxo] = []
            for outpoint in report.outpoints:
                found = rows.get(outpoint)
                if found is None:
                    raise errors.utxo_not_found(outpoint)
                _check_reportable(found, lease, report, now)
                targets.append(found)
            dirty = await uow.mark_dirty(
                targets,
                report.kind.value,
                report.spending_txid,
                report.competing_txids,
                report.detail,
                lease.fencing_token if lease else None,
                caller.caller_id,
            )
            invalidated: list[Utxo] = []
            if report.spending_txid:
                invalidated = await uow.invalidate_unconfirmed_outputs(
                    report.spending_txid, "PARENT_DEAD", caller.caller_id
                )
            result = ConflictResult(tuple(dirty), tuple(invalidated))
            await uow.record_answer(
                caller.caller_id, "ReportConflict", request_id, fingerprint, codec.conflict_to_json(result)
            )
        self._log.info("conflict.reported", kind=report.kind.value, dirty=len(dirty), invalidated=len(invalidated))
        if self._on_dirty is not None:
            await self._on_dirty()
        return result

    async def add_outputs(self, caller: Caller, request_id: str, outputs: Sequence[OutputSpec]) -> tuple[Utxo, ...]:
        _require_pool(caller)
        check_request_id(request_id)
        if not 1 <= len(outputs) <= check.MAX_ITEMS:
            raise invalid_argument("OUTPUTS_INVALID", "outputs", f"1 to {check.MAX_ITEMS} outputs")
        tracked = [check.tracked_output(o, f"outputs[{i}]") for i, o in enumerate(outputs)]
        _no_duplicate_outpoints([o.outpoint for o in tracked], "outputs")
        fingerprint = request_fingerprint("AddOutputs", *(_output_key(o) for o in tracked))
        async with self._store.unit_of_work() as uow:
            replay = await uow.find_answer(caller.caller_id, "AddOutputs", request_id, fingerprint)
            if replay is not None:
                return codec.utxos_from_json(replay)
            result = tuple(await _track(uow, tracked, caller.caller_id, "external"))
            await uow.record_answer(
                caller.caller_id, "AddOutputs", request_id, fingerprint, codec.utxos_to_json(result)
            )
        return result

    # --- reads -----------------------------------------------------------------------------------

    async def list_utxos(self, caller: Caller, filters: UtxoFilter, requested_size: int, page_token: str) -> UtxoPage:
        _require_pool(caller)
        size = page_size(requested_size)
        check.key_id(filters.owner_key_id, "owner_key_id", optional=True)
        if filters.txid:
            check.txid(filters.txid, "txid")
        check.non_negative(filters.min_satoshis, "min_satoshis")
        check.non_negative(filters.max_satoshis, "max_satoshis")
        if filters.lease_id:
            check.lease_id(filters.lease_id)
        filter_key = hashlib.sha256(orjson.dumps(_filter_key(filters))).hexdigest()[:16]
        cursor = decode_page_token(page_token)
        if page_token and (cursor.get("f") != filter_key or not isinstance(cursor.get("after"), int)):
            raise invalid_argument("PAGE_TOKEN_INVALID", "page_token", "unknown token, or the filters changed")
        after = int(cursor.get("after", 0))
        async with self._store.reader() as uow:
            token: int | None = None
            if filters.lease_id:
                lease = await uow.lease_by_id(filters.lease_id)
                if lease is None:
                    return UtxoPage(())
                token = lease.fencing_token
            rows = await uow.list_utxos(filters, token, after, size + 1)
        more = len(rows) > size
        rows = rows[:size]
        next_token = encode_page_token({"after": rows[-1].row_id, "f": filter_key}) if more else ""
        return UtxoPage(tuple(rows), next_token)

    async def health(
        self, caller: Caller, owner_key_id: str, purpose: Purpose | None, compare_with_chain: bool
    ) -> PoolHealth:
        _require_pool(caller)
        check.key_id(owner_key_id, "owner_key_id", optional=True)
        return await self.snapshot(owner_key_id, purpose, compare_with_chain)

    async def snapshot(
        self, owner_key_id: str = "", purpose: Purpose | None = None, compare: bool = False
    ) -> PoolHealth:
        """The health figures (also what the metrics refresher exports)."""
        rate = await self._fee_rates.satoshis_per_kb()
        publish_fee = fees.fee_for(self._config.publish_tx_bytes, rate)
        async with self._store.reader() as uow:
            now = await uow.now()
            buckets = await uow.buckets(owner_key_id, purpose)
            counts = await uow.lease_counts(owner_key_id, purpose)
            figures = await uow.publish_figures(owner_key_id, publish_fee)
            state = await uow.maintenance_rows()
        available_publish = sum(
            b.count for b in buckets if b.purpose is Purpose.PUBLISH and b.status is UtxoStatus.AVAILABLE
        )
        if purpose not in (None, Purpose.PUBLISH):
            async with self._store.reader() as uow:
                all_buckets: list[Bucket] = await uow.buckets(owner_key_id, Purpose.PUBLISH)
            available_publish = sum(b.count for b in all_buckets if b.status is UtxoStatus.AVAILABLE)
        funded = figures.publish_satoshis // publish_fee
        remaining = None
        if figures.spends_last_hour:
            remaining = timedelta(seconds=funded * 3600 / figures.spends_last_hour)
        split, sync, sweep = state.get("split"), state.get("sync"), state.get("sweep")
        cooldown = split.cooldown_until if split and split.cooldown_until and split.cooldown_until > now else None
        chain = ChainComparison(ComparisonState.NOT_REQUESTED)
        if compare:
            if self._chain is None:
                chain = ChainComparison(ComparisonState.UNAVAILABLE, detail="no chain client is configured")
            else:
                chain = await self._chain.compare([owner_key_id] if owner_key_id else [])
        return PoolHealth(
            observed_at=now,
            buckets=tuple(buckets),
            leases=LeaseStats(
                counts.live_leases,
                counts.live_utxos,
                counts.expired_leases,
                counts.expired_utxos,
                counts.oldest_live_created_at,
            ),
            runway=Runway(
                fee_rate_satoshis_per_kb=rate,
                publish_tx_size_bytes=self._config.publish_tx_bytes,
                publish_fee_satoshis=publish_fee,
                ready_publishes=figures.ready,
                funded_publishes=funded,
                funded_publishes_with_funding=(figures.publish_satoshis + figures.funding_satoshis) // publish_fee,
                spends_last_hour=figures.spends_last_hour,
                estimated_remaining=remaining,
            ),
            maintenance=MaintenanceStatus(
                low_water_utxos=self._config.low_water_utxos,
                below_low_water=available_publish < self._config.low_water_utxos,
                last_sync_at=sync.last_run_at if sync else None,
                last_split_at=split.last_run_at if split else None,
                last_sweep_at=sweep.last_run_at if sweep else None,
                split_cooldown_until=cooldown,
                holder=await self._maintenance_holder.holder(),
            ),
            chain=chain,
        )

    # --- maintenance -----------------------------------------------------------------------------

    async def reap_expired(self, *, batch: int = _REAP_BATCH, dry_run: bool = False) -> ReapResult:
        """Return every expired reservation to AVAILABLE (token kept), in batches."""
        if dry_run:
            async with self._store.reader() as uow:
                counts = await uow.lease_counts("", None)
            return ReapResult(counts.expired_leases, counts.expired_utxos)
        leases = utxos = 0
        while True:
            async with self._store.unit_of_work() as uow:
                reaped_leases, reaped_utxos = await uow.reap_expired(None, batch)
            leases += reaped_leases
            utxos += reaped_utxos
            if reaped_utxos < batch:
                break
        if utxos:
            self._log.info("leases.reaped", leases=leases, utxos=utxos)
        return ReapResult(leases, utxos)

    async def prune(
        self, retention: timedelta, *, batch: int = PRUNE_BATCH, budget: timedelta = PRUNE_BUDGET
    ) -> PruneResult:
        """Delete history older than `retention` (zero keeps everything): SPENT and INVALID outpoints
        last changed before it, then leases that expired before it and hold no outpoint, then the
        events of outpoints that are gone. Each statement deletes at most `batch` rows in its own
        transaction; the prune stops at `budget` and the next one goes on. Live rows (AVAILABLE,
        UNCONFIRMED, RESERVED, DIRTY, leases with an outpoint) are never touched. Safe to run on
        several replicas at once (rows another transaction holds are skipped)."""
        if retention <= timedelta(0):
            return PruneResult()
        deadline = time.monotonic() + budget.total_seconds()
        utxos = events = leases = 0
        async with self._store.reader() as uow:
            cutoff = await uow.retention_cutoff(retention)
        for step in ("utxos", "leases"):
            while True:
                if time.monotonic() >= deadline:
                    return self._pruned(PruneResult(utxos, events, leases, complete=False))
                async with self._store.unit_of_work() as uow:
                    if step == "utxos":
                        n = await uow.prune_outpoints(cutoff, batch)
                        utxos += n
                    else:
                        n = await uow.prune_leases(cutoff, batch)
                        leases += n
                if n < batch:
                    break
        async with self._store.reader() as uow:
            bound = await uow.last_event_before(cutoff)
        after = 0
        while bound is not None:
            if time.monotonic() >= deadline:
                return self._pruned(PruneResult(utxos, events, leases, complete=False))
            async with self._store.unit_of_work() as uow:
                n, last = await uow.prune_orphan_events(after, bound, batch)
            events += n
            if last is None:
                break
            after = last
        return self._pruned(PruneResult(utxos, events, leases))

    def _pruned(self, result: PruneResult) -> PruneResult:
        if result.rows:
            self._log.info(
                "retention.pruned",
                utxos=result.utxos,
                events=result.events,
                leases=result.leases,
                complete=result.complete,
            )
        return result


# --- helpers -------------------------------------------------------------------------------------


def _require_pool(caller: Caller) -> None:
    if not caller.has_role(ROLE_POOL):
        raise errors.role_required(ROLE_POOL, caller.caller_id)


async def _owned_lease(uow: UnitOfWork, caller: Caller, lease_id: str, *, lock: bool) -> LeaseRow:
    row = await uow.lease_by_id(lease_id, for_update=lock)
    if row is None:
        raise errors.lease_not_found(lease_id)
    if row.caller_id != caller.caller_id:
        raise errors.lease_not_owned(lease_id, caller.caller_id)
    return row


def _lease(row: LeaseRow, held: Sequence[Utxo]) -> Lease:
    if not held:
        state = LeaseState.CLOSED
    elif row.expires_at > row.db_now:
        state = LeaseState.LIVE
    else:
        state = LeaseState.EXPIRED
    return Lease(
        lease_id=row.lease_id,
        fencing_token=row.fencing_token,
        state=state,
        holder=row.holder,
        caller_id=row.caller_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        utxos=tuple(held),
    )


def _carries(utxo: Utxo | InputState, fencing_token: int) -> bool:
    return utxo.fencing_token == fencing_token and utxo.status in _CARRYING


async def _check_fenced(
    uow: UnitOfWork, lease: LeaseRow, fencing_token: int, inputs: Sequence[tuple[Outpoint, InputState | None]]
) -> None:
    """Every input must still carry the lease's token; otherwise say whether the lease never had it
    (UTXO_NOT_IN_LEASE) or lost it (FENCING_TOKEN_STALE)."""
    if fencing_token != lease.fencing_token:
        raise errors.fencing_token_stale(lease.lease_id, fencing_token)
    failing = [(o, u) for o, u in inputs if u is None or not _carries(u, fencing_token)]
    if not failing:
        return
    granted = (await uow.lease_history(lease.fencing_token)).granted
    for outpoint, utxo in failing:
        if utxo is None or utxo.row_id not in granted:
            raise errors.utxo_not_in_lease(lease.lease_id, outpoint)
    raise errors.fencing_token_stale(lease.lease_id, fencing_token, failing[0][0])


def _check_reportable(utxo: Utxo, lease: LeaseRow | None, report: ConflictReport, now: datetime) -> None:
    status = utxo.status
    if status is UtxoStatus.SPENT:
        if report.spending_txid != utxo.spent_by_txid:
            raise errors.already_spent(utxo.outpoint, utxo.spent_by_txid)
        return
    if status is UtxoStatus.RESERVED:
        expired = utxo.lease_expires_at is not None and utxo.lease_expires_at <= now
        ours = lease is not None and utxo.fencing_token == lease.fencing_token
        if not ours and not expired:
            raise errors.fencing_token_stale(report.lease_id or "-", report.fencing_token, utxo.outpoint)
        return
    if status in (UtxoStatus.AVAILABLE, UtxoStatus.DIRTY):
        return
    raise errors.utxo_not_spendable(utxo.outpoint, status.value.upper())


def _checked_spends(spends: Sequence[Spend]) -> list[list[TrackedOutput]]:
    """The spends' outputs, validated. The common all-valid case runs without building field names;
    anything odd goes through _explained_spends, which names the first bad field."""
    if not 1 <= len(spends) <= check.MAX_ITEMS or sum(len(s.inputs) for s in spends) > check.MAX_ITEMS:
        return _explained_spends(spends)
    seen: set[Outpoint] = set()
    txids: set[str] = set()
    tracked: list[list[TrackedOutput]] = []
    for spend in spends:
        if not TXID_PATTERN.match(spend.txid) or spend.txid in txids or not spend.inputs:
            return _explained_spends(spends)
        txids.add(spend.txid)
        for outpoint in spend.inputs:
            if not TXID_PATTERN.match(outpoint.txid) or outpoint.vout < 0 or outpoint in seen:
                return _explained_spends(spends)
            seen.add(outpoint)
        outputs = []
        vouts = set()
        for o in spend.outputs:
            if (
                o.purpose is None
                or o.satoshis <= 0
                or not 1 <= len(o.locking_script) <= check.MAX_SCRIPT_BYTES
                or not KEY_ID_PATTERN.match(o.owner_key_id)
                or o.outpoint.vout < 0
                or o.outpoint.vout in vouts
            ):
                return _explained_spends(spends)
            vouts.add(o.outpoint.vout)
            outputs.append(TrackedOutput(o.outpoint, o.satoshis, o.locking_script, o.owner_key_id, o.purpose))
        tracked.append(outputs)
    return tracked


def _explained_spends(spends: Sequence[Spend]) -> list[list[TrackedOutput]]:
    if not 1 <= len(spends) <= check.MAX_ITEMS:
        raise invalid_argument("SPENDS_INVALID", "spends", f"1 to {check.MAX_ITEMS} spends")
    seen: set[Outpoint] = set()
    txids: set[str] = set()
    tracked: list[list[TrackedOutput]] = []
    for index, spend in enumerate(spends):
        field = f"spends[{index}]"
        check.txid(spend.txid, f"{field}.txid")
        if spend.txid in txids:
            raise invalid_argument("SPENDS_INVALID", f"{field}.txid", f"transaction {spend.txid} is listed twice")
        txids.add(spend.txid)
        if not spend.inputs:
            raise invalid_argument("INPUTS_INVALID", f"{field}.inputs", "at least one pool outpoint")
        for position, outpoint in enumerate(spend.inputs):
            check.outpoint(outpoint, f"{field}.inputs[{position}]")
            if outpoint in seen:
                raise invalid_argument(
                    "INPUTS_INVALID", f"{field}.inputs[{position}]", f"{outpoint} is spent twice in this request"
                )
            seen.add(outpoint)
        outputs = [
            check.tracked_output(o, f"{field}.outputs[{position}]", outpoint_field="vout")
            for position, o in enumerate(spend.outputs)
        ]
        vouts = [o.outpoint.vout for o in outputs]
        if len(set(vouts)) != len(vouts):
            raise invalid_argument("OUTPUTS_INVALID", f"{field}.outputs", "an output index is listed twice")
        tracked.append(outputs)
    if sum(len(s.inputs) for s in spends) > check.MAX_ITEMS:
        raise invalid_argument("SPENDS_INVALID", "spends", f"at most {check.MAX_ITEMS} inputs in all")
    return tracked


def _no_duplicate_outpoints(outpoints: Sequence[Outpoint], field: str) -> None:
    seen: set[Outpoint] = set()
    for index, outpoint in enumerate(outpoints):
        if outpoint in seen:
            raise invalid_argument(f"{field.upper()}_INVALID", f"{field}[{index}]", f"{outpoint} is listed twice")
        seen.add(outpoint)


async def _track(uow: UnitOfWork, outputs: Sequence[TrackedOutput], caller_id: str, reason: str) -> list[Utxo]:
    """Insert outputs as UNCONFIRMED; known ones must match exactly (else UTXO_ALREADY_EXISTS)."""
    if not outputs:
        return []
    inserted = {u.outpoint: u for u in await uow.insert_outputs(outputs, caller_id, reason)}
    missing = [o for o in outputs if o.outpoint not in inserted]
    known = await uow.outpoints([o.outpoint for o in missing]) if missing else {}
    for output in missing:
        existing = known[output.outpoint]
        if (existing.satoshis, existing.locking_script, existing.owner_key_id, existing.purpose) != (
            output.satoshis,
            output.locking_script,
            output.owner_key_id,
            output.purpose,
        ):
            raise errors.utxo_already_exists(output.outpoint)
    return [inserted.get(o.outpoint) or known[o.outpoint] for o in outputs]


def _output_key(output: TrackedOutput) -> list[object]:
    return [
        str(output.outpoint),
        output.satoshis,
        output.locking_script.hex(),
        output.owner_key_id,
        output.purpose.value,
    ]


def _filter_key(filters: UtxoFilter) -> list[object]:
    return [
        filters.owner_key_id,
        filters.purpose.value if filters.purpose else "",
        sorted(s.value for s in filters.statuses),
        filters.lease_id,
        filters.txid,
        filters.min_satoshis,
        filters.max_satoshis,
    ]
