"""Wallet-side helpers for the contract tests: keys, coins and real signed transactions (bsv-sdk)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bsv import P2PKH, OpReturn, PrivateKey, Script, Transaction, TransactionInput, TransactionOutput
from bsv.constants import Network

from proofline_kit.chain import PreparedTx


@dataclass(frozen=True)
class Key:
    secret: int

    @property
    def priv(self) -> Any:
        return PrivateKey(self.secret)

    @property
    def address(self) -> str:
        return str(self.priv.address(network=Network.TESTNET))

    @property
    def lock(self) -> bytes:
        return bytes(P2PKH().lock(self.address).serialize())


@dataclass(frozen=True)
class Coin:
    """A spendable output; its parent's raw hex travels along so we can build Extended Format."""

    txid: str
    vout: int
    satoshis: int
    key: Key
    parent_hex: str


def op_return(data: bytes) -> bytes:
    return bytes(OpReturn().lock([data]).serialize())


def build(coins: Sequence[Coin], outputs: Sequence[tuple[int, bytes]], *, signer: Key | None = None) -> PreparedTx:
    """A signed EF transaction spending ``coins`` to ``outputs`` (fee = inputs - outputs)."""
    inputs = []
    for coin in coins:
        key = signer or coin.key
        inputs.append(
            TransactionInput(
                source_transaction=Transaction.from_hex(coin.parent_hex),
                source_txid=coin.txid,
                source_output_index=coin.vout,
                unlocking_script_template=P2PKH().unlock(key.priv),
            )
        )
    tx = Transaction(inputs, [TransactionOutput(Script(script), value) for value, script in outputs])
    tx.sign()
    prepared = PreparedTx.from_bytes(bytes(tx.to_ef()))
    assert prepared.txid == tx.txid()
    return prepared


def pay(
    coin: Coin, to: Key | None = None, *, fee: int = 1, data: bytes | None = None, signer: Key | None = None
) -> PreparedTx:
    """Spend one coin: an optional 0-sat OP_RETURN, then everything minus ``fee`` to ``to``."""
    outputs: list[tuple[int, bytes]] = []
    if data is not None:
        outputs.append((0, op_return(data)))
    outputs.append((coin.satoshis - fee, (to or coin.key).lock))
    return build([coin], outputs, signer=signer)


def coins_of(tx: PreparedTx, key: Key) -> list[Coin]:
    """The outputs of ``tx`` locked to ``key`` (so chains of unconfirmed txs can be built)."""
    parsed = Transaction.from_hex(tx.raw.hex())
    return [
        Coin(tx.txid, i, int(out.satoshis), key, tx.raw.hex())
        for i, out in enumerate(parsed.outputs)
        if bytes(out.locking_script.serialize()) == key.lock
    ]
