"""What the pool needs from the outside world, as protocols the composition root fills in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Protocol

from proofline_kit.wire import Outpoint
from services.utxo.domain.models import ChainComparison


class FeeRates(Protocol):
    async def satoshis_per_kb(self) -> int:
        """The fee rate to plan with now (policy rate or configured), satoshis per 1000 bytes."""
        ...


class MaintenanceHolderView(Protocol):
    async def holder(self) -> str:
        """Who holds the maintenance lease now; empty when nobody does."""
        ...


class ChainComparer(Protocol):
    async def compare(self, owner_key_ids: Sequence[str]) -> ChainComparison:
        """The pool's unspent outputs per address against the chain's; never raises for the chain."""
        ...


@dataclass(frozen=True, slots=True)
class KeyInfo:
    key_id: str
    address: str
    locking_script: bytes


class KeyDirectory(Protocol):
    async def key(self, key_id: str) -> KeyInfo:
        """The P2PKH address and locking script of a signer key (SIGNER_UNAVAILABLE when unreachable)."""
        ...


@dataclass(frozen=True, slots=True)
class SignedTx:
    raw: bytes
    txid: str


class TransactionSigner(Protocol):
    async def sign(
        self,
        request_id: str,
        unsigned_tx: bytes,
        spent: Sequence[tuple[int, bytes]],
        input_keys: Sequence[tuple[int, str]],
    ) -> SignedTx:
        """Signs in the signer's policy mode; POLICY_DENIED / SIGNER_UNAVAILABLE as DomainErrors."""
        ...


@dataclass(frozen=True, slots=True)
class ChainOutput:
    txid: str
    vout: int
    satoshis: int
    # None while unconfirmed.
    height: int | None
    spent_in_mempool: bool


class TxState(Enum):
    MINED = "mined"
    MEMPOOL = "mempool"
    UNKNOWN = "unknown"


class ChainReader(Protocol):
    """Lookups; each raises CHAIN_UNAVAILABLE (a DomainError) when the chain cannot be asked."""

    async def tip_height(self) -> int: ...

    async def unspent(self, address: str) -> list[ChainOutput]: ...

    async def tx_states(self, txids: Sequence[str]) -> dict[str, TxState]: ...

    async def spenders(self, outpoints: Sequence[Outpoint]) -> dict[Outpoint, str]:
        """The txid spending each outpoint, in the mempool or a block, for those the chain names a
        spender of (unspent or unknown outpoints are absent)."""
        ...


class BroadcastKind(Enum):
    ACCEPTED = "accepted"
    DOUBLE_SPEND = "double_spend"
    MISSING_INPUTS = "missing_inputs"
    REJECTED = "rejected"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class BroadcastResult:
    kind: BroadcastKind
    detail: str = ""
    competing_txids: tuple[str, ...] = ()


class TxBroadcaster(Protocol):
    async def broadcast(self, extended_tx: bytes) -> BroadcastResult:
        """Never raises for the network: an unreachable chain is UNAVAILABLE."""
        ...


@dataclass(frozen=True, slots=True)
class HeldLock:
    name: str
    # Strictly increasing per lock name: the fence for database writes made under the lock.
    token: int
    holder: str


class Locks(Protocol):
    async def acquire(self, name: str, ttl: timedelta) -> HeldLock | None:
        """None when someone else holds it."""
        ...

    async def renew(self, lock: HeldLock, ttl: timedelta) -> bool: ...

    async def release(self, lock: HeldLock) -> None: ...

    async def holder(self, name: str) -> str: ...


class FixedFeeRate:
    def __init__(self, satoshis_per_kb: int) -> None:
        self._rate = satoshis_per_kb

    async def satoshis_per_kb(self) -> int:
        return self._rate


class NobodyHolds:
    async def holder(self) -> str:
        return ""
