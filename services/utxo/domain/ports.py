"""What the pool needs from the outside world, as protocols the composition root fills in."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Protocol

from proofline_kit.wire import Outpoint
from services.utxo.domain.models import (
    Bucket,
    ChainComparison,
    InputState,
    LeaseCounts,
    LeaseHistory,
    LeaseRow,
    MaintenanceRow,
    OutpointOwner,
    PublishFigures,
    Purpose,
    Strategy,
    TrackedOutput,
    Utxo,
    UtxoFilter,
    UtxoStatus,
)


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


class UnitOfWork(Protocol):
    """One database transaction of the pool: the statements the use cases run (store/ holds the SQL)."""

    async def now(self) -> datetime: ...

    # answers

    async def find_answer(self, caller_id: str, method: str, request_id: str, fingerprint: bytes) -> bytes | None: ...

    async def record_answer(
        self, caller_id: str, method: str, request_id: str, fingerprint: bytes, answer: bytes
    ) -> None: ...

    # leases

    async def insert_lease(
        self, lease_id: str, caller_id: str, holder: str, purpose: Purpose, strategy: Strategy, duration: timedelta
    ) -> LeaseRow: ...

    async def insert_lease_and_claim(
        self,
        lease_id: str,
        caller_id: str,
        holder: str,
        purpose: Purpose,
        strategy: Strategy,
        duration: timedelta,
        owner_key_id: str,
        min_satoshis: int,
        limit: int,
        max_depth: int = 0,
    ) -> tuple[LeaseRow, list[Utxo]]: ...

    async def lease_by_id(self, lease_id: str, *, for_update: bool = False) -> LeaseRow | None: ...

    async def set_lease_expiry(self, fencing_token: int, duration: timedelta) -> LeaseRow: ...

    async def claim_count(
        self,
        lease: LeaseRow,
        owner_key_id: str,
        min_satoshis: int,
        limit: int,
        max_depth: int = 0,
    ) -> list[Utxo]: ...

    async def lock_candidates(
        self,
        lease: LeaseRow,
        owner_key_id: str,
        min_satoshis: int,
        limit: int,
        exclude: Sequence[int],
        max_depth: int = 0,
    ) -> list[tuple[int, int]]: ...

    async def reserve_rows(self, lease: LeaseRow, row_ids: Sequence[int]) -> list[Utxo]: ...

    async def lock_request(self, caller_id: str, method: str, request_id: str) -> None: ...

    async def lock_rows_nowait(self, row_ids: Sequence[int]) -> int | None: ...

    async def leasable_rows(self, row_ids: Sequence[int], max_depth: int = 0) -> set[int]: ...

    async def reserve_exact(self, lease: LeaseRow, row_ids: Sequence[int]) -> list[Utxo]: ...

    async def leasable_summary(
        self, purpose: Purpose, owner_key_id: str, min_satoshis: int, max_depth: int = 0
    ) -> tuple[int, int]: ...

    async def reap_expired(self, purpose: Purpose | None, limit: int) -> tuple[int, int]: ...

    async def carrying(self, lease: LeaseRow, *, lock: bool = False) -> list[Utxo]: ...

    async def lease_history(self, fencing_token: int) -> LeaseHistory: ...

    async def renew_rows(self, lease: LeaseRow, caller_id: str) -> None: ...

    async def release(self, fencing_token: int, row_ids: Sequence[int] | None, caller_id: str) -> list[Outpoint]: ...

    # outpoints

    async def lock_outpoints(self, outpoints: Sequence[Outpoint]) -> dict[Outpoint, Utxo]: ...

    async def outpoints(self, outpoints: Sequence[Outpoint]) -> dict[Outpoint, Utxo]: ...

    async def outpoint_owners(self, outpoints: Sequence[Outpoint]) -> dict[Outpoint, OutpointOwner]: ...

    async def insert_outputs(self, outputs: Sequence[TrackedOutput], caller_id: str, reason: str) -> list[Utxo]: ...

    async def list_utxos(
        self, filters: UtxoFilter, fencing_token: int | None, after_id: int, limit: int
    ) -> list[Utxo]: ...

    async def peek_available(
        self, purpose: Purpose, owner_key_id: str, strategy: Strategy, min_satoshis: int, limit: int
    ) -> list[Utxo]: ...

    # spends

    async def spend_carried(
        self,
        inputs: Sequence[tuple[Outpoint, str]],
        fencing_token: int | None,
        caller_id: str,
        lease: LeaseRow | None = None,
    ) -> tuple[dict[Outpoint, Utxo], dict[Outpoint, InputState], list[Utxo]]: ...

    # conflicts

    async def mark_dirty(
        self,
        rows: Sequence[Utxo],
        reason: str,
        spending_txid: str,
        competing_txids: Sequence[str],
        detail: str,
        fencing_token: int | None,
        caller_id: str,
    ) -> list[Utxo]: ...

    async def invalidate_dead_outputs(
        self, txid: str, reason: str, dirty_reason: str, caller_id: str
    ) -> tuple[list[Utxo], list[Utxo]]:
        """(outputs of `txid` and of its descendants made INVALID, descendants' other inputs made DIRTY)."""
        ...

    # acceptance

    async def accept_spends(self, txids: Sequence[str], max_depth: int, caller_id: str) -> tuple[list[Utxo], set[str]]:
        """(outputs made AVAILABLE, txids alive as committed spends) for ReportAccepted."""
        ...

    # chain sync

    async def known_owner_keys(self) -> list[str]: ...

    async def latest_purposes(self, owner_key_ids: Sequence[str]) -> dict[str, Purpose]: ...

    async def unspent_of(self, owner_key_ids: Sequence[str]) -> list[Utxo]: ...

    async def insert_found(
        self, outputs: Sequence[TrackedOutput], statuses: Sequence[UtxoStatus], heights: Sequence[int | None]
    ) -> int: ...

    async def apply_chain_changes(
        self,
        row_ids: Sequence[int],
        from_statuses: Sequence[UtxoStatus],
        to_statuses: Sequence[UtxoStatus],
        reasons: Sequence[str],
        heights: Sequence[int | None],
        spent_by: Sequence[str],
    ) -> int: ...

    async def missing_since(self, row_ids: Sequence[int]) -> dict[int, datetime]: ...

    async def mark_missing(self, missing: Sequence[int], seen: Sequence[int]) -> None: ...

    async def set_tip(self, height: int) -> None: ...

    # health

    async def buckets(self, owner_key_id: str, purpose: Purpose | None) -> list[Bucket]: ...

    async def lease_counts(self, owner_key_id: str, purpose: Purpose | None) -> LeaseCounts: ...

    async def publish_figures(self, owner_key_id: str, min_satoshis: int) -> PublishFigures: ...

    async def count_available(self, purpose: Purpose, owner_key_id: str) -> int: ...

    # maintenance

    async def maintenance_rows(self) -> dict[str, MaintenanceRow]: ...

    async def claim_fence(self, action: str, fence: int) -> bool: ...

    async def record_run(
        self, action: str, fence: int | None, outcome: str, cooldown: timedelta | None = None
    ) -> datetime | None: ...

    async def save_maintenance_tx(self, txid: str, action: str, extended_tx: bytes) -> None: ...

    async def pending_maintenance_txs(self, limit: int) -> list[tuple[str, bytes, list[Outpoint]]]: ...

    async def set_maintenance_tx_state(self, txid: str, state: str, detail: str) -> None: ...

    # retention

    async def retention_cutoff(self, retention: timedelta) -> datetime: ...

    async def prune_outpoints(self, cutoff: datetime, limit: int) -> int: ...

    async def prune_leases(self, cutoff: datetime, limit: int) -> int: ...

    async def last_event_before(self, cutoff: datetime) -> int | None: ...

    async def prune_orphan_events(self, after_id: int, up_to_id: int, limit: int) -> tuple[int, int | None]: ...


class Store(Protocol):
    def unit_of_work(self) -> AbstractAsyncContextManager[UnitOfWork]:
        """One read-write transaction."""
        ...

    def snapshot(self) -> AbstractAsyncContextManager[UnitOfWork]:
        """Several reads from one snapshot."""
        ...

    async def next_fence(self) -> int: ...

    async def ping(self) -> None: ...


class FixedFeeRate:
    def __init__(self, satoshis_per_kb: int) -> None:
        self._rate = satoshis_per_kb

    async def satoshis_per_kb(self) -> int:
        return self._rate


class NobodyHolds:
    async def holder(self) -> str:
        return ""
