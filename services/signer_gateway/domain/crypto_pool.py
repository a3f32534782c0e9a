"""ECDSA work spread over worker processes.

bsv-sdk's libsecp256k1 calls hold the GIL, so threads do not scale; a batch large enough to pay
for the inter-process hop is split across a process pool. Small batches run inline.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import TypeVar

from services.signer_gateway.domain import ecdsa

INLINE_BELOW = 32

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


def _sign_chunk(items: list[tuple[bytes, bytes, bytes]]) -> list[bytes | None]:
    """Sign, then check each signature against the public key; None marks a failed check."""
    signatures: list[bytes | None] = []
    for secret, public_key, digest in items:
        signature = ecdsa.sign_digest(secret, digest)
        signatures.append(signature if ecdsa.verify_digest(public_key, signature, digest) else None)
    return signatures


def _verify_chunk(items: list[tuple[bytes, bytes, bytes]]) -> list[bool]:
    return [ecdsa.verify_digest(public_key, signature, digest) for public_key, signature, digest in items]


class CryptoPool:
    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._executor: Executor | None = (
            ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
            if workers > 0
            else None
        )

    async def sign_checked(
        self, secrets: Sequence[bytes], public_keys: Sequence[bytes], digests: Sequence[bytes]
    ) -> list[bytes | None]:
        """Low-S DER signatures already verified against `public_keys` (None where that failed)."""
        return await self._run(_sign_chunk, list(zip(secrets, public_keys, digests, strict=True)))

    async def verify_many(
        self, public_keys: Sequence[bytes], signatures: Sequence[bytes], digests: Sequence[bytes]
    ) -> list[bool]:
        items = list(zip(public_keys, signatures, digests, strict=True))
        return await self._run(_verify_chunk, items)

    async def _run(self, function: Callable[[list[Item]], list[Outcome]], items: list[Item]) -> list[Outcome]:
        if self._executor is None or len(items) < INLINE_BELOW:
            return function(items)
        size = -(-len(items) // self._workers)
        loop = asyncio.get_running_loop()
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        results = await asyncio.gather(*(loop.run_in_executor(self._executor, function, c) for c in chunks))
        return [value for chunk in results for value in chunk]

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
