"""Sweep: change outputs of an address, consolidated to the funding address (or another destination)."""

from __future__ import annotations

from bsv.utils import decode_address

from proofline_kit.errors import invalid_argument
from services.utxo.domain import fees, planning
from services.utxo.domain import validation as check
from services.utxo.domain.maintenance_txs import MaintenanceTransactions, address_mismatch, planned_tx
from services.utxo.domain.models import (
    MaintenanceAction,
    MaintenanceOutcome,
    MaintenanceResult,
    MaintenanceTx,
    PlannedOutput,
    Purpose,
    Strategy,
    SweepRequest,
)
from services.utxo.domain.ports import HeldLock


class SweepMaintenance(MaintenanceTransactions):
    """Part of PoolMaintenance."""

    async def _sweep(
        self, request: SweepRequest, dry_run: bool, lock: HeldLock | None, request_id: str
    ) -> MaintenanceResult:
        change_key = request.change_key_id or self._config.change_key_id
        if not change_key:
            raise invalid_argument("CHANGE_KEY_ID_INVALID", "change_key_id", "required: UTXO_CHANGE_KEY_ID is unset")
        info = await self._keys.key(change_key)
        change_address = request.change_address or self._config.change_address or info.address
        if change_address != info.address:
            raise address_mismatch(change_address, change_key)
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
            async with self._store.snapshot() as uow:
                coins = await uow.peek_available(
                    Purpose.CHANGE, change_key, Strategy.SMALLEST_FIRST, minimum, max_inputs * max_txs
                )
            for start in range(0, len(coins), max_inputs):
                plan = planning.plan_sweep(coins[start : start + max_inputs], rate, buffer)
                if plan is not None:
                    made.append(planned_tx(plan, outputs_of(plan), rate))
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


MAX_SWEEP_INPUTS = 2000


MAX_SWEEP_TRANSACTIONS = 20


def check_sweep(request: SweepRequest) -> None:
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


def sweep_key(request: SweepRequest) -> list[object]:
    return [
        request.change_address,
        request.change_key_id,
        request.destination_address,
        request.max_inputs_per_transaction,
        request.max_transactions,
        request.fee_rate_satoshis_per_kb,
    ]
