"""Injectable clock: wall time plus an offset that ``POST /_sim/clock`` can advance."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    def __init__(self, offset_s: float = 0.0) -> None:
        self.offset_s = offset_s

    def now(self) -> float:
        return time.time() + self.offset_s

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self.offset_s += seconds

    def rfc3339_nanos(self) -> str:
        """ARC's timestamp shape: RFC 3339, UTC, nanosecond precision."""
        t = self.now()
        whole = int(t)
        nanos = round((t - whole) * 1e9)
        if nanos >= 1_000_000_000:
            whole, nanos = whole + 1, nanos - 1_000_000_000
        base = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{base}.{nanos:09d}Z"
