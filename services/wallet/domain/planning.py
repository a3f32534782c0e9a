"""How a send spends coins: coin selection under the chain's sizes and dust rule (pure)."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

from proofline_kit.errors import DomainError, ErrorKind, FieldViolation
from services.wallet.domain.chains import ChainRules
from services.wallet.domain.coin_selection import (
    AmountBelowDust,
    Coin,
    InsufficientCoins,
    Selection,
    SelectionParams,
    select_near,
)
from services.wallet.domain.ports import WalletCoin


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


class _Tier:
    """Some of the candidates, sorted by value (the order `select_near` reads)."""

    def __init__(self, ordered: list[tuple[int, WalletCoin]]) -> None:
        self.keys = [_order(c) for _, c in ordered]
        self.choices = [Coin(index, coin.satoshis) for index, coin in ordered]

    def remove(self, coin: WalletCoin) -> int | None:
        key = _order(coin)
        index = bisect.bisect_left(self.keys, key)
        if index < len(self.keys) and self.keys[index] == key:
            del self.keys[index]
            return self.choices.pop(index).ref
        return None


class Candidates:
    """Coins prepared for many selections: converted and sorted by value once (ties by outpoint, so
    a selection over the same coins repeats); coins a selection took leave at once (no re-sort).

    Mined coins are preferred, as Bitcoin Core's eligibility ladder does: a selection over them
    alone comes first, and the change of our own unmined transactions joins only when they cannot
    pay."""

    def __init__(self, coins: Iterable[WalletCoin]) -> None:
        ordered = list(enumerate(sorted(coins, key=_order)))
        self._coins = dict(ordered)
        everything = _Tier(ordered)
        mined = [(i, c) for i, c in ordered if c.unconfirmed_depth == 0]
        self._tiers = (everything,) if len(mined) == len(ordered) else (_Tier(mined), everything)

    def __len__(self) -> int:
        return len(self._coins)

    def all(self) -> list[WalletCoin]:
        return [self._coins[c.ref] for c in self._tiers[-1].choices]

    def take(self, coins: Iterable[WalletCoin]) -> None:
        """These coins are no longer candidates (leased, spent, or found taken)."""
        for coin in coins:
            # The last tier holds every candidate: its answer says whether the coin was one.
            ref = [tier.remove(coin) for tier in self._tiers][-1]
            if ref is not None:
                del self._coins[ref]

    def select(self, amount: int, params: SelectionParams) -> Selection[int]:
        """`select_near` over the mined coins, then over all (raises as `select_coins` does)."""
        *preferred, everything = self._tiers
        for tier in preferred:
            try:
                return select_near(tier.choices, amount, params)
            except InsufficientCoins:
                pass
        return select_near(everything.choices, amount, params)

    def coins_of(self, selection: Selection[int]) -> tuple[WalletCoin, ...]:
        return tuple(self._coins[c.ref] for c in selection.coins)


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
    """The coins and fee of a send now, or None when the candidates cannot pay it (a selection over
    the coins near the amount, `coin_selection.select_near`). Deterministic for the same candidates
    (the selection's random draw has a fixed seed), so EstimateFee and the Send that follows agree."""
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
        selection = candidates.select(amount, params)
    except InsufficientCoins:
        return None
    except AmountBelowDust:
        raise below_dust(chain.dust_limit(to_script)) from None
    if selection.recipient_satoshis < chain.dust_limit(to_script):
        raise below_dust(chain.dust_limit(to_script))
    return SendPlan(
        candidates.coins_of(selection),
        selection.fee_satoshis,
        selection.change_satoshis,
        selection.recipient_satoshis,
        selection.size_bytes,
    )


def worst_case_fee(chain: ChainRules, inputs: int, rate_per_kb: int) -> int:
    """The fee of a send with `inputs` inputs and change, when no selection is possible yet."""
    return chain.fee(chain.sizes.transaction(inputs, 2), rate_per_kb)
