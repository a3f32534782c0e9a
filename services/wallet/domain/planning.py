"""How a send spends coins: coin selection under the chain's sizes and dust rule (pure)."""

from __future__ import annotations

from collections.abc import Sequence
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


def plan_send(
    chain: ChainRules,
    candidates: Sequence[WalletCoin],
    to_script: bytes,
    amount: int,
    rate_per_kb: int,
    long_term_rate_per_kb: int,
    subtract_fee: bool,
) -> SendPlan | None:
    """The coins and fee of a send now, or None when the candidates cannot pay it. Deterministic for
    the same candidates (sorted by outpoint; the selection's random draw has a fixed seed), so
    EstimateFee and the Send that follows agree."""
    ordered = sorted(candidates, key=lambda c: c.outpoint)
    by_ref = {str(c.outpoint): c for c in ordered}
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
        selection = select_coins([Coin(str(c.outpoint), c.satoshis) for c in ordered], amount, params)
    except InsufficientCoins:
        return None
    except AmountBelowDust:
        raise below_dust(chain.dust_limit(to_script)) from None
    if selection.recipient_satoshis < chain.dust_limit(to_script):
        raise below_dust(chain.dust_limit(to_script))
    return SendPlan(
        tuple(by_ref[str(c.ref)] for c in selection.coins),
        selection.fee_satoshis,
        selection.change_satoshis,
        selection.recipient_satoshis,
        selection.size_bytes,
    )


def worst_case_fee(chain: ChainRules, inputs: int, rate_per_kb: int) -> int:
    """The fee of a send with `inputs` inputs and change, when no selection is possible yet."""
    return chain.fee(chain.sizes.transaction(inputs, 2), rate_per_kb)
