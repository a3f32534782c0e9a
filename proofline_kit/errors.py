"""Domain errors: what went wrong, in words every transport can map.

Domain code raises these and knows nothing of gRPC; `proofline_kit.rpc.status` turns them into
google.rpc.Status with an ErrorInfo carrying the stable `reason` and the error's domain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum


class ErrorKind(Enum):
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    ABORTED = "ABORTED"
    UNAVAILABLE = "UNAVAILABLE"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    INTERNAL = "INTERNAL"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    field: str
    description: str
    reason: str = ""  # empty: the reason of the error that carries it


@dataclass(eq=False)
class DomainError(Exception):
    """An error with a stable machine-readable reason (UPPER_SNAKE_CASE)."""

    kind: ErrorKind
    reason: str
    message: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    field_violations: Sequence[FieldViolation] = ()
    retry_after_ms: int | None = None
    # The ErrorInfo domain of the service the error comes from, when it passes through from another
    # service (e.g. "proofline.publisher" reaching the wallet's callers); None = the answering service.
    domain: str | None = None

    def __post_init__(self) -> None:
        super().__init__(f"{self.reason}: {self.message}")


def invalid_argument(reason: str, field_name: str, description: str) -> DomainError:
    """The common case of one bad request field."""
    return DomainError(
        ErrorKind.INVALID_ARGUMENT,
        reason,
        f"{field_name}: {description}",
        metadata={"field": field_name},
        field_violations=(FieldViolation(field_name, description),),
    )
