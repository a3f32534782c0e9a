"""Split: fee-aware split of funding coins into publish UTXOs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from proofline_kit.errors import DomainError, ErrorKind, invalid_argument
from services.utxo.domain import planning
from services.utxo.domain import validation as check
from services.utxo.domain.maintenance_txs import MaintenanceTransactions, address_mismatch, planned_tx, stale_lock
from services.utxo.domain.models import (
    MaintenanceAction,
    MaintenanceOutcome,
    MaintenanceResult,
    PlannedOutput,
    Purpose,
    SplitRequest,
    Strategy,
    Utxo,
)
from services.utxo.domain.ports import HeldLock, KeyInfo

if TYPE_CHECKING:
    from services.utxo.domain.maintenance import SplitConfig


class SplitMaintenance(MaintenanceTransactions):
    """Part of PoolMaintenance."""

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
        async with self._store.snapshot() as uow:
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
        async with self._store.snapshot() as uow:
            coins = await uow.peek_available(Purpose.FUNDING, funding_key, Strategy.LARGEST_FIRST, 1, check.MAX_ITEMS)
        extra = [c for c in became_available[0] if c.owner_key_id == funding_key and c.purpose is Purpose.FUNDING]
        if extra:
            coins = sorted([*coins, *extra], key=lambda c: -c.satoshis)
        plan = planning.plan_split(coins, count, size, min_size, rate, buffer, shrink_count=shrink)
        await self._check_spendable(funding_key, plan.inputs)

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
            planned = planned_tx(plan, outputs_of(plan), rate)
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
                raise stale_lock(lock)
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

    async def _check_spendable(self, funding_key: str, inputs: Sequence[Utxo]) -> None:
        """Refuse before anything is leased when a planned coin is not the funding key's P2PKH output:
        the signer would refuse it after the lease (AddOutputs cannot check scripts against keys)."""
        script = (await self._keys.key(funding_key)).locking_script
        foreign = [u for u in inputs if u.locking_script != script]
        if foreign:
            raise DomainError(
                ErrorKind.FAILED_PRECONDITION,
                "FUNDING_NOT_SPENDABLE",
                f"{len(foreign)} planned FUNDING coin(s) are not P2PKH outputs of {funding_key}",
                metadata={"outpoint": str(foreign[0].outpoint), "count": str(len(foreign))},
            )

    async def _change_destination(self, funding_key: str) -> tuple[str, Purpose, KeyInfo]:
        """Split change goes to UTXO_CHANGE_ADDRESS (the change key); without one, back to funding."""
        if self._config.change_key_id:
            info = await self._keys.key(self._config.change_key_id)
            if self._config.change_address and self._config.change_address != info.address:
                raise address_mismatch(self._config.change_address, self._config.change_key_id)
            return self._config.change_key_id, Purpose.CHANGE, info
        return funding_key, Purpose.FUNDING, await self._keys.key(funding_key)


def check_split(request: SplitRequest, config: SplitConfig) -> None:
    check.key_id(request.funding_key_id, "funding_key_id", optional=True)
    check.key_id(request.output_key_id, "output_key_id", optional=True)
    if not 0 <= request.output_count <= config.max_outputs_per_tx:
        raise invalid_argument("OUTPUT_COUNT_INVALID", "output_count", f"0 to {config.max_outputs_per_tx}")
    check.non_negative(request.output_satoshis, "output_satoshis")
    check.non_negative(request.fee_rate_satoshis_per_kb, "fee_rate_satoshis_per_kb")


def split_key(request: SplitRequest) -> list[object]:
    return [
        request.funding_key_id,
        request.output_key_id,
        request.output_count,
        request.output_satoshis,
        request.fee_rate_satoshis_per_kb,
        request.ignore_cooldown,
    ]
