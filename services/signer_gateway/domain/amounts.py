"""The amounts a transaction may carry: every value, and every sum, within the satoshis that can exist.

Checked before anything is signed, so that every amount an answer holds (fee, amount sent) is
between 0 and MAX_SATOSHIS and fits the answer's int64 fields."""

from __future__ import annotations

from collections.abc import Sequence

from proofline_kit.errors import DomainError, ErrorKind, invalid_argument
from proofline_kit.wire import MAX_SATOSHIS
from services.signer_gateway.domain.models import SpentOutput
from services.signer_gateway.domain.transactions import ParsedOutput

WITHIN_SUPPLY = f"must be between 0 and {MAX_SATOSHIS:,} satoshis (the 21M coin supply)"


def checked_fee(spent: Sequence[SpentOutput], outputs: Sequence[ParsedOutput]) -> int:
    """The fee (spent outputs minus outputs) of a transaction whose amounts are all possible."""
    total_in = _spent_total(spent)
    total_out = _output_total(outputs)
    fee = total_in - total_out
    if fee < 0:
        raise DomainError(
            ErrorKind.INVALID_ARGUMENT,
            "NEGATIVE_FEE",
            f"outputs ({total_out} sat) exceed the spent outputs ({total_in} sat)",
            metadata={"inputSatoshis": str(total_in), "outputSatoshis": str(total_out)},
        )
    return fee


def _spent_total(spent: Sequence[SpentOutput]) -> int:
    for index, output in enumerate(spent):
        if not 0 <= output.satoshis <= MAX_SATOSHIS:
            raise invalid_argument("AMOUNT_INVALID", f"spent_outputs[{index}].satoshis", WITHIN_SUPPLY)
    total = sum(p.satoshis for p in spent)
    if total > MAX_SATOSHIS:
        raise invalid_argument("AMOUNT_INVALID", "spent_outputs", f"the sum of satoshis {WITHIN_SUPPLY}")
    return total


def _output_total(outputs: Sequence[ParsedOutput]) -> int:
    for index, output in enumerate(outputs):
        if not 0 <= output.satoshis <= MAX_SATOSHIS:
            raise invalid_argument("TRANSACTION_MALFORMED", "unsigned_tx", f"output {index}'s value {WITHIN_SUPPLY}")
    total = sum(o.satoshis for o in outputs)
    if total > MAX_SATOSHIS:
        raise invalid_argument("TRANSACTION_MALFORMED", "unsigned_tx", f"the sum of the output values {WITHIN_SUPPLY}")
    return total
