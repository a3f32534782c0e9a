"""When to retry a provider call, and how long to wait in between (equal-jitter exponential backoff)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import httpx


def is_retryable_status(status_code: int) -> bool:
    """Only overload and server trouble are worth another try; every other 4xx is an answer."""
    return status_code == 429 or 500 <= status_code <= 599


def is_retryable_error(exc: BaseException) -> bool:
    """Timeouts and broken connections; a malformed URL or unsupported scheme never heals."""
    if isinstance(exc, TimeoutError):
        return True
    return isinstance(exc, httpx.TransportError) and not isinstance(exc, httpx.UnsupportedProtocol)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 3
    base_delay_s: float = 0.2
    max_delay_s: float = 3.0
    # Upper bound for honouring a server's Retry-After; longer waits are left to the caller.
    max_retry_after_s: float = 5.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s:
            raise ValueError("need 0 <= base_delay_s <= max_delay_s")

    def backoff_s(self, retry_number: int, rand: Callable[[], float] = random.random) -> float:
        """Delay before retry ``retry_number`` (1-based): half fixed, half random, so callers that
        failed together spread out without any of them retrying immediately."""
        ceiling = min(self.max_delay_s, self.base_delay_s * (1 << max(0, retry_number - 1)))
        return ceiling / 2 + rand() * ceiling / 2

    def delay_s(
        self, retry_number: int, retry_after_s: float | None, rand: Callable[[], float] = random.random
    ) -> float:
        delay = self.backoff_s(retry_number, rand)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.max_retry_after_s))
        return delay


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (the delta-seconds form; dates are ignored)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
