"""An asyncio event loop on a thread of its own, for synchronous tests (Hypothesis) that drive
in-process grpc.aio servers: the servers live on the loop, the test calls them with blocking
clients and runs set-up coroutines through `run`."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    def __init__(self, name: str = "test-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> None:
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout_s: float = 120.0) -> T:
        """Runs `coroutine` on the loop and waits for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    def stop(self) -> None:
        async def cancel_rest() -> None:
            current = asyncio.current_task()
            rest = [task for task in asyncio.all_tasks() if task is not current]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        if self._thread.is_alive():
            self.run(cancel_rest(), timeout_s=30.0)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30.0)
        self.loop.close()


@contextmanager
def loop_thread(name: str = "test-loop") -> Iterator[LoopThread]:
    thread = LoopThread(name)
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()
