"""Group commit: everything submitted while one group is being written goes into the next group.

Under load, one database transaction (and one round trip per statement) serves many requests; when
idle, a request is written at once, alone, with no added wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """`write` gets a group of at most `max_items` items and returns each one's outcome, in order:
    its result, or the error its submitter gets."""

    def __init__(self, write: Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]], max_items: int) -> None:
        self._write = write
        self._max_items = max(1, max_items)
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """The item's outcome once its group is written. A caller that stops waiting (cancelled)
        does not take its item back: the group it is in is written all the same."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_groups())
        return await future

    async def _write_groups(self) -> None:
        group: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while self._queue:
                group, self._queue = self._queue[: self._max_items], self._queue[self._max_items :]
                try:
                    outcomes: Sequence[R | BaseException] = await self._write([item for item, _ in group])
                except Exception as exc:  # every waiter of the group gets the error
                    outcomes = [exc] * len(group)
                for (_, future), outcome in zip(group, outcomes, strict=True):
                    if future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
                group = []
        finally:
            self._writer = None
            # Cancelled (shutdown): nobody is left waiting forever.
            for _, future in [*group, *self._queue]:
                if not future.done():
                    future.cancel()
            self._queue = []
