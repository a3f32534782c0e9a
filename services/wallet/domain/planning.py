"""How a send spends coins: coin selection under the chain's sizes and dust rule (pure)."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from proofline_kit.errors import DomainError, ErrorKind, FieldViolation
from services.wallet.domain.chains import ChainRules
from services.wallet.domain.coin_selection import (
    AmountBelowDust,
    Coin,
    InsufficientCoins,
    SelectionParams,
    select_coins,
)
from services.wallet.domain.ports import WalletCoin

# A selection looks at this many coins below the amount (the largest of them: the ones branch and
# bound and the pair search can combine into a changeless match) and above it (the smallest: the
# single coins that pay with the least change). Only when they cannot pay does it look at them all.
NEAR_BELOW = 64
NEAR_ABOVE = 32


@dataclass(frozen=True, slots=True)
class SendPlan:
    coins: tuple[WalletCoin, ...]
    fee_satoshis: int
    change_satoshis: int
    recipient_satoshis: int
    size_bytes: int

    @property
    def leaving(self) -> int:
        """What leaves the wallet's coins: the recipient's output and the fee."""
        return self.recipient_satoshis + self.fee_satoshis


def below_dust(dust: int) -> DomainError:
    description = f"the recipient would receive less than the dust limit ({dust} sat)"
    return DomainError(
        ErrorKind.INVALID_ARGUMENT,
        "AMOUNT_BELOW_DUST",
        f"amount_satoshis: {description}",
        metadata={"field": "amount_satoshis", "dustLimit": str(dust)},
        field_violations=(FieldViolation("amount_satoshis", description),),
    )


class Candidates:
    """Coins prepared for many selections: sorted by value once, so each selection takes the few
    near its amount (O(log n)), and coins a selection took leave at once (O(n) move, no re-sort).
    Ties in value are ordered by outpoint, so a selection over the same coins repeats."""

    def __init__(self, coins: Iterable[WalletCoin]) -> None:
        ordered = sorted(coins, key=_order)
        self._keys = [_order(c) for c in ordered]
        self._coins = ordered

    def __len__(self) -> int:
        return len(self._coins)

    def all(self) -> list[WalletCoin]:
        return list(self._coins)

    def near(self, satoshis: int) -> list[WalletCoin]:
        index = bisect.bisect_left(self._keys, (satoshis, "", -1))
        return self._coins[max(0, index - NEAR_BELOW) : index + NEAR_ABOVE]

    def take(self, coins: Iterable[WalletCoin]) -> None:
        """These coins are no longer candidates (leased, spent, or found taken)."""
        for coin in coins:
            key = _order(coin)
            index = bisect.bisect_left(self._keys, key)
            if index < len(self._keys) and self._keys[index] == key:
                del self._keys[index]
                del self._coins[index]


def _order(coin: WalletCoin) -> tuple[int, str, int]:
    return (coin.satoshis, coin.outpoint.txid, coin.outpoint.vout)


def plan_send(
    chain: ChainRules,
    candidates: Candidates,
    to_script: bytes,
    amount: int,
    rate_per_kb: int,
    long_term_rate_per_kb: int,
    subtract_fee: bool,
) -> SendPlan | None:
    """The coins and fee of a send now, or None when the candidates cannot pay it: a selection over
    the coins near the amount, else over all of them. Deterministic for the same candidates (the
    selection's random draw has a fixed seed), so EstimateFee and the Send that follows agree."""
    near = candidates.near(amount)
    plan = _select(chain, near, to_script, amount, rate_per_kb, long_term_rate_per_kb, subtract_fee)
    if plan is None and len(near) < len(candidates):
        plan = _select(chain, candidates.all(), to_script, amount, rate_per_kb, long_term_rate_per_kb, subtract_fee)
    return plan


def _select(
    chain: ChainRules,
    coins: Sequence[WalletCoin],
    to_script: bytes,
    amount: int,
    rate_per_kb: int,
    long_term_rate_per_kb: int,
    subtract_fee: bool,
) -> SendPlan | None:
    if not coins:
        return None
    sizes = chain.sizes
    params = SelectionParams(
        fee_rate_sat_per_kb=rate_per_kb,
        long_term_fee_rate_sat_per_kb=long_term_rate_per_kb,
        input_size=sizes.input,
        change_output_size=sizes.output,
        overhead_size=sizes.overhead,
        recipient_output_sizes=(sizes.output,),
        min_change_satoshis=chain.dust_limit(to_script),
        subtract_fee_from_amount=subtract_fee,
    )
    try:
        selection = select_coins([Coin(index, c.satoshis) for index, c in enumerate(coins)], amount, params)
    except InsufficientCoins:
        return None
    except AmountBelowDust:
        raise below_dust(chain.dust_limit(to_script)) from None
    if selection.recipient_satoshis < chain.dust_limit(to_script):
        raise below_dust(chain.dust_limit(to_script))
    return SendPlan(
        tuple(coins[c.ref] for c in selection.coins),
        selection.fee_satoshis,
        selection.change_satoshis,
        selection.recipient_satoshis,
        selection.size_bytes,
    )


def worst_case_fee(chain: ChainRules, inputs: int, rate_per_kb: int) -> int:
    """The fee of a send with `inputs` inputs and change, when no selection is possible yet."""
    return chain.fee(chain.sizes.transaction(inputs, 2), rate_per_kb)
