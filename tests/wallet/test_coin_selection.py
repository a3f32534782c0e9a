"""The wallet's coin selection: fees, change, the changeless search, refusals, and its invariants."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.wallet.domain import coin_selection as cs
from services.wallet.domain.coin_selection import (
    AmountBelowDust,
    Coin,
    InsufficientCoins,
    Selection,
    SelectionParams,
    fee_for_size,
    near_window,
    select_coins,
    select_near,
)

# At 1000 sat/kB a fee is the size in bytes: the arithmetic below can be read off the sizes.
# P2PKH: 10 overhead + 34 per output + 148 per input.
ONE_SAT_PER_BYTE = SelectionParams(fee_rate_sat_per_kb=1000, long_term_fee_rate_sat_per_kb=1000)


def pool(*values: int, confirmed: bool = True, prefix: str = "c") -> list[Coin[str]]:
    return [Coin(f"{prefix}{i}", value, confirmed=confirmed) for i, value in enumerate(values)]


def values_of(selection: Selection[str]) -> list[int]:
    return sorted(coin.satoshis for coin in selection.coins)


# --- the fee rule -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "rate", "fee"),
    [
        (226, 1000, 226),
        (226, 500, 113),
        (227, 500, 114),  # 113.5 rounds up
        (226, 1, 1),  # 0.226 rounds up to 1
        (1000, 1, 1),
        (1001, 1, 2),
        (226, 0, 1),  # never below 1 sat
        (192, 50, 10),  # 9.6
        (10_000, 250, 2500),
    ],
)
def test_fee_is_the_size_times_the_rate_per_kb_rounded_up_and_at_least_one(size: int, rate: int, fee: int) -> None:
    assert fee_for_size(size, rate) == fee


def test_sizes_are_the_p2pkh_defaults_and_parameters_change_them() -> None:
    assert ONE_SAT_PER_BYTE.transaction_size([148], change=True) == 226
    assert ONE_SAT_PER_BYTE.transaction_size([148, 148], change=False) == 340
    p2wpkh = SelectionParams(
        1000, 1000, input_size=68, change_output_size=31, overhead_size=11, recipient_output_sizes=(31,)
    )
    assert p2wpkh.transaction_size([68], change=True) == 141


def test_the_fee_of_a_selection_is_that_of_its_signed_size() -> None:
    params = SelectionParams(fee_rate_sat_per_kb=500, long_term_fee_rate_sat_per_kb=500)
    selection = select_coins(pool(100_000), 50_000, params)
    assert selection.size_bytes == 226  # 1 input, payee and change
    assert selection.fee_satoshis == 113
    assert selection.change_satoshis == 100_000 - 50_000 - 113


def test_a_coin_with_its_own_input_size_is_priced_by_it() -> None:
    coins = [Coin("big", 100_000, input_size=300)]
    selection = select_coins(coins, 50_000, ONE_SAT_PER_BYTE)
    assert selection.size_bytes == 10 + 34 + 34 + 300
    assert selection.fee_satoshis == 378


# --- without change ------------------------------------------------------------------------------


def test_branch_and_bound_finds_the_exact_match_of_three_coins() -> None:
    # 30,000 to pay with three inputs costs 10 + 34 + 3 * 148 = 488 sat: 10,000 + 12,000 + 8,488.
    coins = pool(100_000, 10_000, 12_000, 3_333, 8_488, 64_000)
    params = SelectionParams(1000, 1000, algorithms=frozenset({"bnb"}))
    selection = select_coins(coins, 30_000, params)
    assert values_of(selection) == [8_488, 10_000, 12_000]
    assert selection.change_satoshis == 0
    assert selection.fee_satoshis == 488
    assert selection.algorithm == "bnb"


def test_a_changeless_match_beats_any_selection_with_change() -> None:
    # 20,000 + 10,340 pays 30,000 and the 340 sat fee of two inputs exactly.
    coins = pool(100_000, 20_000, 7_777, 10_340, 55_555)
    selection = select_coins(coins, 30_000, ONE_SAT_PER_BYTE)
    assert values_of(selection) == [10_340, 20_000]
    assert (selection.change_satoshis, selection.fee_satoshis, selection.waste) == (0, 340, 0)
    assert selection.algorithm in {"bnb", "pair"}


def test_the_pair_search_finds_a_pair_alone() -> None:
    coins = pool(100_000, 20_000, 7_777, 10_340, 55_555)
    selection = select_coins(coins, 30_000, SelectionParams(1000, 1000, algorithms=frozenset({"pair"})))
    assert values_of(selection) == [10_340, 20_000]
    assert selection.algorithm == "pair"


@pytest.mark.parametrize(("over", "algorithm", "change"), [(182, "pair", 0), (183, "largest_first", 149)])
def test_the_pair_search_keeps_to_the_window(over: int, algorithm: str, change: int) -> None:
    # Window: 34 + 148 = 182 sat above the 30,340 two inputs need; beyond it there is change.
    params = SelectionParams(1000, 1000, algorithms=frozenset({"pair", "largest_first"}))
    selection = select_coins(pool(20_000, 10_340 + over), 30_000, params)
    assert (selection.algorithm, selection.change_satoshis) == (algorithm, change)


def test_an_excess_below_the_cost_of_change_goes_to_the_fee() -> None:
    # One input: 192 bytes. 100 sat over is less than a change output (34) plus its spend (148).
    selection = select_coins(pool(30_292, 90_000), 30_000, ONE_SAT_PER_BYTE)
    assert values_of(selection) == [30_292]
    assert selection.change_satoshis == 0
    assert selection.fee_satoshis == 292
    assert selection.size_bytes == 192
    assert selection.waste == 100  # the excess


def test_change_smaller_than_its_later_spend_goes_to_the_fee() -> None:
    # With change the transaction is 226 bytes; 100 sat of change would cost 148 to spend.
    params = SelectionParams(1000, 1000, algorithms=frozenset({"largest_first"}))
    assert params.min_viable_change == 149
    selection = select_coins(pool(30_326), 30_000, params)
    assert selection.change_satoshis == 0
    assert selection.fee_satoshis == 326
    kept = select_coins(pool(30_226 + 149), 30_000, params)
    assert kept.change_satoshis == 149
    assert kept.fee_satoshis == 226


def test_change_below_the_dust_rule_goes_to_the_fee() -> None:
    params = SelectionParams(1000, 0, min_change_satoshis=546, algorithms=frozenset({"largest_first"}))
    assert params.min_viable_change == 546
    dropped = select_coins(pool(30_226 + 545), 30_000, params)
    assert (dropped.change_satoshis, dropped.fee_satoshis) == (0, 771)
    kept = select_coins(pool(30_226 + 546), 30_000, params)
    assert (kept.change_satoshis, kept.fee_satoshis) == (546, 226)


def test_at_one_sat_per_kb_the_bsv_dust_rule_keeps_change_of_two_sat() -> None:
    params = SelectionParams(1, 1, algorithms=frozenset({"largest_first"}))
    assert params.min_viable_change == 2
    selection = select_coins(pool(1003), 1000, params)
    assert (selection.fee_satoshis, selection.change_satoshis) == (1, 2)


def test_the_fallbacks_take_coins_until_the_change_is_worth_keeping() -> None:
    # 30,300 alone pays 30,000 and the 192 sat fee, but would leave 74 sat of change (< 149): the
    # next coin is taken so that the change is worth an output.
    params = SelectionParams(1000, 1000, algorithms=frozenset({"largest_first"}))
    selection = select_coins(pool(30_300, 20_000), 30_000, params)
    assert values_of(selection) == [20_000, 30_300]
    assert (selection.fee_satoshis, selection.change_satoshis) == (374, 50_300 - 30_000 - 374)


def test_the_changeless_window_is_the_cost_of_change() -> None:
    # Window: the change output now (34 bytes at 2 sat/B) and its spend later (148 bytes at 1 sat/B).
    params = SelectionParams(2000, 1000, algorithms=frozenset({"single", "largest_first"}))
    target = 30_000 + 2 * 192
    inside = select_coins(pool(target + 68 + 148), 30_000, params)
    assert (inside.algorithm, inside.change_satoshis) == ("single", 0)
    outside = select_coins(pool(target + 68 + 148 + 1), 30_000, params)  # 30,601
    assert outside.algorithm == "largest_first"
    assert outside.change_satoshis == 30_601 - 30_000 - 2 * 226 == 149


# --- the waste metric decides ---------------------------------------------------------------------


def test_waste_of_a_selection_with_change() -> None:
    # 148 * (2 - 1) for the input, + 34 * 2 for the change output now + 148 * 1 to spend it later.
    params = SelectionParams(2000, 1000, algorithms=frozenset({"largest_first"}))
    assert select_coins(pool(100_000), 50_000, params).waste == 148 + 68 + 148


def test_equal_waste_goes_to_the_selection_with_more_inputs() -> None:
    # At the long-term rate inputs waste nothing: one coin or two, both waste the cost of change.
    params = SelectionParams(1000, 1000, algorithms=frozenset({"largest_first", "smallest_first"}))
    selection = select_coins(pool(10_000, 40_000), 15_000, params)
    assert (selection.algorithm, values_of(selection), selection.waste) == ("smallest_first", [10_000, 40_000], 182)


def test_above_the_long_term_rate_the_fewest_inputs_win() -> None:
    coins = pool(*([10_000] * 6), 40_000)
    selection = select_coins(coins, 15_000, SelectionParams(20_000, 1000))
    assert values_of(selection) == [40_000]


def test_below_the_long_term_rate_consolidation_wins() -> None:
    # Each input wastes 148 * (1 - 10) = -1,332 sat: spending it now is cheaper than later.
    coins = pool(50_000, 3_000, 2_000, 1_500, 4_000)
    both = SelectionParams(1000, 10_000, algorithms=frozenset({"largest_first", "smallest_first"}))
    selection = select_coins(coins, 20_000, both)
    assert len(selection.coins) == 5
    assert selection.waste == 5 * -1_332 + 34 + 1_480
    one_coin = select_coins(coins, 20_000, SelectionParams(1000, 10_000, algorithms=frozenset({"largest_first"})))
    assert len(one_coin.coins) == 1
    assert one_coin.waste == -1_332 + 34 + 1_480


def test_of_the_single_coins_that_pay_the_smallest_wins_the_tie() -> None:
    params = SelectionParams(20_000, 1000, algorithms=frozenset({"smallest_single", "largest_first"}))
    selection = select_coins(pool(1_000_000, 60_000, 500_000, 9_000), 50_000, params)
    assert values_of(selection) == [60_000]
    assert selection.algorithm == "smallest_single"


# --- the fee from the amount ----------------------------------------------------------------------


def test_subtract_fee_the_payee_pays_the_fee_and_the_change_is_the_rest() -> None:
    params = SelectionParams(1000, 1000, subtract_fee_from_amount=True)
    selection = select_coins(pool(80_000), 50_000, params)
    assert selection.fee_satoshis == 226
    assert selection.recipient_satoshis == 50_000 - 226
    assert selection.change_satoshis == 30_000


def test_subtract_fee_an_exact_coin_needs_no_change() -> None:
    params = SelectionParams(1000, 1000, subtract_fee_from_amount=True)
    selection = select_coins(pool(90_000, 50_000, 7_000), 50_000, params)
    assert values_of(selection) == [50_000]
    assert (selection.change_satoshis, selection.fee_satoshis, selection.recipient_satoshis) == (0, 192, 49_808)


def test_subtract_fee_covers_the_amount_not_the_amount_plus_fee() -> None:
    params = SelectionParams(1000, 1000, subtract_fee_from_amount=True)
    selection = select_coins(pool(50_000), 50_000, params)
    assert selection.recipient_satoshis == 49_808
    with pytest.raises(InsufficientCoins):
        select_coins(pool(50_000), 50_000, ONE_SAT_PER_BYTE)


def test_subtract_fee_small_change_goes_to_the_fee_not_the_payee() -> None:
    params = SelectionParams(1000, 1000, subtract_fee_from_amount=True, algorithms=frozenset({"largest_first"}))
    selection = select_coins(pool(50_100), 50_000, params)
    assert selection.recipient_satoshis == 50_000 - 192
    assert (selection.change_satoshis, selection.fee_satoshis) == (0, 192 + 100)


def test_subtract_fee_refuses_an_amount_the_fee_would_eat() -> None:
    params = SelectionParams(1000, 1000, subtract_fee_from_amount=True)
    with pytest.raises(AmountBelowDust) as refused:
        select_coins(pool(100_000), 192, params)
    assert refused.value.reason == "AMOUNT_BELOW_DUST"
    assert refused.value.metadata["dustLimit"] == "1"
    assert select_coins(pool(193), 193, params).recipient_satoshis == 1
    with pytest.raises(AmountBelowDust):  # with change the payee would pay 226: nothing is left
        select_coins(pool(100_000), 193, params)
    dusty = SelectionParams(1000, 1000, subtract_fee_from_amount=True, min_change_satoshis=546)
    with pytest.raises(AmountBelowDust) as refused:
        select_coins(pool(100_000), 700, dusty)
    assert (refused.value.amount, refused.value.fee, refused.value.dust_limit) == (700, 192, 546)


def test_subtract_fee_refuses_when_the_inputs_it_takes_leave_the_payee_below_dust() -> None:
    # One input of 100 bytes would leave 400 - 144 = 256 sat, but it takes both coins: the payee
    # would pay 10 + 34 + 34 + 2 * 100 = 278 sat and keep 122, below the dust rule of 200.
    params = SelectionParams(1000, 1000, subtract_fee_from_amount=True, min_change_satoshis=200)
    coins = [Coin("a", 300, input_size=100), Coin("b", 300, input_size=100)]
    with pytest.raises(AmountBelowDust) as refused:
        select_coins(coins, 400, params)
    assert (refused.value.fee, refused.value.dust_limit) == (278, 200)


# --- refusals ------------------------------------------------------------------------------------


def test_insufficient_coins_says_what_is_there_and_what_is_needed() -> None:
    with pytest.raises(InsufficientCoins) as refused:
        select_coins(pool(1_000, 2_000), 3_000, ONE_SAT_PER_BYTE)
    # Effective values 852 + 1,852; the payment needs 3,000 + the 44 bytes without inputs.
    assert (refused.value.available_effective, refused.value.required) == (2_704, 3_044)
    assert refused.value.reason == "INSUFFICIENT_FUNDS"
    assert refused.value.metadata == {"availableSatoshis": "2704", "requiredSatoshis": "3044"}


def test_coins_worth_less_than_their_input_fee_are_never_spent() -> None:
    with pytest.raises(InsufficientCoins) as refused:
        select_coins(pool(148, 100, 5_000), 4_900, ONE_SAT_PER_BYTE)
    assert refused.value.available_effective == 5_000 - 148
    selection = select_coins(pool(148, 100, 5_000), 4_000, ONE_SAT_PER_BYTE)
    assert values_of(selection) == [5_000]


def test_coins_beyond_max_inputs_do_not_count() -> None:
    params = SelectionParams(1000, 1000, max_inputs=2)
    with pytest.raises(InsufficientCoins) as refused:
        select_coins(pool(*([1_000] * 5)), 2_000, params)
    assert refused.value.available_effective == 2 * 852
    assert "max_inputs=2" in refused.value.message
    assert len(select_coins(pool(*([1_000] * 5)), 1_500, params).coins) == 2


def test_max_inputs_of_one_makes_every_algorithm_propose_one_coin() -> None:
    # 20,000 + 10,340 would be an exact pair; with one input allowed, one coin pays with change.
    selection = select_coins(pool(20_000, 10_340, 55_555), 30_000, SelectionParams(1000, 1000, max_inputs=1))
    assert values_of(selection) == [55_555]


@pytest.mark.parametrize("amount", [0, -1])
def test_an_amount_must_be_positive(amount: int) -> None:
    with pytest.raises(ValueError, match="amount"):
        select_coins(pool(1_000), amount, ONE_SAT_PER_BYTE)


def test_a_coin_listed_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        select_coins([Coin("a", 1_000), Coin("a", 1_000)], 100, ONE_SAT_PER_BYTE)


@pytest.mark.parametrize(
    "changes",
    [
        {"fee_rate_sat_per_kb": -1},
        {"input_size": 0},
        {"recipient_output_sizes": ()},
        {"min_change_satoshis": 0},
        {"max_inputs": 0},
        {"algorithms": frozenset({"knapsack"})},
        {"algorithms": frozenset()},
    ],
)
def test_impossible_parameters_are_refused(changes: dict[str, object]) -> None:
    arguments: dict[str, object] = {"fee_rate_sat_per_kb": 1000, "long_term_fee_rate_sat_per_kb": 1000, **changes}
    with pytest.raises(ValueError, match="must"):
        SelectionParams(**arguments)  # type: ignore[arg-type]


# --- eligibility and determinism ------------------------------------------------------------------


def test_confirmed_coins_are_preferred_even_over_an_exact_unconfirmed_match() -> None:
    coins = [*pool(100_000, 70_000), *pool(30_192, confirmed=False, prefix="u")]
    selection = select_coins(coins, 30_000, ONE_SAT_PER_BYTE)
    assert all(coin.confirmed for coin in selection.coins)


def test_unconfirmed_coins_are_spent_when_the_confirmed_cannot_pay() -> None:
    coins = [*pool(10_000), *pool(30_000, confirmed=False, prefix="u")]
    selection = select_coins(coins, 35_000, ONE_SAT_PER_BYTE)
    assert {coin.ref for coin in selection.coins} == {"c0", "u0"}
    with pytest.raises(InsufficientCoins) as refused:
        select_coins(coins, 50_000, ONE_SAT_PER_BYTE)
    assert refused.value.available_effective == 40_000 - 2 * 148  # both tiers counted


def test_the_random_draw_repeats_with_the_same_seed() -> None:
    rng = random.Random(7)
    coins = pool(*rng.sample(range(1_000, 1_000_000), 200))
    params = SelectionParams(1000, 10_000, algorithms=frozenset({"srd"}))
    first = select_coins(coins, 300_000, params, rng=random.Random(42))
    assert select_coins(coins, 300_000, params, rng=random.Random(42)) == first
    assert select_coins(coins, 300_000, params) == select_coins(coins, 300_000, params)
    draws = {values_of(select_coins(coins, 300_000, params, rng=random.Random(seed)))[0] for seed in range(5)}
    assert len(draws) > 1  # the seed does drive the draw


# --- the branch and bound is Core's search ------------------------------------------------------


def core_branch_and_bound(
    values: Sequence[int], wastes: Sequence[int], target: int, upper: int, tries: int
) -> list[int]:
    """Bitcoin Core's SelectCoinsBnB loop (2022), step for step, as a reference: indexes chosen."""
    available = sum(values)
    if available < target:
        return []
    cut_on_waste = wastes[0] > 0
    selected: list[int] = []
    best: list[int] = []
    best_waste: float = float("inf")
    value = waste = index = 0
    for _ in range(tries):
        if value + available < target or value > upper or (waste > best_waste and cut_on_waste):
            backtrack = True
        elif value >= target:
            if waste + value - target <= best_waste:
                best, best_waste = selected[:], waste + value - target
            backtrack = True
        else:
            backtrack = False
        if backtrack:
            if not selected:
                break
            index -= 1
            while index > selected[-1]:
                available += values[index]
                index -= 1
            value -= values[index]
            waste -= wastes[index]
            selected.pop()
        else:
            available -= values[index]
            equal_to_left_out = (
                selected
                and selected[-1] != index - 1
                and values[index] == values[index - 1]
                and wastes[index] == wastes[index - 1]
            )
            if not equal_to_left_out:
                selected.append(index)
                value += values[index]
                waste += wastes[index]
        index += 1
    return best


