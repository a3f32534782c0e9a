"""Fee-aware plans for split and sweep transactions (pure: coins and parameters in, a plan out)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from proofline_kit.errors import DomainError, ErrorKind
from services.utxo.domain import fees
from services.utxo.domain.models import Utxo


@dataclass(frozen=True, slots=True)
class Plan:
    inputs: tuple[Utxo, ...]
    # Value of each pay-out (split: one per new publish output; sweep: the single destination output).
    payouts: tuple[int, ...]
    change_satoshis: int
    fee_satoshis: int
    size_bytes: int


def insufficient_funds(available: int, required: int) -> DomainError:
    return DomainError(
        ErrorKind.FAILED_PRECONDITION,
        "INSUFFICIENT_FUNDS",
        f"funding coins hold {available} sat, the plan needs {required} sat",
        metadata={"availableSatoshis": str(available), "requiredSatoshis": str(required)},
    )


def split_fee(inputs: int, outputs: int, rate: int, buffer: int) -> int:
    """Fee of a split with `outputs` pay-outs plus one change output."""
    return fees.fee_for(fees.p2pkh_tx_bytes(inputs, outputs + 1), rate) + buffer


def plan_split(
    coins: Sequence[Utxo],
    count: int,
    size: int,
    min_size: int,
    rate: int,
    buffer: int,
    *,
    shrink_count: bool,
) -> Plan:
    """Take coins in the given order until they pay `count` outputs of `size` plus the fee. When
    all coins together fall short, outputs shrink towards `min_size`; then (when `shrink_count`)
    fewer outputs are made. INSUFFICIENT_FUNDS when not even one output fits."""
    chosen: list[Utxo] = []
    total = 0
    for coin in coins:
        chosen.append(coin)
        total += coin.satoshis
        if total >= count * size + split_fee(len(chosen), count, rate, buffer):
            return _split_plan(chosen, count, size, rate, buffer)
    required = count * size + split_fee(max(1, len(chosen)), count, rate, buffer)
    if not chosen:
        raise insufficient_funds(0, required)
    spendable = total - split_fee(len(chosen), count, rate, buffer)
    if spendable // count >= min_size:
        return _split_plan(chosen, count, spendable // count, rate, buffer)
    if shrink_count:
        for fewer in range(count - 1, 0, -1):
            spendable = total - split_fee(len(chosen), fewer, rate, buffer)
            if spendable // fewer >= min_size:
                return _split_plan(chosen, fewer, min(size, spendable // fewer), rate, buffer)
    raise insufficient_funds(total, required)


def _split_plan(chosen: Sequence[Utxo], count: int, size: int, rate: int, buffer: int) -> Plan:
    fee = split_fee(len(chosen), count, rate, buffer)
    change = sum(c.satoshis for c in chosen) - count * size - fee
    outputs = count + (1 if change > 0 else 0)
    return Plan(tuple(chosen), (size,) * count, change, fee, fees.p2pkh_tx_bytes(len(chosen), outputs))


def sweepable(coins: Sequence[Utxo], rate: int) -> list[Utxo]:
    """Coins worth more than the fee of spending them."""
    cost = fees.input_fee(rate)
    return [c for c in coins if c.satoshis > cost]


def plan_sweep(coins: Sequence[Utxo], rate: int, buffer: int) -> Plan | None:
    """All `coins` into one output, minus the fee; None when nothing would be left."""
    if not coins:
        return None
    size = fees.p2pkh_tx_bytes(len(coins), 1)
    fee = fees.fee_for(size, rate) + buffer
    payout = sum(c.satoshis for c in coins) - fee
    if payout < 1:
        return None
    return Plan(tuple(coins), (payout,), 0, fee, size)
