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

# Below this many signatures a batch is signed in the event loop's process: at ~35 us per checked
# signature, 32 take ~1 ms, about what the hop to a worker costs in pickling, thread hand-offs and
# pipe wake-ups (latency and main-process CPU) for a small batch.
INLINE_BELOW = 32

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


def _sign_chunk(groups: list[tuple[bytes, bytes, list[bytes]]]) -> list[list[bytes | None]]:
    """Per (secret, public key, digests) group: signatures checked against the public key, None
    marking a failed check (see `ecdsa.sign_and_check_with_secret`)."""
    return [ecdsa.sign_and_check_with_secret(secret, public_key, digests) for secret, public_key, digests in groups]


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
        """Low-S DER signatures already verified against `public_keys` (None where that failed).

        The items are cut into one contiguous slice per worker; inside a slice they travel grouped
        by key, so each secret crosses the process boundary once per slice, not once per digest."""
        count = len(digests)
        if len(secrets) != count or len(public_keys) != count:
            raise ValueError("secrets, public_keys and digests must be aligned")
        if not count:
            return []
        inline = self._executor is None or count < INLINE_BELOW
        slices = 1 if inline else self._workers
        size = -(-count // slices)
        if secrets.count(secrets[0]) == count and public_keys.count(public_keys[0]) == count:
            # One key (the common case): plain slices, nothing to group.
            one = [[(secrets[0], public_keys[0], list(digests[a : a + size]))] for a in range(0, count, size)]
            done = [_sign_chunk(c) for c in one] if inline else await self._run_chunks(_sign_chunk, one)
            return [signature for chunk in done for signature in chunk[0]]
        work: list[list[tuple[bytes, bytes, list[bytes]]]] = []
        where: list[list[list[int]]] = []
        for start in range(0, count, size):
            groups: dict[tuple[bytes, bytes], tuple[list[int], list[bytes]]] = {}
            for i in range(start, min(start + size, count)):
                positions, wanted = groups.setdefault((secrets[i], public_keys[i]), ([], []))
                positions.append(i)
                wanted.append(digests[i])
            work.append([(secret, public_key, wanted) for (secret, public_key), (_, wanted) in groups.items()])
            where.append([positions for positions, _ in groups.values()])
        results: list[bytes | None] = [None] * count
        outcomes = [_sign_chunk(c) for c in work] if inline else await self._run_chunks(_sign_chunk, work)
        for chunk_positions, chunk_results in zip(where, outcomes, strict=True):
            for positions, signatures in zip(chunk_positions, chunk_results, strict=True):
                for i, signature in zip(positions, signatures, strict=True):
                    results[i] = signature
        return results

    async def verify_many(
        self, public_keys: Sequence[bytes], signatures: Sequence[bytes], digests: Sequence[bytes]
    ) -> list[bool]:
        items = list(zip(public_keys, signatures, digests, strict=True))
        return await self._run(_verify_chunk, items)

    async def _run_chunks(
        self, function: Callable[[list[Item]], list[Outcome]], chunks: list[list[Item]]
    ) -> list[list[Outcome]]:
        if self._executor is None:
            return [function(c) for c in chunks]
        loop = asyncio.get_running_loop()
        return list(await asyncio.gather(*(loop.run_in_executor(self._executor, function, c) for c in chunks)))

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
