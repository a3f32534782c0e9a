"""What the publisher's use cases need from the outside world, as interfaces."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol


class NonceCache(Protocol):
    """Fast path for NONCE_REPLAYED (may forget; PostgreSQL's unique constraint is the truth)."""

    async def digests(self, keys: Sequence[tuple[bytes, str]]) -> list[bytes | None]:
        """The intent digest remembered for each (pubkey, nonce), aligned with `keys`."""
        ...

    async def remember(self, entries: Mapping[tuple[bytes, str], bytes]) -> None:
        """Remember (pubkey, nonce) -> digest for jobs that were just committed."""
        ...


class RateLimiter(Protocol):
    async def take(self, pubkey: bytes, count: int) -> tuple[int, int]:
        """Take up to `count` units for this key in the current window: (granted, retry_after_ms).
        Units are not given back when an intent is refused later: a window lasts one second."""
        ...


class ChangeSubscription(Protocol):
    async def wait(self, timeout_s: float) -> bool:
        """Until a watched job may have changed (True) or the timeout passed (False)."""
        ...

    @property
    def draining(self) -> bool:
        """The server is shutting down: watchers should end."""
        ...


class JobChanges(Protocol):
    def subscribe(self, job_ids: Sequence[str]) -> AbstractAsyncContextManager[ChangeSubscription]: ...
