"""Transaction sizes and fees in integer satoshis (rates are satoshis per 1000 bytes, rounded up)."""

from __future__ import annotations

# A P2PKH input with the largest DER signature (72 bytes + sighash byte) and a compressed key.
P2PKH_INPUT_BYTES = 148
P2PKH_OUTPUT_BYTES = 34
# version (4) + locktime (4) + the input and output counts (1 byte each below 253 items).
TX_OVERHEAD_BYTES = 10
# One publish: one P2PKH input, an OP_RETURN carrying about 200 bytes, and P2PKH change.
DEFAULT_PUBLISH_TX_BYTES = 400


def fee_for(size_bytes: int, rate_satoshis_per_kb: int) -> int:
    """At least 1 satoshi, rounded up."""
    return max(1, -(-size_bytes * rate_satoshis_per_kb // 1000))


def input_fee(rate_satoshis_per_kb: int) -> int:
    """What one P2PKH input adds to a fee at this rate (0 when the rate is 0)."""
    if rate_satoshis_per_kb <= 0:
        return 0
    return -(-P2PKH_INPUT_BYTES * rate_satoshis_per_kb // 1000)


def _varint_bytes(count: int) -> int:
    if count < 0xFD:
        return 1
    if count <= 0xFFFF:
        return 3
    return 5 if count <= 0xFFFFFFFF else 9


def p2pkh_tx_bytes(inputs: int, outputs: int) -> int:
    """Size of a transaction of P2PKH inputs and outputs, signatures counted at their maximum size."""
    return (
        8 + _varint_bytes(inputs) + _varint_bytes(outputs) + inputs * P2PKH_INPUT_BYTES + outputs * P2PKH_OUTPUT_BYTES
    )
