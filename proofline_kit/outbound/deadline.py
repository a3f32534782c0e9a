"""A time budget that travels with a call, so every HTTP attempt and retry fits inside it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Deadline:
    """An absolute point on a monotonic clock. From gRPC: ``Deadline.after(time_budget_s(ctx, 10))``."""

    expires_at: float
    clock: Clock = field(default=time.monotonic, compare=False, repr=False)

    @classmethod
    def after(cls, seconds: float, clock: Clock = time.monotonic) -> Deadline:
        return cls(clock() + max(0.0, seconds), clock)

    def remaining(self) -> float:
        return max(0.0, self.expires_at - self.clock())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def share(self, parts: int) -> Deadline:
        """A deadline for one of ``parts`` consecutive steps that split what is left evenly."""
        return Deadline(self.clock() + self.remaining() / max(1, parts), self.clock)
