"""Background loops of the utxo service."""

from __future__ import annotations

import asyncio


def being_cancelled() -> bool:
    """True once the running task has been asked to stop. A cancel that lands inside a driver call
    can be swallowed, or surface as another exception (a failed rollback), so loops check this
    after each round instead of relying on CancelledError alone."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def pause(seconds: float) -> None:
    """Sleep between rounds of a loop, unless the loop's task was already asked to stop."""
    if being_cancelled():
        raise asyncio.CancelledError
    await asyncio.sleep(seconds)
