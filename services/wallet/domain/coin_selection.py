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
ones cannot pay (Core's eligibility filters). On those coins each algorithm in
``SelectionParams.algorithms`` proposes a set of inputs, each proposal is priced exactly (its real
fee, change and waste), and the proposal with the lowest waste wins (ties: more inputs, which
consolidates, then the order below):

- ``bnb``: Core's branch and bound, a depth-first search, largest coins first, for a set whose
  effective value lands between the target and the target plus the cost of change, i.e. a
  transaction without change; it keeps the least waste found within ``bnb_max_tries`` of Core's
  steps (Core: 100,000);
- ``pair``: the two coins that together land in that window with the least excess; every pair is
  looked at (a binary search per coin), where the branch and bound's budget often runs out first;
- ``single``: the one coin that lands in that window with the least excess;
- ``srd``: single random draw (Core's), coins in random order until they pay with change of at
  least ``change_target_satoshis`` (and worth keeping);
- ``smallest_single``: the smallest one coin that pays with that change; it leaves the large coins
  whole, and wins the tie with ``largest_first`` when one coin is enough;
- ``largest_first``: coins from the largest until they pay with that change (fewest inputs);
- ``smallest_first``: coins from the smallest; not on by default. Below the long-term rate it wins
  by consolidating every small coin, and the pool it leaves has nothing for the branch and bound
  to make exact sums with: on Core's bustabit scenario, 10 % of the payments went without change
  instead of 40 % (``python -m bench coinsel``, whose docstring has the figures).

``subtract_fee_from_amount``: the payees pay the fee. The inputs cover ``amount`` (not amount plus
fee), the payee gets ``amount`` minus the fee the transaction's size calls for, and the change is
``inputs - amount``; change too small to keep goes to the fee as in the normal mode (the fee is then
the size's fee plus that change). A payment whose payee would get less than the dust rule is
refused (`AmountBelowDust`, ``AMOUNT_BELOW_DUST``).

An impossible payment raises `InsufficientCoins` (``INSUFFICIENT_FUNDS``) with the effective value
the wallet has and what the payment needs (amount plus the fee of the transaction without inputs);
``max_inputs`` bounds a transaction's inputs, and coins beyond it do not count as available.
"""

from __future__ import annotations

import bisect
import heapq
import random
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

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
# The algorithms, in the order that breaks a tie of waste and input count.
ALGORITHMS = ("bnb", "pair", "single", "srd", "smallest_single", "largest_first", "smallest_first")
# smallest_first is off by default (the module docstring says why).
DEFAULT_ALGORITHMS = frozenset(ALGORITHMS) - {"smallest_first"}
# The seed of the `random.Random` used when the caller passes none (replays repeat).
DEFAULT_SEED = 0

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
    - `change_target_satoshis`: the change the fallbacks (srd, smallest_single, largest_first,
      smallest_first) aim for at least, so that they do not make change too small to be of use
      (Core's SRD aims for 50,000 sat); 0 = only what is worth an output (`min_viable_change`);
    - `bnb_max_tries`: the step budget of the branch and bound search;
    - `algorithms`: which of `ALGORITHMS` propose selections (the module docstring says what each does).
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
    algorithms: frozenset[str] = DEFAULT_ALGORITHMS

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
        unknown = set(self.algorithms) - set(ALGORITHMS)
        if unknown or not self.algorithms:
            raise ValueError(f"algorithms must be some of {', '.join(ALGORITHMS)}; got {sorted(unknown) or 'none'}")

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
        message = f"the eligible coins bring {available_effective} sat to the payment, which needs {required} sat"
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
        smallest_input = min((params.input_size if c.input_size is None else c.input_size for c in pool), default=0)
        one_input = params.transaction_size([smallest_input or params.input_size], change=False)
        cheapest = fee_for_size(one_input, params.fee_rate_sat_per_kb)
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


# A wallet with many coins selects over those near the amount first (`select_near`): the largest
# NEAR_BELOW below it (what branch and bound and the pair search combine into a changeless match)
# and the smallest NEAR_ABOVE from it up (the single coins that pay with the least change). On
# Core's bustabit scenario that keeps the changeless ratio of a selection over every coin (0.407
# against 0.413, Core 0.391) while bounding the work of one selection; 64 / 32 gave 0.180.
NEAR_BELOW = 1000
NEAR_ABOVE = 100


def near_window(values_ascending: Sequence[int], amount: int) -> slice:
    """Where the coins near `amount` are in a list of coin values sorted ascending."""
    index = bisect.bisect_left(values_ascending, amount)
    return slice(max(0, index - NEAR_BELOW), index + NEAR_ABOVE)


def select_near(
    coins_ascending: Sequence[Coin[R]],
    amount: int,
    params: SelectionParams,
    *,
    rng: random.Random | None = None,
) -> Selection[R]:
    """`select_coins` over the coins near `amount` (`coins_ascending`: sorted by value), and over all
    of them only when those cannot pay; confirmed coins first, as `select_coins` does."""
    confirmed = [c for c in coins_ascending if c.confirmed]
    tiers = (confirmed, coins_ascending) if len(confirmed) < len(coins_ascending) else (coins_ascending,)
    failure: InsufficientCoins | None = None
    for tier in tiers:
        window = tier[near_window([c.satoshis for c in tier], amount)]
        for chosen in (window, tier) if len(window) < len(tier) else (tier,):
            try:
                return select_coins(chosen, amount, params, rng=rng)
            except InsufficientCoins as error:
                failure = error
    if failure is None:
        raise InsufficientCoins(0, amount, detail="no coins")
    raise failure


class _Candidate(NamedTuple):
    """One eligible coin, in milli-sat: what it brings to the search and what its input wastes."""

    value: int  # effective value (or, when the payee pays the fee, the plain value), milli-sat
    waste: int  # its input's fee now minus its fee at the long-term rate, milli-sat
    size: int
    satoshis: int
    coin_index: int


class _Problem:
    """One payment's targets, in milli-sat, the proposals of each algorithm, and their pricing."""

    def __init__(self, amount: int, params: SelectionParams) -> None:
        self.amount = amount
        self.params = params
        rate = params.fee_rate_sat_per_kb
        self.rate = rate
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
            self.target = amount * _MILLI + params.transaction_size((), change=False) * rate + min_fee
            self.upper = self.target + self.cost_of_change
            self.change_target = self.target + change_fee + wanted_change * _MILLI

    def solve(self, coins: Sequence[Coin[R]], rand: random.Random) -> Selection[R]:
        params = self.params
        rate, long_term = self.rate, params.long_term_fee_rate_sat_per_kb
        default_size = params.input_size
        sffo = params.subtract_fee_from_amount
        candidates: list[_Candidate] = []
        for index, coin in enumerate(coins):
            size = default_size if coin.input_size is None else coin.input_size
            effective = coin.satoshis * _MILLI - size * rate
            if effective > 0:
                value = coin.satoshis * _MILLI if sffo else effective
                candidates.append(_Candidate(value, size * (rate - long_term), size, coin.satoshis, index))
        # Largest first; equal values keep the caller's order, so every search is deterministic.
        candidates.sort(key=lambda c: -c.value)
        reachable = sum(c.value for c in candidates[: params.max_inputs])
        if reachable < self.target:
            detail = f"within max_inputs={params.max_inputs}" if len(candidates) > params.max_inputs else ""
            raise InsufficientCoins(reachable // _MILLI, -(-self.target // _MILLI), detail=detail)

        enabled = params.algorithms
        proposals: list[tuple[str, Sequence[_Candidate]]] = []
        if "single" in enabled:
            proposals.append(("single", _best_single(candidates, self.target, self.upper)))
        if "pair" in enabled and params.max_inputs >= 2:
            proposals.append(("pair", _best_pair(candidates, self.target, self.upper)))
        if "srd" in enabled:
            shuffled = candidates[:]
            rand.shuffle(shuffled)
            proposals.append(("srd", _accumulate(shuffled, self.target, self.change_target, params.max_inputs)))
        if "largest_first" in enabled:
            proposals.append(
                ("largest_first", _accumulate(candidates, self.target, self.change_target, params.max_inputs))
            )
        if "smallest_first" in enabled:
            proposals.append(
                ("smallest_first", _accumulate(candidates[::-1], self.target, self.change_target, params.max_inputs))
            )
        if "smallest_single" in enabled:
            proposals.append(("smallest_single", _smallest_single(candidates, self.change_target)))

        best: tuple[tuple[int, int, int], Selection[R]] | None = None
        below_dust_fee: int | None = None

        def consider(name: str, chosen: Sequence[_Candidate]) -> None:
            nonlocal best, below_dust_fee
            if not chosen:
                return
            outcome = self._price(coins, chosen, name)
            if isinstance(outcome, int):
                below_dust_fee = outcome if below_dust_fee is None else min(below_dust_fee, outcome)
                return
            selection, waste = outcome
            key = (waste, -len(chosen), ALGORITHMS.index(name))
            if best is None or key < best[0]:
                best = (key, selection)

        for name, chosen in proposals:
            consider(name, chosen)
        if "bnb" in enabled:
            # Run last, bounded by the least waste found so far: a branch wasting more cannot win.
            bound = None if best is None else best[0][0]
            consider("bnb", _branch_and_bound(candidates, self.target, self.upper, params, bound))
        if best is None:
            if below_dust_fee is not None:
                raise AmountBelowDust(self.amount, below_dust_fee, self.dust_total)
            # Every proposal fell short: the enabled algorithms found nothing within max_inputs.
            raise InsufficientCoins(reachable // _MILLI, -(-self.target // _MILLI), detail="no algorithm found a set")
        return best[1]

    def _price(
        self, coins: Sequence[Coin[R]], chosen: Sequence[_Candidate], name: str
    ) -> tuple[Selection[R], int] | int:
        """The exact transaction these inputs make, and its waste in milli-sat; or, when the payee
        would be left below the dust rule, the fee (an int) the payee would have paid."""
        params = self.params
        rate = self.rate
        total = sum(c.satoshis for c in chosen)
        input_waste = sum(c.waste for c in chosen)
        size_without = params.transaction_size((c.size for c in chosen), change=False)
        size_with = size_without + params.change_output_size
        fee_without = fee_for_size(size_without, rate)
        fee_with = fee_for_size(size_with, rate)
        excess = total - self.amount - fee_without
        if params.subtract_fee_from_amount:
            change = total - self.amount
            if change >= self.min_viable_change:
                fee, size, recipient = fee_with, size_with, self.amount - fee_with
                waste = input_waste + self.cost_of_change
            else:
                # Change too small to keep goes to the fee; the payee pays the fee of the size.
                fee, size, recipient = fee_without + change, size_without, self.amount - fee_without
                waste = input_waste + change * _MILLI
                change = 0
            if recipient < self.dust_total:
                return self.amount - recipient
        else:
            change = total - self.amount - fee_with
            recipient = self.amount
            if change >= self.min_viable_change:
                fee, size = fee_with, size_with
                waste = input_waste + self.cost_of_change
            else:
                change, fee, size = 0, total - self.amount, size_without
                waste = input_waste + excess * _MILLI
        if total < self.amount or (excess < 0 and not params.subtract_fee_from_amount):
            raise AssertionError(f"{name} proposed inputs that do not pay")  # a bug of this module
        selection = Selection(
            coins=tuple(coins[c.coin_index] for c in chosen),
            input_total=total,
            fee_satoshis=fee,
            change_satoshis=change,
            recipient_satoshis=recipient,
            size_bytes=size,
            waste=(waste + _MILLI // 2) // _MILLI,
            algorithm=name,
        )
        return selection, waste


def _best_single(candidates: Sequence[_Candidate], target: int, upper: int) -> list[_Candidate]:
    """The one coin landing in the no-change window [target, upper] with the least excess."""
    fits = [c for c in candidates if target <= c.value <= upper]
    return [fits[-1]] if fits else []  # sorted largest first: the last fits best


def _smallest_single(candidates: Sequence[_Candidate], change_target: int) -> list[_Candidate]:
    """The smallest one coin that pays with the change aimed for."""
    fits = [c for c in candidates if c.value >= change_target]
    return [fits[-1]] if fits else []


def _best_pair(candidates: Sequence[_Candidate], target: int, upper: int) -> list[_Candidate]:
    """The two coins landing together in the no-change window with the least excess (every pair is
    looked at: for each coin, a binary search for its partner among the larger ones)."""
    ascending = [c for c in reversed(candidates) if c.value < target]
    values = [c.value for c in ascending]
    count = len(values)
    best: list[_Candidate] = []
    best_excess = upper - target + 1
    for index, smaller in enumerate(ascending):
        partner = bisect.bisect_left(values, target - smaller.value, index + 1)
        if partner == count:
            continue
        excess = smaller.value + values[partner] - target
        if excess < best_excess:
            best, best_excess = [ascending[partner], smaller], excess
            if excess == 0:
                break
    return best


def _accumulate(order: Sequence[_Candidate], target: int, change_target: int, max_inputs: int) -> list[_Candidate]:
    """Coins in `order` until they reach `change_target`; beyond `max_inputs` coins, the smallest
    drawn so far goes back. When they never reach it: all drawn, if they reach `target` (a payment
    without change), else none."""
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
        return []
    return [entry[2] for entry in sorted(drawn, key=lambda entry: entry[1])]


def _branch_and_bound(
    candidates: Sequence[_Candidate], target: int, upper: int, params: SelectionParams, bound: int | None
) -> list[_Candidate]:
    """Core's branch and bound: the least-waste set of coins whose value lies in [target, upper].

    Depth first over the coins sorted by value, largest first; at each coin the branch that
    includes it is explored before the one that leaves it out, and a branch ends at the first coin
    that brings it to the target. A branch is cut when even all the remaining coins cannot reach
    the target, when it overshoots `upper`, when it holds `max_inputs` coins short of the target,
    or, when inputs waste (the rate is above the long-term rate, so every input adds waste), when
    its inputs already waste more than the best solution found or than `bound` (what another
    algorithm achieved). A coin equal in value and waste to the previous one, which this branch
    left out, is left out too (the same subsets would be searched again). Waste here is the
    inputs' waste plus the excess over the target.

    The search stops after `bnb_max_tries` of Core's steps with the best found so far. Two
    shortcuts make it faster without changing what it visits or what a step is: the coins a branch
    has not looked at yet are worth a suffix sum, not a running total put back coin by coin; and a
    run of coins that overshoot is passed over by a binary search, counted as Core's steps (Core
    includes each, sees the overshoot and backtracks: two steps a coin, one for a coin it skips as
    equal to the previous). Searching further than Core within the same budget was measured to
    lower the share of payments without change (bench/coinsel_bench.py): the extra reach finds
    consolidating solutions below the long-term rate, and the pool it leaves is smaller.
    """
    # Coins above the window come first and are in no solution: Core steps in and out of each.
    first = bisect.bisect_left([-c.value for c in candidates], -upper)
    tries = 2 * first
    pool = candidates[first:]
    count = len(pool)
    values = [c.value for c in pool]
    wastes = [c.waste for c in pool]
    negated = [-v for v in values]  # ascending, for the binary search
    remaining = [0] * (count + 1)  # remaining[i]: the value of coins i and after
    equal = [False] * (count + 1)  # equal[i]: coin i is worth what coin i - 1 is, and wastes as much
    equal_before = [0] * (count + 2)  # equal_before[i]: how many of coins 0 .. i - 1 are equal
    for i in range(count - 1, -1, -1):
        remaining[i] = remaining[i + 1] + values[i]
    for i in range(1, count):
        equal[i] = values[i] == values[i - 1] and wastes[i] == wastes[i - 1]
    for i in range(count):
        equal_before[i + 1] = equal_before[i] + equal[i]
    equal_before[count + 1] = equal_before[count]
    if not pool or remaining[0] < target:
        return []
    max_inputs = params.max_inputs
    max_tries = params.bnb_max_tries
    cut_on_waste = wastes[0] > 0
    no_bound = sum(w for w in wastes if w > 0) + upper - target + 1  # above any branch's waste
    # With a bound, only what could beat it counts (1 sat of slack: a priced excess rounds down).
    best_waste = no_bound if bound is None or not cut_on_waste else bound + _MILLI
    selected: list[int] = []
    best: list[int] = []
    value = waste = index = depth = 0
    while tries < max_tries:
        tries += 1
        if value + remaining[index] < target or (cut_on_waste and waste > best_waste):
            pass  # backtrack
        elif value >= target:
            total_waste = waste + value - target
            if total_waste <= best_waste:
                best, best_waste = selected[:], total_waste
        elif depth < max_inputs:
            current = values[index]
            # Core leaves out at once a coin equal to the previous one this branch left out.
            skips = depth and equal[index] and selected[-1] != index - 1
            if value + current > upper:
                # This coin and the next ones as large overshoot: go to the first that fits.
                stop = bisect.bisect_left(negated, value - upper, index)
                tries += 2 * (stop - index) - (equal_before[stop] - equal_before[index + 1]) - bool(skips) - 1
                index = stop
                continue
            if skips:
                index += 1
                continue
            selected.append(index)
            value += current
            waste += wastes[index]
            depth += 1
            index += 1
            continue
        # Backtrack: leave out the last coin included, and go on with the ones after it.
        if not depth:
            break  # the whole tree is searched
        last = selected.pop()
        value -= values[last]
        waste -= wastes[last]
        depth -= 1
        index = last + 1
    return [pool[i] for i in best]
