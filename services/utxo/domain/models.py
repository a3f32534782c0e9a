"""What the UTXO pool works with."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from proofline_kit.wire import Outpoint

KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
TXID_PATTERN = re.compile(r"^[0-9a-f]{64}$")


class UtxoStatus(Enum):
    UNCONFIRMED = "unconfirmed"
    AVAILABLE = "available"
    RESERVED = "reserved"
    SPENT = "spent"
    DIRTY = "dirty"
    INVALID = "invalid"


# Statuses in which an outpoint is still unspent as far as the pool knows.
UNSPENT_STATUSES = (UtxoStatus.UNCONFIRMED, UtxoStatus.AVAILABLE, UtxoStatus.RESERVED, UtxoStatus.DIRTY)


class Purpose(Enum):
    PUBLISH = "publish"
    FUNDING = "funding"
    CHANGE = "change"
    WALLET = "wallet"


class Strategy(Enum):
    SMALLEST_FIRST = "smallest_first"
    LARGEST_FIRST = "largest_first"


class LeaseState(Enum):
    LIVE = "live"
    EXPIRED = "expired"
    CLOSED = "closed"


class ConflictKind(Enum):
    DOUBLE_SPEND = "DOUBLE_SPEND"
    MISSING_INPUTS = "MISSING_INPUTS"
    REJECTED = "REJECTED"


@dataclass(frozen=True, slots=True)
class Utxo:
    # Internal: the row id (creation order) and the token of the last lease that reserved it.
    row_id: int
    fencing_token: int | None
    outpoint: Outpoint
    satoshis: int
    locking_script: bytes
    owner_key_id: str
    purpose: Purpose
    status: UtxoStatus
    block_height: int
    confirmations: int
    lease_id: str
    lease_expires_at: datetime | None
    spent_by_txid: str
    competing_txids: tuple[str, ...]
    status_reason: str
    created_at: datetime
    updated_at: datetime
    # 0: held on chain evidence; n >= 1: an output of our own accepted, unmined transaction, at the
    # end of an unmined chain of n of them (ReportAccepted).
    unconfirmed_depth: int = 0


@dataclass(frozen=True, slots=True)
class Lease:
    lease_id: str
    fencing_token: int
    state: LeaseState
    holder: str
    caller_id: str
    created_at: datetime
    expires_at: datetime
    utxos: tuple[Utxo, ...]

    @property
    def total_satoshis(self) -> int:
        return sum(u.satoshis for u in self.utxos)


@dataclass(frozen=True, slots=True)
class LeaseRequest:
    # None = not given (refused by validation).
    purpose: Purpose | None
    owner_key_id: str = ""
    count: int | None = None
    target_satoshis: int | None = None
    # Exactly these outpoints (the caller's own coin selection), in the caller's order.
    outpoints: tuple[Outpoint, ...] | None = None
    strategy: Strategy | None = None
    # None = the configured default.
    duration: timedelta | None = None
    allow_partial: bool = False
    min_satoshis: int = 0
    fee_rate_satoshis_per_kb: int = 0
    max_count: int = 0
    holder: str = ""
    # Lease only coins of at most this unconfirmed_depth (0: coins held on chain evidence only).
    max_unconfirmed_depth: int = 0


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """An output a caller asks the pool to track (a Spend's change, or an AddOutputs item)."""

    outpoint: Outpoint
    satoshis: int
    locking_script: bytes
    owner_key_id: str
    purpose: Purpose | None


@dataclass(frozen=True, slots=True)
class TrackedOutput:
    """A validated OutputSpec."""

    outpoint: Outpoint
    satoshis: int
    locking_script: bytes
    owner_key_id: str
    purpose: Purpose


@dataclass(frozen=True, slots=True)
class Spend:
    txid: str
    inputs: tuple[Outpoint, ...]
    outputs: tuple[OutputSpec, ...]


@dataclass(frozen=True, slots=True)
class CommitResult:
    spent: tuple[Utxo, ...]
    added: tuple[Utxo, ...]
    released: tuple[Outpoint, ...]
    lease: Lease


@dataclass(frozen=True, slots=True)
class ReleaseResult:
    released: tuple[Outpoint, ...]
    lease: Lease


@dataclass(frozen=True, slots=True)
class ConflictReport:
    outpoints: tuple[Outpoint, ...]
    kind: ConflictKind
    lease_id: str = ""
    fencing_token: int = 0
    spending_txid: str = ""
    competing_txids: tuple[str, ...] = ()
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ConflictResult:
    dirty: tuple[Utxo, ...]
    invalidated: tuple[Utxo, ...]
    # The dead descendants of the reported spending_txid (pool transactions that spent its outputs,
    # at any depth), in the order their first invalidated input was created.
    invalidated_txids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AcceptedResult:
    """ReportAccepted: the outputs it made AVAILABLE, and the txids that changed nothing."""

    available: tuple[Utxo, ...]
    skipped_txids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UtxoFilter:
    owner_key_id: str = ""
    purpose: Purpose | None = None
    statuses: tuple[UtxoStatus, ...] = ()
    lease_id: str = ""
    txid: str = ""
    min_satoshis: int = 0
    max_satoshis: int = 0


@dataclass(frozen=True, slots=True)
class UtxoPage:
    utxos: tuple[Utxo, ...]
    next_page_token: str = ""


# The largest figure an int64 proto field carries, and the longest google.protobuf.Duration.
INT64_MAX = 2**63 - 1
MAX_DURATION = timedelta(days=3_652_500)


def saturated(value: int) -> int:
    """An aggregate of satoshis as the health figures carry it: exact up to 2^63 - 1, that bound
    above. Only a pool of coins that cannot all be real gets there (migration 0005)."""
    return min(value, INT64_MAX)


@dataclass(frozen=True, slots=True)
class Bucket:
    purpose: Purpose
    status: UtxoStatus
    count: int
    satoshis: int


@dataclass(frozen=True, slots=True)
class LeaseStats:
    live_leases: int
    live_reserved_utxos: int
    expired_leases: int
    expired_reserved_utxos: int
    oldest_live_lease_created_at: datetime | None


@dataclass(frozen=True, slots=True)
class Runway:
    fee_rate_satoshis_per_kb: int
    publish_tx_size_bytes: int
    publish_fee_satoshis: int
    ready_publishes: int
    funded_publishes: int
    funded_publishes_with_funding: int
    spends_last_hour: int
    estimated_remaining: timedelta | None


@dataclass(frozen=True, slots=True)
class MaintenanceStatus:
    low_water_utxos: int
    below_low_water: bool
    last_sync_at: datetime | None
    last_split_at: datetime | None
    last_sweep_at: datetime | None
    split_cooldown_until: datetime | None
    holder: str


class ComparisonState(Enum):
    NOT_REQUESTED = "not_requested"
    OK = "ok"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class AddressComparison:
    owner_key_id: str
    address: str
    chain_utxos: int
    chain_satoshis: int
    pool_utxos: int
    pool_satoshis: int
    only_on_chain: int
    only_in_pool: int


@dataclass(frozen=True, slots=True)
class ChainComparison:
    state: ComparisonState
    tip_height: int = 0
    addresses: tuple[AddressComparison, ...] = ()
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PoolHealth:
    observed_at: datetime
    buckets: tuple[Bucket, ...]
    leases: LeaseStats
    runway: Runway
    maintenance: MaintenanceStatus
    chain: ChainComparison = field(default_factory=lambda: ChainComparison(ComparisonState.NOT_REQUESTED))


@dataclass(frozen=True, slots=True)
class ReapResult:
    leases: int
    utxos: int


@dataclass(frozen=True, slots=True)
class PruneResult:
    """Rows a retention pass deleted; `complete` is False when it stopped at its time budget."""

    utxos: int = 0
    events: int = 0
    leases: int = 0
    complete: bool = True

    @property
    def rows(self) -> int:
        return self.utxos + self.events + self.leases


# --- maintenance ---------------------------------------------------------------------------------


class MaintenanceAction(Enum):
    SYNC = "sync"
    SWEEP = "sweep"
    SPLIT = "split"
    REAP_LEASES = "reap_leases"
    PASS = "pass"


class MaintenanceOutcome(Enum):
    DONE = "done"
    NOTHING_TO_DO = "nothing_to_do"
    SKIPPED_COOLDOWN = "skipped_cooldown"


class BroadcastOutcome(Enum):
    NOT_BROADCAST = "not_broadcast"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class PlannedOutput:
    vout: int
    satoshis: int
    address: str
    locking_script: bytes
    # Set when the output goes to the pool.
    owner_key_id: str = ""
    purpose: Purpose | None = None


@dataclass(frozen=True, slots=True)
class MaintenanceTx:
    inputs: tuple[Utxo, ...]
    outputs: tuple[PlannedOutput, ...]
    fee_satoshis: int
    fee_rate_satoshis_per_kb: int
    size_bytes: int
    txid: str = ""
    outcome: BroadcastOutcome = BroadcastOutcome.NOT_BROADCAST
    detail: str = ""
    attempts: int = 0

    @property
    def input_satoshis(self) -> int:
        return sum(u.satoshis for u in self.inputs)

    @property
    def output_satoshis(self) -> int:
        return sum(o.satoshis for o in self.outputs)


@dataclass(frozen=True, slots=True)
class UtxoChange:
    outpoint: Outpoint
    satoshis: int
    from_status: UtxoStatus | None
    to_status: UtxoStatus
    reason: str


@dataclass(frozen=True, slots=True)
class SyncSummary:
    added: int = 0
    confirmed: int = 0
    marked_spent: int = 0
    dirty_to_available: int = 0
    dirty_to_spent: int = 0
    invalidated: int = 0
    unchanged: int = 0
    tip_height: int = 0
    changes: tuple[UtxoChange, ...] = ()
    changes_truncated: bool = False


@dataclass(frozen=True, slots=True)
class MaintenanceResult:
    action: MaintenanceAction
    outcome: MaintenanceOutcome
    dry_run: bool
    transactions: tuple[MaintenanceTx, ...] = ()
    sync: SyncSummary | None = None
    reaped_leases: int = 0
    reaped_utxos: int = 0
    next_allowed_at: datetime | None = None
    detail: str = ""

    @property
    def total_fee_satoshis(self) -> int:
        return sum(t.fee_satoshis for t in self.transactions)


@dataclass(frozen=True, slots=True)
class SplitRequest:
    funding_key_id: str = ""
    output_key_id: str = ""
    output_count: int = 0
    output_satoshis: int = 0
    fee_rate_satoshis_per_kb: int = 0
    ignore_cooldown: bool = False


@dataclass(frozen=True, slots=True)
class SweepRequest:
    change_address: str = ""
    change_key_id: str = ""
    destination_address: str = ""
    max_inputs_per_transaction: int = 0
    max_transactions: int = 0
    fee_rate_satoshis_per_kb: int = 0


# --- rows the use cases read from the store --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeaseRow:
    fencing_token: int
    lease_id: str
    caller_id: str
    holder: str
    purpose: Purpose
    strategy: Strategy
    created_at: datetime
    expires_at: datetime
    db_now: datetime


@dataclass(frozen=True, slots=True)
class OutpointOwner:
    """Whose an outpoint is: its row, its purpose and its owner key (neither ever changes)."""

    row_id: int
    purpose: Purpose
    owner_key_id: str


@dataclass(frozen=True, slots=True)
class InputState:
    row_id: int
    status: UtxoStatus
    fencing_token: int | None
    spent_by_txid: str


@dataclass(frozen=True, slots=True)
class LeaseHistory:
    """Row ids a lease was granted, and those it gave up itself (released, committed, reported)."""

    granted: frozenset[int]
    given_up: frozenset[int]


@dataclass(frozen=True, slots=True)
class LeaseCounts:
    live_leases: int
    live_utxos: int
    expired_leases: int
    expired_utxos: int
    oldest_live_created_at: datetime | None


@dataclass(frozen=True, slots=True)
class PublishFigures:
    ready: int
    publish_satoshis: int
    funding_satoshis: int
    spends_last_hour: int


@dataclass(frozen=True, slots=True)
class MaintenanceRow:
    action: str
    last_run_at: datetime | None
    last_outcome: str
    cooldown_until: datetime | None
    fence: int


def in_strategy_order(strategy: Strategy, utxos: Sequence[Utxo]) -> list[Utxo]:
    """The order the store's lease queries give in SQL: shallower coins first, then the strategy's."""
    if strategy is Strategy.SMALLEST_FIRST:
        return sorted(utxos, key=lambda u: (u.unconfirmed_depth, u.satoshis, u.row_id))
    return sorted(utxos, key=lambda u: (u.unconfirmed_depth, -u.satoshis, u.row_id))
