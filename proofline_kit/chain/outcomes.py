"""Typed answers from chain providers: what happened to a broadcast, and who said so."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum


class Provider(Enum):
    ARC = "arc"
    WOC = "woc"


class ArcStatus(IntEnum):
    """ARC ``txStatus`` values with their numeric codes; ARC compares them by code ("at least")."""

    UNKNOWN = 0
    QUEUED = 10
    RECEIVED = 20
    STORED = 30
    ANNOUNCED_TO_NETWORK = 40
    REQUESTED_BY_NETWORK = 50
    SENT_TO_NETWORK = 60
    ACCEPTED_BY_NETWORK = 70
    SEEN_IN_ORPHAN_MEMPOOL = 80
    SEEN_ON_NETWORK = 90
    DOUBLE_SPEND_ATTEMPTED = 100
    REJECTED = 110
    MINED_IN_STALE_BLOCK = 115
    MINED = 120

    @classmethod
    def from_name(cls, name: str) -> ArcStatus | None:
        return cls.__members__.get(name)


class OutcomeKind(Enum):
    ACCEPTED = "accepted"
    DOUBLE_SPEND = "double_spend"
    MISSING_INPUTS = "missing_inputs"
    FEE_TOO_LOW = "fee_too_low"
    INVALID = "invalid"
    # The provider gave no verdict on the transaction (down, timed out, rate limited, odd answer).
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class BroadcastOutcome:
    """One provider's verdict on one transaction.

    ``status`` is ARC's txStatus when ARC answered with one (None for WhatsOnChain and for ARC
    errors); ``arc_code`` is ARC's 46x/4xx error code; ``reason`` carries the provider's words
    (extraInfo, node reject text, or why it was unavailable) for logs, never for branching.
    """

    kind: OutcomeKind
    txid: str
    provider: Provider
    status: ArcStatus | None = None
    competing_txids: tuple[str, ...] = ()
    reason: str = ""
    arc_code: int | None = None
    http_status: int | None = None
    block_hash: str | None = None
    block_height: int | None = None
    merkle_path: str | None = None

    @property
    def accepted(self) -> bool:
        return self.kind is OutcomeKind.ACCEPTED

    @property
    def mined(self) -> bool:
        return self.status is ArcStatus.MINED

    @property
    def definitive(self) -> bool:
        """True when the provider judged the transaction (anything but UNAVAILABLE)."""
        return self.kind is not OutcomeKind.UNAVAILABLE


def unavailable(txid: str, provider: Provider, reason: str, http_status: int | None = None) -> BroadcastOutcome:
    return BroadcastOutcome(OutcomeKind.UNAVAILABLE, txid, provider, reason=reason, http_status=http_status)


@dataclass(frozen=True, slots=True)
class Attempt:
    provider: Provider
    outcome: BroadcastOutcome


@dataclass(frozen=True, slots=True)
class BroadcastReport:
    """The final outcome of a broadcast and every provider's answer on the way to it, in order."""

    outcome: BroadcastOutcome
    attempts: tuple[Attempt, ...]

    @property
    def txid(self) -> str:
        return self.outcome.txid

    @property
    def answered_by(self) -> Provider:
        return self.outcome.provider
