"""ARC transaction statuses and error codes (arc-woc.md §2.6, §2.7)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from types import MappingProxyType


# Not the kit's enum: the kit's ARC client is tested against this stand-in, so sharing would let a wrong value agree.
class ArcStatus(IntEnum):
    """ARC ``txStatus`` values with their metamorph numeric codes (ordering matters)."""

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
    def parse(cls, name: str) -> ArcStatus | None:
        """The status named ``name`` (exact, upper case), or None when ARC would answer 400."""
        member = cls.__members__.get(name.strip())
        return member


# Statuses that trigger a callback without X-FullStatusUpdates (>= REJECTED) and with it (>= orphan).
CALLBACK_MIN_DEFAULT = ArcStatus.REJECTED
CALLBACK_MIN_FULL = ArcStatus.SEEN_IN_ORPHAN_MEMPOOL

# Statuses a staged progression walks through before SEEN_ON_NETWORK.
STAGES: tuple[ArcStatus, ...] = (
    ArcStatus.STORED,
    ArcStatus.ANNOUNCED_TO_NETWORK,
    ArcStatus.SENT_TO_NETWORK,
    ArcStatus.ACCEPTED_BY_NETWORK,
    ArcStatus.SEEN_ON_NETWORK,
)

ERROR_DOC_URL = "https://bitcoin-sv.github.io/arc/#/errors?id=_"

# code -> (title, detail), as ARC's pkg/api/status.go maps them.
ERROR_TABLE: Mapping[int, tuple[str, str]] = MappingProxyType(
    {
        400: ("Bad request", "The request seems to be malformed and cannot be processed"),
        401: ("Unauthorized", "Security requirements failed"),
        404: ("Not found", "The requested resource could not be found"),
        409: ("Generic error", "Transaction could not be processed"),
        460: ("Not extended format", "Transaction is not in extended format, missing input scripts"),
        461: ("Malformed transaction", "Transaction is malformed and cannot be processed"),
        462: ("Invalid inputs", "Transaction is invalid because the inputs are non-existent or spent"),
        463: ("Malformed transaction", "Transaction is malformed and cannot be processed"),
        464: ("Invalid outputs", "Transaction is invalid because the outputs are non-existent or invalid"),
        465: ("Fee too low", "Fees are too low"),
        466: ("Conflicting tx found", "Transaction is valid, but there is a conflicting tx in the block template"),
        467: ("Mined ancestors not found", "Error validating BEEF: mined ancestors not found in transaction inputs"),
        468: ("Invalid BUMPs", "Error validating BEEF: could not calculate Merkle Roots from given BUMPs"),
        469: ("Merkle Roots validation failed", "Error validating BEEF: could not validate Merkle Roots"),
        473: ("Cumulative fee validation failed", "Cumulative fee validation failed"),
        474: ("Transaction size validation failed", "Transaction size is greater than the policy limit"),
        475: ("Mined ancestors not found in BUMPs", "Error validating BEEF: mined ancestors not found in BUMPs"),
    }
)


class ArcError(Exception):
    """An ARC pre-validation or request error: HTTP status = ``code``."""

    def __init__(self, code: int, reason: str, txid: str | None = None, *, prefixed: bool = True) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.txid = txid
        # Validator errors read "arc error <code>: <reason>"; request errors carry the reason as is.
        self.prefixed = prefixed

    @property
    def extra_info(self) -> str:
        if self.prefixed and 460 <= self.code < 480:
            return f"arc error {self.code}: {self.reason}"
        return self.reason

    def body(self) -> dict[str, object]:
        title, detail = ERROR_TABLE.get(self.code, ERROR_TABLE[409])
        code = self.code if self.code in ERROR_TABLE else 409
        return {
            "type": f"{ERROR_DOC_URL}{code}",
            "title": title,
            "status": code,
            "detail": detail,
            "instance": None,
            "txid": self.txid,
            "extraInfo": self.extra_info,
        }
