"""Building unsigned transactions and checking signed ones with bsv-sdk's interpreter."""

from __future__ import annotations

import os

from bsv import P2PKH, OpReturn, Script, Transaction, TransactionInput, TransactionOutput
from bsv.hash import hash160
from bsv.script import Spend


def p2pkh_script(public_key: bytes) -> bytes:
    return bytes(P2PKH().lock(hash160(public_key)).serialize())


def address_script(address: str) -> bytes:
    return bytes(P2PKH().lock(address).serialize())


def data_script(*pushes: bytes) -> bytes:
    return bytes(OpReturn().lock(list(pushes)).serialize())


def unsigned_transaction(spent: list[tuple[int, bytes]], outputs: list[tuple[int, bytes]]) -> bytes:
    """An unsigned transaction spending made-up outpoints with the given (satoshis, script)."""
    inputs = []
    for index, _ in enumerate(spent):
        tx_input = TransactionInput(source_txid=os.urandom(32).hex(), source_output_index=index)
        tx_input.unlocking_script = Script(b"")
        inputs.append(tx_input)
    tx = Transaction(inputs, [TransactionOutput(Script(script), sats) for sats, script in outputs])
    return bytes(tx.serialize())


def interpreter_accepts(raw_tx: bytes, spent: list[tuple[int, bytes]], indexes: list[int] | None = None) -> bool:
    """Run bsv-sdk's script interpreter on the given inputs (all by default); raises on failure."""
    tx = Transaction.from_hex(raw_tx)
    assert tx is not None
    for tx_input, (sats, script) in zip(tx.inputs, spent, strict=True):
        tx_input.satoshis = sats
        tx_input.locking_script = Script(script)
    for i in indexes if indexes is not None else range(len(tx.inputs)):
        tx_input = tx.inputs[i]
        Spend(
            {
                "sourceTXID": tx_input.source_txid,
                "sourceOutputIndex": tx_input.source_output_index,
                "sourceSatoshis": tx_input.satoshis,
                "lockingScript": tx_input.locking_script,
                "transactionVersion": tx.version,
                "otherInputs": [x for j, x in enumerate(tx.inputs) if j != i],
                "outputs": tx.outputs,
                "inputIndex": i,
                "unlockingScript": tx_input.unlocking_script,
                "inputSequence": tx_input.sequence,
                "lockTime": tx.locktime,
            }
        ).validate()
    return True
