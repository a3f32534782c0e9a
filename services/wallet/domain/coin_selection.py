"""Coin selection: which of the wallet's coins pay for a payment, and whether it gets a change output.

Pure: coins and parameters in, a `Selection` out (or a domain error). No I/O, no clock; the only
randomness comes from a `random.Random` the caller passes in, so a replay with the same seed makes
the same choices.

The model (Bitcoin Core's, with the sizes and the fee unit as parameters)
------------------------------------------------------------------------

Money is integer satoshis. A fee rate is integer satoshis per 1000 bytes, and the fee of a
transaction of ``size`` bytes is ``max(1, ceil(size * rate / 1000))``, the size being that of the
signed transaction with signatures at their largest (``input_size`` already counts them). A
transaction is ``overhead_size`` bytes (version, counts, lock time), plus one ``input_size`` per
input (a coin may say its own), plus one ``recipient_output_sizes`` entry per payee, plus
``change_output_size`` when it pays change. The defaults are BSV P2PKH (148 / 34 / 10 bytes);
another chain or script type passes its own (Bitcoin P2WPKH in vbytes: 68 / 31 / 11).

*Effective value.* A coin is worth its value minus the fee its own input costs at the current rate.
A coin whose effective value is not positive costs more to spend than it brings: it is never chosen.

*Waste* (Core's metric) is what a choice costs beyond the cheapest conceivable transaction, now
and later, and is what decides between candidate selections::

    waste = sum over inputs (fee at the current rate - fee at the long-term rate)
            + (cost of change   if a change output is made
               else excess)     # what goes to the miner beyond the fee

The long-term rate (``long_term_fee_rate_sat_per_kb``) is the rate the wallet expects to pay on
average: an input spent now at a rate below it is spent cheaper than it will be later, so its
term is negative and selections that consolidate win when fees are low; above it, every extra
input is a loss and the fewest inputs win. *Cost of change* is the change output's fee now plus
the fee to spend that output later at the long-term rate. A change output is made only when the
change is worth keeping: at least ``min_change_satoshis`` (the chain's dust rule; BSV: 1 sat) and
more than the fee to spend it later at the long-term rate. Smaller change goes to the fee.

*Algorithms.* The confirmed coins are tried first; unconfirmed coins join only when the confirmed
ones cannot pay (Core's eligibility filters). On those coins every algorithm below proposes a set
of inputs, each proposal is priced exactly (its real fee, change and waste), and the proposal with
the lowest waste wins (ties: more inputs, which consolidates, then the order below):

- ``bnb``: Core's branch and bound, a depth-first search, largest coins first, for a set whose
  effective value lands between the target and the target plus the cost of change, i.e. a
  transaction without change; it keeps the least waste found within ``bnb_max_tries`` steps;
- ``single``: the one coin that pays with no change and the least excess, if any;
- ``srd``: single random draw, coins in random order until they pay with change of at least
  ``change_target_satoshis``;
- ``largest_first`` and ``smallest_first``: coins by value until they pay with that change;
- ``smallest_single``: the smallest one coin that pays with that change (it leaves the large
  coins whole).

``subtract_fee_from_amount``: the payee pays the fee. The inputs cover ``amount`` (not amount plus
fee), the payee gets ``amount - fee`` and the change is ``inputs - amount``; change too small to
keep goes to the fee, as in the normal mode. A payment whose payee would get less than the dust
rule is refused (``AMOUNT_BELOW_DUST``).

An impossible payment raises `InsufficientCoins` (``INSUFFICIENT_FUNDS``) with the effective value
the wallet has and what the payment needs (amount plus the fee of the transaction without inputs);
``max_inputs`` bounds a transaction's inputs, and coins beyond it do not count as available.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from proofline_kit.errors import DomainError, ErrorKind

R = TypeVar("R", bound=Hashable)

# Sizes in bytes of BSV's P2PKH (compressed key, signature at its largest): the defaults.
P2PKH_INPUT_SIZE = 148
P2PKH_OUTPUT_SIZE = 34
TX_OVERHEAD_SIZE = 10
# Core's branch and bound stops after this many steps of its search.
DEFAULT_BNB_MAX_TRIES = 100_000
# A P2PKH input of 148 bytes: 1000 inputs make a transaction of about 148 kB.
DEFAULT_MAX_INPUTS = 1000
# The seed of the `random.Random` used when the caller passes none (replays repeat).
DEFAULT_SEED = 20_190_101

# Internally fees and values are in thousandths of a satoshi ("milli-sat"), so that
# `value * 1000 - size * rate` is exact and a sum of effective values compares exactly with a target.
_MILLI = 1000


def fee_for_size(size_bytes: int, rate_sat_per_kb: int) -> int:
    """The product's fee rule: ``max(1, ceil(size_bytes * rate_sat_per_kb / 1000))`` satoshis."""
    if size_bytes < 0 or rate_sat_per_kb < 0:
        raise ValueError("size and rate must not be negative")
    return max(1, -(-size_bytes * rate_sat_per_kb // 1000))


@dataclass(frozen=True, slots=True)
class Coin(Generic[R]):
    """A spendable output of the wallet.

    `ref` identifies it (an outpoint tuple, a string: anything hashable, unique among the coins
    passed to one selection); `input_size` is the size of the signed input that spends it when it
    differs from `SelectionParams.input_size`.
    """

    ref: R
    satoshis: int
    confirmed: bool = True
    input_size: int | None = None

    def __post_init__(self) -> None:
        if self.satoshis < 0:
            raise ValueError(f"coin {self.ref!r}: satoshis must not be negative")
        if self.input_size is not None and self.input_size <= 0:
            raise ValueError(f"coin {self.ref!r}: input_size must be positive")


@dataclass(frozen=True, slots=True)
class SelectionParams:
    """What a selection depends on besides the coins and the amount (rates in sat per 1000 bytes).

    - `fee_rate_sat_per_kb`: the rate this transaction pays;
    - `long_term_fee_rate_sat_per_kb`: the rate the wallet expects to pay on average; it prices the
      future spend of a change output and says whether spending more inputs now is cheap or dear;
    - `input_size`, `change_output_size`, `overhead_size`, `recipient_output_sizes`: sizes in bytes
      of a signed input, the change output, the fixed part, and each payee's output;
    - `min_change_satoshis`: the dust rule; no change output is smaller (BSV: 1);
    - `max_inputs`: the most inputs a transaction may have;
    - `subtract_fee_from_amount`: the payees pay the fee out of `amount`;
    - `change_target_satoshis`: the change the fallbacks (srd, largest/smallest first) aim for
      at least, so that they do not make change too small to be of use; 0 = only the dust rule;
    - `bnb_max_tries`: the step budget of the branch and bound search.
    """

    fee_rate_sat_per_kb: int
    long_term_fee_rate_sat_per_kb: int
    input_size: int = P2PKH_INPUT_SIZE
    change_output_size: int = P2PKH_OUTPUT_SIZE
    overhead_size: int = TX_OVERHEAD_SIZE
    recipient_output_sizes: tuple[int, ...] = (P2PKH_OUTPUT_SIZE,)
    min_change_satoshis: int = 1
    max_inputs: int = DEFAULT_MAX_INPUTS
    subtract_fee_from_amount: bool = False
    change_target_satoshis: int = 0
    bnb_max_tries: int = DEFAULT_BNB_MAX_TRIES

    def __post_init__(self) -> None:
        if self.fee_rate_sat_per_kb < 0 or self.long_term_fee_rate_sat_per_kb < 0:
            raise ValueError("fee rates must not be negative")
        if min(self.input_size, self.change_output_size, self.overhead_size) <= 0:
            raise ValueError("sizes must be positive")
        if not self.recipient_output_sizes or min(self.recipient_output_sizes) <= 0:
            raise ValueError("recipient_output_sizes must be one or more positive sizes")
        if self.min_change_satoshis < 1:
            raise ValueError("min_change_satoshis must be at least 1")
        if self.max_inputs < 1:
            raise ValueError("max_inputs must be at least 1")
        if self.change_target_satoshis < 0 or self.bnb_max_tries < 0:
            raise ValueError("change_target_satoshis and bnb_max_tries must not be negative")

    def transaction_size(self, input_sizes: Iterable[int], *, change: bool) -> int:
        """Size in bytes of the signed transaction spending inputs of these sizes."""
        size = self.overhead_size + sum(self.recipient_output_sizes) + sum(input_sizes)
        return size + self.change_output_size if change else size

    @property
    def min_viable_change(self) -> int:
        """The smallest change worth an output: the dust rule, and more than its spend costs later."""
        spend_later = -(-self.input_size * self.long_term_fee_rate_sat_per_kb // 1000)
        return max(self.min_change_satoshis, spend_later + 1)


@dataclass(frozen=True, slots=True)
class Selection(Generic[R]):
    """The chosen inputs and what the transaction then looks like.

    ``input_total == recipient_satoshis + fee_satoshis + change_satoshis``; `change_satoshis` 0
    means no change output; `size_bytes` is the signed size the fee was computed on; `waste` is the
    metric of the module docstring, rounded to the satoshi; `algorithm` names the winning proposal.
    """

    coins: tuple[Coin[R], ...]
    input_total: int
    fee_satoshis: int
    change_satoshis: int
    recipient_satoshis: int
    size_bytes: int
    waste: int
    algorithm: str

    @property
    def has_change(self) -> bool:
        return self.change_satoshis > 0


class InsufficientCoins(DomainError):
    """The coins cannot pay: `available_effective` (the eligible coins' effective value, within
    `max_inputs`) is below `required` (the amount plus the fee of the transaction without inputs;
    with the fee subtracted from the amount, the amount alone)."""

    def __init__(self, available_effective: int, required: int, *, detail: str = "") -> None:
        message = (
            f"the coins are worth {available_effective} sat after their input fees, the payment needs {required} sat"
        )
        super().__init__(
            ErrorKind.FAILED_PRECONDITION,
            "INSUFFICIENT_FUNDS",
            f"{message}{f' ({detail})' if detail else ''}",
            metadata={"availableSatoshis": str(available_effective), "requiredSatoshis": str(required)},
        )
        self.available_effective = available_effective
        self.required = required


class AmountBelowDust(DomainError):
    """With the fee subtracted, the payees would get less than the dust rule allows."""

    def __init__(self, amount: int, fee: int, dust_limit: int) -> None:
        super().__init__(
            ErrorKind.INVALID_ARGUMENT,
            "AMOUNT_BELOW_DUST",
            f"amount {amount} sat minus the fee of at least {fee} sat leaves less than {dust_limit} sat for the payee",
            metadata={"dustLimit": str(dust_limit), "field": "amount"},
        )
        self.amount = amount
        self.fee = fee
        self.dust_limit = dust_limit


def select_coins(
    coins: Iterable[Coin[R]],
    amount: int,
    params: SelectionParams,
    *,
    rng: random.Random | None = None,
) -> Selection[R]:
    """Choose the coins that pay `amount` satoshis to the payees at `params`' fee rate.

    Confirmed coins first; unconfirmed ones only when the confirmed ones cannot pay. Raises
    `InsufficientCoins` when no selection pays, `AmountBelowDust` when the fee is subtracted and the
    payee would get less than the dust rule, ValueError on an amount ≤ 0 or a coin listed twice.
    `rng` drives the random draw; without it a fixed seed is used, so a call repeats.
    """
    if amount <= 0:
        raise ValueError("amount must be positive")
    pool = tuple(coins)
    refs = {coin.ref for coin in pool}
    if len(refs) != len(pool):
        raise ValueError("a coin is listed twice")
    problem = _Problem(amount, params)
    if params.subtract_fee_from_amount:
        cheapest = fee_for_size(params.transaction_size([params.input_size], change=False), params.fee_rate_sat_per_kb)
        if amount - cheapest < problem.dust_total:
            raise AmountBelowDust(amount, cheapest, problem.dust_total)
    rand = rng if rng is not None else random.Random(DEFAULT_SEED)
    confirmed = tuple(coin for coin in pool if coin.confirmed)
    tiers = (confirmed, pool) if len(confirmed) < len(pool) else (pool,)
    failure: InsufficientCoins | None = None
    for tier in tiers:
        try:
            return problem.solve(tier, rand)
        except InsufficientCoins as error:
            failure = error
    assert failure is not None
    raise failure


@dataclass(frozen=True, slots=True)
class _Candidate:
    """One eligible coin, in milli-sat: what it brings to the search and what its input wastes."""

    coin_index: int
    satoshis: int
    size: int
    value: int  # effective value (or, when the payee pays the fee, the plain value), milli-sat
    waste: int  # input fee now minus input fee at the long-term rate, milli-sat


class _Problem:
    """One payment's targets, in milli-sat, and the pricing of a set of inputs."""

    def __init__(self, amount: int, params: SelectionParams) -> None:
        self.amount = amount
        self.params = params
        rate = params.fee_rate_sat_per_kb
        self.rate = rate
        self.base_size = params.transaction_size((), change=False)
        self.min_viable_change = params.min_viable_change
        self.dust_total = params.min_change_satoshis * len(params.recipient_output_sizes)
        change_fee = params.change_output_size * rate
        # The cost of change: its output now, and spending it later at the long-term rate.
        self.cost_of_change = change_fee + params.input_size * params.long_term_fee_rate_sat_per_kb
        wanted_change = max(self.min_viable_change, params.change_target_satoshis)
        if params.subtract_fee_from_amount:
            # The inputs cover the amount; the payee pays the fee; every satoshi above is change.
            self.target = amount * _MILLI
            self.upper = self.target + (self.min_viable_change - 1) * _MILLI
            self.change_target = self.target + wanted_change * _MILLI
        else:
            # A fee is never below 1 sat: with a zero rate that satoshi is part of the target.
            min_fee = _MILLI if rate == 0 else 0
            self.target = amount * _MILLI + self.base_size * rate + min_fee
            self.upper = self.target + self.cost_of_change
            self.change_target = self.target + change_fee + wanted_change * _MILLI

    def solve(self, coins: Sequence[Coin[R]], rand: random.Random) -> Selection[R]:
        params = self.params
        rate, long_term = self.rate, params.long_term_fee_rate_sat_per_kb
        candidates: list[_Candidate] = []
        for index, coin in enumerate(coins):
            size = coin.input_size if coin.input_size is not None else params.input_size
            effective = coin.satoshis * _MILLI - size * rate
            if effective <= 0:
                continue
            value = coin.satoshis * _MILLI if params.subtract_fee_from_amount else effective
            candidates.append(_Candidate(index, coin.satoshis, size, value, size * (rate - long_term)))
        # Largest first; equal values keep the callers' order, so the search is deterministic.
        candidates.sort(key=lambda c: -c.value)
        reachable = sum(c.value for c in candidates[: params.max_inputs])
        if reachable < self.target:
            detail = f"within max_inputs={params.max_inputs}" if len(candidates) > params.max_inputs else ""
            raise InsufficientCoins(reachable // _MILLI, -(-self.target // _MILLI), detail=detail)

        proposals: list[tuple[str, list[_Candidate]]] = []
        found = _branch_and_bound(candidates, self.target, self.upper, params.bnb_max_tries, params.max_inputs)
        if found is not None:
            proposals.append(("bnb", found))
        single = self._best_single(candidates)
        if single is not None:
            proposals.append(("single", [single]))
        shuffled = candidates[:]
        rand.shuffle(shuffled)
        for name, order in (
            ("srd", shuffled),
            ("largest_first", candidates),
            ("smallest_first", candidates[::-1]),
        ):
            drawn = _accumulate(order, self.target, self.change_target, params.max_inputs)
            if drawn is not None:
                proposals.append((name, drawn))
        smallest = self._smallest_single(candidates)
        if smallest is not None:
            proposals.append(("smallest_single", [smallest]))

        priced: list[tuple[tuple[int, int, int], Selection[R]]] = []
        below_dust_fee: int | None = None
        for rank, (name, chosen) in enumerate(proposals):
            outcome = self._price(coins, chosen, name)
            if isinstance(outcome, int):
                below_dust_fee = outcome if below_dust_fee is None else min(below_dust_fee, outcome)
                continue
            selection, waste = outcome
            priced.append(((waste, -len(chosen), rank), selection))
        if not priced:
            if below_dust_fee is not None:
                raise AmountBelowDust(self.amount, below_dust_fee, self.dust_total)
            # Every proposal fell short (only possible through max_inputs and rounding).
            raise InsufficientCoins(reachable // _MILLI, -(-self.target // _MILLI), detail="no selection pays")
        return min(priced, key=lambda item: item[0])[1]

    def _best_single(self, candidates: Sequence[_Candidate]) -> _Candidate | None:
        """The one coin landing in the no-change window with the least excess."""
        fits = [c for c in candidates if self.target <= c.value <= self.upper]
        return min(fits, key=lambda c: (c.value, c.coin_index)) if fits else None

    def _smallest_single(self, candidates: Sequence[_Candidate]) -> _Candidate | None:
        """The smallest one coin that pays with the change target."""
        fits = [c for c in candidates if c.value >= self.change_target]
        return min(fits, key=lambda c: (c.value, c.coin_index)) if fits else None

    def _price(
        self, coins: Sequence[Coin[R]], chosen: Sequence[_Candidate], name: str
    ) -> tuple[Selection[R], int] | int:
        """The exact transaction these inputs make, and its waste in milli-sat; or, when the payee
        would be left below the dust rule, the fee (an int) that would leave it there."""
        params = self.params
        rate = self.rate
        total = sum(c.satoshis for c in chosen)
        input_size = sum(c.size for c in chosen)
        input_waste = sum(c.waste for c in chosen)
        size_without = params.transaction_size((input_size,), change=False)
        size_with = size_without + params.change_output_size
        fee_without = fee_for_size(size_without, rate)
        fee_with = fee_for_size(size_with, rate)
        if params.subtract_fee_from_amount:
            change = total - self.amount
            if change < 0:
                raise AssertionError("a proposal must cover the amount")
            if change >= self.min_viable_change:
                fee, size, recipient = fee_with, size_with, self.amount - fee_with
                waste = input_waste + self.cost_of_change
            else:
                # Change too small to keep goes to the fee; the payee pays the fee of the size.
                fee, size, recipient = fee_without + change, size_without, self.amount - fee_without
                waste = input_waste + change * _MILLI
                change = 0
            if recipient < self.dust_total:
                return fee_without
        else:
            excess = total - self.amount - fee_without
            if excess < 0:
                raise AssertionError("a proposal must cover the amount and the fee")
            change = total - self.amount - fee_with
            recipient = self.amount
            if change >= self.min_viable_change:
                fee, size = fee_with, size_with
                waste = input_waste + self.cost_of_change
            else:
                change, fee, size = 0, total - self.amount, size_without
                waste = input_waste + excess * _MILLI
        selection = Selection(
            coins=tuple(coins[c.coin_index] for c in chosen),
            input_total=total,
            fee_satoshis=fee,
            change_satoshis=change,
            recipient_satoshis=recipient,
            size_bytes=size,
            waste=_round_milli(waste),
            algorithm=name,
        )
        return selection, waste


def _round_milli(milli: int) -> int:
    """Milli-sat to the nearest satoshi (halves up)."""
    return (milli + _MILLI // 2) // _MILLI


def _accumulate(
    order: Sequence[_Candidate], target: int, change_target: int, max_inputs: int
) -> list[_Candidate] | None:
    """Coins in `order` until they reach `change_target`; with more than `max_inputs` coins the
    smallest drawn so far is put back. When the coins never reach it, all drawn ones if they reach
    `target` (a payment without change), else None."""
    drawn: list[tuple[int, int, _Candidate]] = []  # a min-heap on value
    total = 0
    for position, candidate in enumerate(order):
        heapq.heappush(drawn, (candidate.value, position, candidate))
        total += candidate.value
        if len(drawn) > max_inputs:
            total -= heapq.heappop(drawn)[0]
        if total >= change_target:
            break
    if total < target:
        return None
    return [entry[2] for entry in sorted(drawn, key=lambda entry: entry[1])]


def _branch_and_bound(
    candidates: Sequence[_Candidate], target: int, upper: int, max_tries: int, max_inputs: int
) -> list[_Candidate] | None:
    """Core's branch and bound: the least-waste set of coins whose value lies in [target, upper].

    Depth first over the coins sorted by value, largest first; at each coin the branch that
    includes it is explored before the one that leaves it out. A branch is cut when even all the
    remaining coins cannot reach the target, when it overshoots `upper`, when it already wastes
    more than the best solution (only when extra inputs cost more than they save, i.e. their waste
    is positive), or when it holds `max_inputs` coins without reaching the target. A coin equal in
    value and waste to the previous one, which this branch left out, is left out too (the same
    subsets would be searched again). Stops after `max_tries` steps with the best found so far.
    Waste here is the inputs' waste plus the excess over the target.
    """
    # A coin above the window is in no solution: all values are positive.
    pool = [c for c in candidates if c.value <= upper]
    values = [c.value for c in pool]
    wastes = [c.waste for c in pool]
    count = len(pool)
    available = sum(values)
    if available < target or not pool:
        return None
    cut_on_waste = wastes[0] > 0
    selected: list[int] = []
    value = 0
    waste = 0
    best: list[int] | None = None
    best_waste = 0
    index = 0
    tries = 0
    while tries < max_tries:
        tries += 1
        if (
            value + available < target
            or value > upper
            or (cut_on_waste and best is not None and waste > best_waste)
            or (len(selected) >= max_inputs and value < target)
        ):
            backtrack = True
        elif value >= target:
            total_waste = waste + value - target
            if best is None or total_waste <= best_waste:
                best = selected[:]
                best_waste = total_waste
            backtrack = True
        else:
            backtrack = False
        if backtrack:
            if not selected:
                break  # the whole tree is searched
            last = selected.pop()
            # Put back the coins passed over after the last included one, then leave that one out.
            index -= 1
            while index > last:
                available += values[index]
                index -= 1
            value -= values[last]
            waste -= wastes[last]
            index = last + 1
            continue
        current = values[index]
        available -= current
        if (
            selected
            and selected[-1] != index - 1
            and current == values[index - 1]
            and wastes[index] == wastes[index - 1]
        ):
            pass  # the previous, equal coin was left out on this branch: so is this one
        else:
            selected.append(index)
            value += current
            waste += wastes[index]
        index += 1
    return None if best is None else [pool[i] for i in best]
