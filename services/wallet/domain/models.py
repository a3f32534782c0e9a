"""What the wallet works with: accounts, addresses, balances, wallet transactions and their FSM."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Generic, TypeVar

from proofline_kit.wire import Outpoint


class Network(Enum):
    MAINNET = "mainnet"
    TESTNET = "testnet"
    REGTEST = "regtest"


class TxStatus(Enum):
    PENDING = "pending"
    SENDING = "sending"
    UNCONFIRMED = "unconfirmed"
    CONFIRMED = "confirmed"
    REORGING = "reorging"
    FAILED = "failed"


class Direction(Enum):
    INCOMING = "incoming"
    OUTGOING = "outgoing"


# The one FSM of wallet transactions (wallet.proto, TransactionStatus). The migration's
# tx_transitions table holds the same edges and the database refuses any other move.
# SENDING -> PENDING: the signed transaction proved dead before the network accepted it; a new one
# is built from other coins (the reservation stays).
# UNCONFIRMED -> PENDING: the accepted transaction spent our own unconfirmed change and an ancestor
# proved dead, so it can never be mined; built again from other coins (what it took reserved again).
TRANSITIONS: frozenset[tuple[TxStatus, TxStatus]] = frozenset(
    {
        (TxStatus.PENDING, TxStatus.SENDING),
        (TxStatus.PENDING, TxStatus.FAILED),
        (TxStatus.SENDING, TxStatus.UNCONFIRMED),
        (TxStatus.SENDING, TxStatus.PENDING),
        (TxStatus.SENDING, TxStatus.FAILED),
        (TxStatus.UNCONFIRMED, TxStatus.CONFIRMED),
        (TxStatus.UNCONFIRMED, TxStatus.FAILED),
        (TxStatus.UNCONFIRMED, TxStatus.PENDING),
        (TxStatus.CONFIRMED, TxStatus.REORGING),
        (TxStatus.REORGING, TxStatus.UNCONFIRMED),
        (TxStatus.REORGING, TxStatus.CONFIRMED),
    }
)

# Order for `wait_for`; FAILED ends every wait, REORGING is not a wait target.
_PROGRESS = {
    TxStatus.PENDING: 1,
    TxStatus.SENDING: 2,
    TxStatus.UNCONFIRMED: 3,
    TxStatus.REORGING: 3,
    TxStatus.CONFIRMED: 4,
}


def can_move(source: TxStatus, target: TxStatus) -> bool:
    return (source, target) in TRANSITIONS


def has_reached(status: TxStatus, target: TxStatus) -> bool:
    if status is TxStatus.FAILED:
        return True
    return _PROGRESS[status] >= _PROGRESS[target]


class FailureReason:
    """Stable reasons in Transaction.failure_reason."""

    BROADCAST_REJECTED = "BROADCAST_REJECTED"
    DOUBLE_SPEND = "DOUBLE_SPEND"
    COINS_UNAVAILABLE = "COINS_UNAVAILABLE"
    POLICY_DENIED = "POLICY_DENIED"
    RETRIES_EXHAUSTED = "RETRIES_EXHAUSTED"
    DEPOSIT_DROPPED = "DEPOSIT_DROPPED"
    FEE_LIMIT_EXCEEDED = "FEE_LIMIT_EXCEEDED"
    # It spent change of ours whose transaction proved dead (retried, or final once builds run out).
    ANCESTOR_DEAD = "ANCESTOR_DEAD"


@dataclass(frozen=True, slots=True)
class Account:
    account_id: str
    external_id: str
    label: str
    create_time: datetime


@dataclass(frozen=True, slots=True)
class DepositAddress:
    address: str
    account_id: str
    network: Network
    locking_script: bytes
    key_id: str
    label: str
    received_satoshis: int
    create_time: datetime


@dataclass(frozen=True, slots=True)
class Balance:
    account_id: str
    available: int
    locked: int
    pending: int
    # What the account owes after a reversal it could not cover (>= 0); sends are refused meanwhile.
    deficit: int
    as_of: datetime


@dataclass(frozen=True, slots=True)
class WalletTx:
    transaction_id: str
    account_id: str
    direction: Direction
    status: TxStatus
    txid: str
    amount_satoshis: int
    fee_satoshis: int
    fee_rate_satoshis_per_kb: int
    address: str
    credited_outputs: tuple[Outpoint, ...]
    memo: str
    request_id: str
    confirmations: int
    required_confirmations: int
    block_hash: str
    block_height: int
    merkle_path: str
    raw_tx: bytes
    failure_reason: str
    failure_detail: str
    broadcast_attempts: int
    create_time: datetime
    update_time: datetime
    accept_time: datetime | None
    confirm_time: datetime | None


@dataclass(frozen=True, slots=True)
class TxFilter:
    account_id: str
    direction: Direction | None
    statuses: tuple[TxStatus, ...]
    txid: str
    start_time: datetime | None
    end_time: datetime | None


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class Actor:
    """Who caused a change, for the audit."""

    caller_id: str
    request_id: str = ""


def derived_request_id(prefix: str, *parts: object) -> str:
    """A request_id for a call to another service that a retry of the same step repeats exactly."""
    digest = hashlib.sha256("\x00".join(str(p) for p in parts).encode()).hexdigest()
    return f"{prefix}-{digest[:40]}"


# --- the identity side: keys linked to accounts, and what the publisher answers --------------------


class IdentityStatus(Enum):
    """publisher.v1.IdentityStatus."""

    ACTIVE = "active"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class Identity:
    """An identity key as the publisher registered it (publisher.v1.Identity, field for field)."""

    pubkey: bytes
    label: str
    owner_ref: str
    status: IdentityStatus
    registered_by: str
    created_at: datetime | None
    revoked_at: datetime | None
    revoke_reason: str


@dataclass(frozen=True, slots=True)
class IdentityLink:
    """A key linked to an account in the wallet's own schema; `identity` is None while the
    publisher has not yet answered the registration (pending)."""

    pubkey: bytes
    account_id: str
    label: str
    identity: Identity | None


@dataclass(frozen=True, slots=True)
class ForwardedJob:
    """A publisher job: what the wallet checks (its id and identity key) and the publisher's own
    message, which the wallet hands back unchanged (forwarding is lossless and costs no mapping)."""

    job_id: str
    identity_pubkey: bytes
    message: object


@dataclass(frozen=True, slots=True)
class ForwardedResult:
    """One intent's answer from PublishBatch (the publisher's PublishResult, handed back unchanged):
    its job, or the reason the publisher refused it."""

    job: ForwardedJob | None
    deduplicated: bool
    error_reason: str
    message: object