@settings(max_examples=400, deadline=None)
@given(
    values=st.lists(st.integers(1, 40).map(lambda v: v * 250), min_size=1, max_size=14),
    waste=st.sampled_from([-3000, 0, 5000]),
    target=st.integers(1, 12_000),
    window=st.integers(0, 1_500),
    tries=st.sampled_from([3, 10, 40, 200, 100_000]),
)
def test_branch_and_bound_visits_what_cores_does_within_the_same_budget(
    values: list[int], waste: int, target: int, window: int, tries: int
) -> None:
    values.sort(reverse=True)
    candidates = [cs._Candidate(v, waste, 148, v, i) for i, v in enumerate(values)]
    params = SelectionParams(1000, 1000, bnb_max_tries=tries)
    found = cs._branch_and_bound(candidates, target, target + window, params, None)
    expected = core_branch_and_bound(values, [waste] * len(values), target, target + window, tries)
    assert sorted(c.coin_index for c in found) == sorted(expected)


# --- invariants ----------------------------------------------------------------------------------

coin_lists = st.lists(
    st.tuples(
        st.one_of(st.integers(1, 2_000), st.integers(1, 200_000), st.integers(1, 5_000_000)),
        st.booleans(),
        st.sampled_from([None, None, None, 68, 148, 300]),
    ),
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(
    specs=coin_lists,
    amount=st.one_of(st.integers(1, 5_000), st.integers(1, 3_000_000)),
    rate=st.sampled_from([0, 1, 50, 500, 1000, 12_345, 100_000]),
    long_term=st.sampled_from([0, 1, 1000, 10_000]),
    min_change=st.sampled_from([1, 1, 546]),
    sffo=st.booleans(),
    max_inputs=st.sampled_from([1, 2, 3, 1000]),
    seed=st.integers(0, 3),
)
def test_every_selection_pays_exactly(
    specs: list[tuple[int, bool, int | None]],
    amount: int,
    rate: int,
    long_term: int,
    min_change: int,
    sffo: bool,
    max_inputs: int,
    seed: int,
) -> None:
    coins = [Coin(("tx", i), value, confirmed, size) for i, (value, confirmed, size) in enumerate(specs)]
    params = SelectionParams(
        rate, long_term, min_change_satoshis=min_change, subtract_fee_from_amount=sffo, max_inputs=max_inputs
    )
    outcome: Selection[tuple[str, int]] | InsufficientCoins | AmountBelowDust
    try:
        outcome = select_coins(coins, amount, params, rng=random.Random(seed))
    except (InsufficientCoins, AmountBelowDust) as refused:
        outcome = refused
    if isinstance(outcome, InsufficientCoins):
        # Refused only when even the best `max_inputs` coins worth spending cannot pay.
        worth = [(c.satoshis * 1000 - (c.input_size or 148) * rate, c.satoshis * 1000) for c in coins]
        brought = sorted((value if sffo else effective for effective, value in worth if effective > 0), reverse=True)
        needed = amount * 1000 if sffo else amount * 1000 + 44 * rate + (1000 if rate == 0 else 0)
        assert sum(brought[:max_inputs]) < needed
        assert outcome.required == -(-needed // 1000)
        assert outcome.available_effective == sum(brought[:max_inputs]) // 1000
        return
    if isinstance(outcome, AmountBelowDust):
        assert sffo
        assert amount - outcome.fee < min_change
        return
    selection = outcome

    refs = [coin.ref for coin in selection.coins]
    assert len(refs) == len(set(refs)), "a coin selected twice"
    assert len(refs) <= max_inputs
    assert set(selection.coins) <= set(coins)
    sizes = [coin.input_size or 148 for coin in selection.coins]
    assert selection.input_total == sum(coin.satoshis for coin in selection.coins)
    assert selection.input_total == selection.recipient_satoshis + selection.fee_satoshis + selection.change_satoshis
    assert selection.size_bytes == params.transaction_size(sizes, change=selection.has_change)
    size_fee = fee_for_size(selection.size_bytes, rate)
    assert selection.change_satoshis == 0 or selection.change_satoshis >= params.min_viable_change >= min_change
    if sffo:
        assert selection.recipient_satoshis == amount - size_fee >= min_change
        assert selection.change_satoshis in (0, selection.input_total - amount)
        assert selection.input_total >= amount
    else:
        assert selection.recipient_satoshis == amount
        assert selection.input_total >= amount + size_fee
        assert selection.change_satoshis in (0, selection.input_total - amount - size_fee)
    if selection.algorithm in {"bnb", "pair", "single"}:
        assert not selection.has_change, "the changeless searches look below the cost of change only"
    if selection.has_change:
        assert selection.fee_satoshis == size_fee
    else:
        # What went to the fee beyond the size's fee was too little to be worth a change output.
        with_change = fee_for_size(selection.size_bytes + params.change_output_size, rate)
        kept_by_change = selection.input_total - amount - (0 if sffo else with_change)
        assert kept_by_change < params.min_viable_change
    if not all(coin.confirmed for coin in selection.coins):
        confirmed = [coin for coin in coins if coin.confirmed]
        with pytest.raises((InsufficientCoins, AmountBelowDust)):
            select_coins(confirmed, amount, params)


# --- the window near the amount -------------------------------------------------------------------


def test_the_window_is_the_largest_coins_below_the_amount_and_the_smallest_from_it_up() -> None:
    values = list(range(0, 2_000_000, 1000))  # 2,000 coins
    window = values[near_window(values, 1_500_500)]
    assert len(window) == cs.NEAR_BELOW + cs.NEAR_ABOVE
    assert window[cs.NEAR_BELOW - 1] == 1_500_000 and window[cs.NEAR_BELOW] == 1_501_000
    assert values[near_window(values, 10**12)] == values[-cs.NEAR_BELOW :]


def test_select_near_looks_at_every_coin_when_those_near_cannot_pay() -> None:
    coins = pool(*([100] * (cs.NEAR_BELOW + 500)))
    params = SelectionParams(fee_rate_sat_per_kb=0, long_term_fee_rate_sat_per_kb=0, max_inputs=5_000)
    with pytest.raises(InsufficientCoins):
        select_coins(coins[near_window([c.satoshis for c in coins], 120_000)], 120_000, params)
    assert sum(c.satoshis for c in select_near(coins, 120_000, params).coins) >= 120_000


def test_select_near_prefers_confirmed_coins_outside_the_window() -> None:
    near_but_unconfirmed = pool(*([1_000] * cs.NEAR_ABOVE), confirmed=False, prefix="u")
    far_but_confirmed = pool(50_000, prefix="f")
    selection = select_near(near_but_unconfirmed + far_but_confirmed, 900, ONE_SAT_PER_BYTE)
    assert [c.ref for c in selection.coins] == ["f0"]
