"""Sync from chain: the pool's unspent outpoints of some keys against the chain's lists, planned by
sync.plan_sync and applied under the maintenance fence."""

from __future__ import annotations

from collections.abc import Sequence

from proofline_kit.errors import DomainError, ErrorKind
from proofline_kit.wire import Outpoint
from services.utxo.domain.maintenance_txs import MaintenanceTransactions, stale_lock
from services.utxo.domain.models import MaintenanceAction, MaintenanceOutcome, MaintenanceResult, Purpose
from services.utxo.domain.ports import ChainReader, HeldLock, UnitOfWork
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


class SyncMaintenance(MaintenanceTransactions):
    """Part of PoolMaintenance."""

    _chain: ChainReader | None

    async def _sync(self, owner_key_ids: Sequence[str], dry_run: bool, lock: HeldLock | None) -> MaintenanceResult:
        return (await self._sync_planned(owner_key_ids, dry_run, lock))[0]

    async def _sync_planned(
        self, owner_key_ids: Sequence[str], dry_run: bool, lock: HeldLock | None
    ) -> tuple[MaintenanceResult, SyncPlan]:
        chain = self._require_chain()
        rebroadcast = "" if dry_run else await self._rebroadcast_pending()
        async with self._store.snapshot() as uow:
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
        async with self._store.snapshot() as uow:
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
                raise stale_lock(lock)
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

    def _require_chain(self) -> ChainReader:
        if self._chain is None:
            raise no_chain()
        return self._chain


def no_chain() -> DomainError:
    return DomainError(
        ErrorKind.UNAVAILABLE, "CHAIN_UNAVAILABLE", "no chain client is configured (WOC_URL)", retry_after_ms=60_000
    )
