"""The per-chain seam: what differs between BSV, BTC, BCH and DOGE sends.

Address codec, locking script, sighash flavour, fee unit, dust rule and confirmation defaults live
here and nowhere else; the wallet's use cases ask a ChainRules and never look at bytes themselves.
A chain is added as one module implementing this Protocol plus its tests (bsv-sdk is BSV-only by
licence: another chain's module must not use it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from proofline_kit.wire import Outpoint, TxOutput
from services.wallet.domain.models import Network


@dataclass(frozen=True, slots=True)
class TxSizes:
    """Bytes of a signed transaction's parts, signatures at their maximum size."""

    input: int
    output: int
    overhead: int

    def transaction(self, inputs: int, outputs: int) -> int:
        return self.overhead + inputs * self.input + outputs * self.output


class ChainRules(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def sizes(self) -> TxSizes: ...

    @property
    def sighash_flavour(self) -> str:
        """What the signer must compute (BSV: SIGHASH_ALL|FORKID over the spent outputs)."""
        ...

    @property
    def coinbase_maturity(self) -> int:
        """Blocks after its own before a coinbase output may be spent."""
        ...

    @property
    def default_deposit_confirmations(self) -> int: ...

    @property
    def default_send_confirmations(self) -> int: ...

    def locking_script_for(self, address: str, network: Network) -> bytes:
        """The script paying `address`; ADDRESS_INVALID (not an address of this chain, bad checksum)
        or ADDRESS_WRONG_NETWORK (valid, for another network)."""
        ...

    def address_of(self, locking_script: bytes, network: Network) -> str | None:
        """The address a standard locking script pays, or None."""
        ...

    def dust_limit(self, locking_script: bytes) -> int:
        """The smallest value an output paying `locking_script` may carry."""
        ...

    def fee(self, size_bytes: int, rate_satoshis_per_kb: int) -> int:
        """The fee of a transaction of `size_bytes` at a rate per 1000 bytes: rounded up, at least 1."""
        ...

    def unsigned_transaction(self, inputs: Sequence[Outpoint], outputs: Sequence[TxOutput]) -> bytes:
        """The raw transaction with empty input scripts, as the signer's policy mode takes it."""
        ...
