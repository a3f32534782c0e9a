"""The pool's use cases: leases, listing, health and housekeeping; spends and conflicts come from
SpendUseCases. Knows nothing of gRPC."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

import orjson

from proofline_kit.auth import Caller
from proofline_kit.errors import invalid_argument
from proofline_kit.idempotency import check_request_id, request_fingerprint
from proofline_kit.logging import get_logger
from proofline_kit.pagination import decode_page_token, encode_page_token, page_size
from proofline_kit.wire import Outpoint
from services.utxo.domain import codec, errors, fees
from services.utxo.domain import validation as check
from services.utxo.domain.acceptance import AcceptanceUseCases
from services.utxo.domain.models import (
    MAX_DURATION,
    Bucket,
    ChainComparison,
    ComparisonState,
    Lease,
    LeaseRequest,
    LeaseRow,
    LeaseStats,
    MaintenanceStatus,
    PoolHealth,
    PruneResult,
    PublishFigures,
    Purpose,
    ReapResult,
    ReleaseResult,
    Runway,
    Strategy,
    Utxo,
    UtxoFilter,
    UtxoPage,
    UtxoStatus,
    in_strategy_order,
    saturated,
)
from services.utxo.domain.pool_access import lease_view, owned_lease, require_pool
from services.utxo.domain.ports import ChainComparer, FeeRates, MaintenanceHolderView, Store, UnitOfWork
from services.utxo.domain.spends import SpendUseCases

# Target mode locks candidates in growing chunks: most targets are met by the first one.
_FIRST_CHUNK = 16
_REAP_BATCH = 5_000
# Retention: rows per DELETE statement, and how long one prune may keep going.
PRUNE_BATCH = 10_000
PRUNE_BUDGET = timedelta(seconds=10)


@dataclass(frozen=True, slots=True)
class PoolConfig:
    default_lease: timedelta = timedelta(minutes=5)
    max_lease: timedelta = timedelta(hours=1)
    default_strategy: Strategy = Strategy.SMALLEST_FIRST
    low_water_utxos: int = 50
    publish_tx_bytes: int = fees.DEFAULT_PUBLISH_TX_BYTES
    # UTXO_MAX_UNCONFIRMED_DEPTH: the deepest unmined chain of our own transactions whose outputs
    # ReportAccepted makes AVAILABLE, and the most a lease's max_unconfirmed_depth may ask (0: off).
    max_unconfirmed_depth: int = 25


class UtxoPool(SpendUseCases, AcceptanceUseCases):
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
        require_pool(caller)
        check_request_id(request_id)
        purpose = check.purpose(request.purpose)
        check.key_id(request.owner_key_id, "owner_key_id", optional=True)
        quantities = (request.count, request.target_satoshis, request.outpoints)
        if sum(q is not None for q in quantities) != 1:
            raise invalid_argument(
                "QUANTITY_INVALID", "quantity", "set exactly one of count, target_satoshis and outpoints"
            )
        if request.count is not None and not 1 <= request.count <= check.MAX_ITEMS:
            raise invalid_argument("COUNT_INVALID", "count", f"must be 1 to {check.MAX_ITEMS}")
        if request.target_satoshis is not None:
            check.positive_satoshis(request.target_satoshis, "target_satoshis", "TARGET_SATOSHIS_INVALID")
        if request.outpoints is not None:
            check.outpoints(request.outpoints, "outpoints.outpoints", reason="OUTPOINTS_INVALID")
            _refuse_selection_fields(request)
        duration = check.lease_duration(
            request.duration, self._config.default_lease, self._config.max_lease, "lease_duration"
        )
        check.non_negative(request.min_satoshis, "min_satoshis")
        check.non_negative(request.fee_rate_satoshis_per_kb, "fee_rate_satoshis_per_kb")
        if not 0 <= request.max_count <= check.MAX_ITEMS:
            raise invalid_argument("MAX_COUNT_INVALID", "max_count", f"must be 0 to {check.MAX_ITEMS}")
        check.text(request.holder, "holder", check.MAX_HOLDER_CHARS)
        check.max_unconfirmed_depth(request.max_unconfirmed_depth, self._config.max_unconfirmed_depth)
        if request.outpoints is not None:
            return await self._lease_outpoints(caller, request_id, request, purpose, duration, request.outpoints)
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
            *_depth_key(request),
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
                    request.max_unconfirmed_depth,
                )
                utxos = await self._claim_count(uow, row, request, request.count, claimed)
            else:
                assert request.target_satoshis is not None
                row = await uow.insert_lease(
                    uuid.uuid4().hex, caller.caller_id, request.holder, purpose, strategy, duration
                )
                utxos = await self._claim_target(uow, row, request, request.target_satoshis)
            lease = lease_view(row, utxos)
            await uow.record_answer(caller.caller_id, "LeaseUtxos", request_id, fingerprint, codec.lease_to_json(lease))
        return lease

    async def _lease_outpoints(
        self,
        caller: Caller,
        request_id: str,
        request: LeaseRequest,
        purpose: Purpose,
        duration: timedelta,
        outpoints: Sequence[Outpoint],
    ) -> Lease:
        """Exactly `outpoints`, all or nothing, in their order (the caller's own coin selection)."""
        fingerprint = request_fingerprint(
            "LeaseUtxos",
            purpose.value,
            request.owner_key_id,
            "outpoints",
            [str(o) for o in outpoints],
            duration.total_seconds(),
            request.holder,
            *_depth_key(request),
        )
        async with self._store.unit_of_work() as uow:
            # A concurrent attempt of this request holds the very rows this one wants: wait for it
            # and answer what it answered, instead of calling its outpoints taken.
            await uow.lock_request(caller.caller_id, "LeaseUtxos", request_id)
            replay = await uow.find_answer(caller.caller_id, "LeaseUtxos", request_id, fingerprint)
            if replay is not None:
                return codec.lease_from_json(replay)
            row_ids = await self._leasable_now(uow, request, purpose, outpoints)
            row = await uow.insert_lease(
                uuid.uuid4().hex, caller.caller_id, request.holder, purpose, self._config.default_strategy, duration
            )
            reserved = {u.row_id: u for u in await uow.reserve_exact(row, row_ids)}
            if len(reserved) != len(row_ids):
                # Cannot happen while this transaction holds the rows: a bug, and nothing is kept.
                raise RuntimeError(f"reserved {len(reserved)} of {len(row_ids)} locked outpoints")
            lease = lease_view(row, [reserved[row_id] for row_id in row_ids])
            await uow.record_answer(caller.caller_id, "LeaseUtxos", request_id, fingerprint, codec.lease_to_json(lease))
        return lease

    async def _leasable_now(
        self, uow: UnitOfWork, request: LeaseRequest, purpose: Purpose, outpoints: Sequence[Outpoint]
    ) -> list[int]:
        """The row ids of `outpoints` in their order, each known, matching the request and locked by
        this transaction, else the refusal: UTXO_NOT_FOUND, UTXO_MISMATCH, UTXO_NOT_AVAILABLE (also for
        a coin deeper than the request's max_unconfirmed_depth)."""
        owners = await uow.outpoint_owners(outpoints)
        missing = [o for o in outpoints if o not in owners]
        if missing:
            raise errors.utxo_not_found(missing[0], len(missing))
        owner_key_id = request.owner_key_id
        mismatched = [
            o
            for o in outpoints
            if owners[o].purpose is not purpose or (owner_key_id and owners[o].owner_key_id != owner_key_id)
        ]
        if mismatched:
            first = owners[mismatched[0]]
            raise errors.utxo_mismatch(mismatched[0], first.purpose, first.owner_key_id, len(mismatched))
        row_ids = [owners[o].row_id for o in outpoints]
        # Never waits: a row another transaction holds (a concurrent claim) is not available.
        held = await uow.lock_rows_nowait(row_ids)
        leasable = await uow.leasable_rows(row_ids, request.max_unconfirmed_depth)
        if held is not None:
            leasable.discard(held)
        unavailable = [o for o, row_id in zip(outpoints, row_ids, strict=True) if row_id not in leasable]
        if unavailable:
            raise errors.utxo_not_available(unavailable[0], len(unavailable))
        return row_ids

    async def _claim_count(
        self, uow: UnitOfWork, row: LeaseRow, request: LeaseRequest, count: int, claimed: list[Utxo]
    ) -> list[Utxo]:
        """`claimed`: what the lease's first claim took."""
        owner, minimum, depth = request.owner_key_id, request.min_satoshis, request.max_unconfirmed_depth
        utxos = claimed
        if len(utxos) < count:
            # Expired reservations count as AVAILABLE: reap them (for this purpose) and try again.
            _, reaped = await uow.reap_expired(row.purpose, _REAP_BATCH)
            if reaped:
                utxos = in_strategy_order(
                    row.strategy, utxos + await uow.claim_count(row, owner, minimum, count - len(utxos), depth)
                )
        if not utxos or (len(utxos) < count and not request.allow_partial):
            available, satoshis = await uow.leasable_summary(row.purpose, owner, minimum, depth)
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
            candidates = await uow.lock_candidates(
                row, request.owner_key_id, minimum, wanted, chosen, request.max_unconfirmed_depth
            )
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
            available, satoshis = await uow.leasable_summary(
                row.purpose, request.owner_key_id, minimum, request.max_unconfirmed_depth
            )
            within = f" within {max_count} UTXOs" if len(chosen) >= max_count else ""
            raise errors.pool_exhausted(row.purpose, available, satoshis, f"{target} sat{within}")
        return await uow.reserve_rows(row, chosen)

    async def renew(
        self, caller: Caller, request_id: str, lease_id: str, fencing_token: int, duration: timedelta | None
    ) -> Lease:
        require_pool(caller)
        check_request_id(request_id)
        check.lease_id(lease_id)
        duration = check.lease_duration(duration, self._config.default_lease, self._config.max_lease, "lease_duration")
        fingerprint = request_fingerprint("RenewLease", lease_id, fencing_token, duration.total_seconds())
        async with self._store.unit_of_work() as uow:
            replay = await uow.find_answer(caller.caller_id, "RenewLease", request_id, fingerprint)
            if replay is not None:
                return codec.lease_from_json(replay)
            row = await owned_lease(uow, caller, lease_id, lock=True)
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
            lease = lease_view(row, await uow.carrying(row))
            await uow.record_answer(caller.caller_id, "RenewLease", request_id, fingerprint, codec.lease_to_json(lease))
        return lease

    async def release(
        self, caller: Caller, request_id: str, lease_id: str, outpoints: Sequence[Outpoint]
    ) -> ReleaseResult:
        require_pool(caller)
        check_request_id(request_id)
        check.lease_id(lease_id)
        check.outpoints(outpoints, "outpoints", allow_empty=True)
        fingerprint = request_fingerprint("ReleaseLease", lease_id, *(str(o) for o in outpoints))
        async with self._store.unit_of_work() as uow:
            replay = await uow.find_answer(caller.caller_id, "ReleaseLease", request_id, fingerprint)
            if replay is not None:
                return codec.release_from_json(replay)
            row = await owned_lease(uow, caller, lease_id, lock=True)
            row_ids: list[int] | None = None
            if outpoints:
                row_ids = [u.row_id for u in (await uow.outpoints(outpoints)).values()]
            released = await uow.release(row.fencing_token, row_ids, caller.caller_id)
            result = ReleaseResult(tuple(released), lease_view(row, await uow.carrying(row)))
            await uow.record_answer(
                caller.caller_id, "ReleaseLease", request_id, fingerprint, codec.release_to_json(result)
            )
        return result

    # --- reads -----------------------------------------------------------------------------------

    async def list_utxos(self, caller: Caller, filters: UtxoFilter, requested_size: int, page_token: str) -> UtxoPage:
        require_pool(caller)
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
        async with self._store.snapshot() as uow:
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
        require_pool(caller)
        check.key_id(owner_key_id, "owner_key_id", optional=True)
        return await self.snapshot(owner_key_id, purpose, compare_with_chain)

    async def snapshot(
        self, owner_key_id: str = "", purpose: Purpose | None = None, compare: bool = False
    ) -> PoolHealth:
        """The health figures (also what the metrics refresher exports)."""
        rate = await self._fee_rates.satoshis_per_kb()
        publish_fee = fees.fee_for(self._config.publish_tx_bytes, rate)
        async with self._store.snapshot() as uow:
            now = await uow.now()
            buckets = await uow.buckets(owner_key_id, purpose)
            counts = await uow.lease_counts(owner_key_id, purpose)
            figures = await uow.publish_figures(owner_key_id, publish_fee)
            state = await uow.maintenance_rows()
        available_publish = sum(
            b.count for b in buckets if b.purpose is Purpose.PUBLISH and b.status is UtxoStatus.AVAILABLE
        )
        if purpose not in (None, Purpose.PUBLISH):
            async with self._store.snapshot() as uow:
                all_buckets: list[Bucket] = await uow.buckets(owner_key_id, Purpose.PUBLISH)
            available_publish = sum(b.count for b in all_buckets if b.status is UtxoStatus.AVAILABLE)
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
            buckets=tuple(replace(b, satoshis=saturated(b.satoshis)) for b in buckets),
            leases=LeaseStats(
                counts.live_leases,
                counts.live_utxos,
                counts.expired_leases,
                counts.expired_utxos,
                counts.oldest_live_created_at,
            ),
            runway=runway_of(figures, rate, publish_fee, self._config.publish_tx_bytes),
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
            async with self._store.snapshot() as uow:
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
        async with self._store.snapshot() as uow:
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
        async with self._store.snapshot() as uow:
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


def _refuse_selection_fields(request: LeaseRequest) -> None:
    """A lease of exact outpoints takes the caller's selection as it is: the fields that steer the
    pool's own selection must be left unset."""
    unused = "must be unset when the request names its outpoints"
    if request.strategy is not None:
        raise invalid_argument("STRATEGY_INVALID", "strategy", unused)
    if request.allow_partial:
        raise invalid_argument("ALLOW_PARTIAL_INVALID", "allow_partial", f"{unused}: they are leased all or none")
    if request.min_satoshis:
        raise invalid_argument("MIN_SATOSHIS_INVALID", "min_satoshis", unused)
    if request.fee_rate_satoshis_per_kb:
        raise invalid_argument("FEE_RATE_SATOSHIS_PER_KB_INVALID", "fee_rate_satoshis_per_kb", unused)
    if request.max_count:
        raise invalid_argument("MAX_COUNT_INVALID", "max_count", unused)


def _depth_key(request: LeaseRequest) -> list[object]:
    """The fingerprint's part for max_unconfirmed_depth: none at 0, so the fingerprints of default
    requests (and the answers recorded before the field existed) stay what they were."""
    return [("max_unconfirmed_depth", request.max_unconfirmed_depth)] if request.max_unconfirmed_depth else []


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


def runway_of(figures: PublishFigures, rate: int, publish_fee: int, publish_tx_bytes: int) -> Runway:
    """The runway from the exact sums; each figure then saturates at what its field carries."""
    funded = figures.publish_satoshis // publish_fee
    remaining = None
    if figures.spends_last_hour:
        seconds = funded * 3600 / figures.spends_last_hour
        remaining = timedelta(seconds=min(seconds, MAX_DURATION.total_seconds()))
    return Runway(
        fee_rate_satoshis_per_kb=rate,
        publish_tx_size_bytes=publish_tx_bytes,
        publish_fee_satoshis=publish_fee,
        ready_publishes=figures.ready,
        funded_publishes=saturated(funded),
        funded_publishes_with_funding=saturated((figures.publish_satoshis + figures.funding_satoshis) // publish_fee),
        spends_last_hour=figures.spends_last_hour,
        estimated_remaining=remaining,
    )
