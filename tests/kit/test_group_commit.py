"""Group commit: what arrives while a group is being written goes into the next group, each
submitter gets its own outcome, and a failed write fails only its own group."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from proofline_kit.group_commit import GroupCommit


async def test_an_idle_submit_is_written_alone_at_once_and_arrivals_during_a_write_share_the_next() -> None:
    groups: list[list[int]] = []
    release = asyncio.Event()

    async def write(items: Sequence[int]) -> list[int | BaseException]:
        groups.append(list(items))
        if len(groups) == 1:
            await release.wait()
        return [i * 10 for i in items]

    commit: GroupCommit[int, int] = GroupCommit(write, max_items=3)
    first = asyncio.ensure_future(commit.submit(1))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert groups == [[1]]
    later = [asyncio.ensure_future(commit.submit(i)) for i in range(2, 7)]
    await asyncio.sleep(0)
    release.set()
    assert await first == 10
    assert await asyncio.gather(*later) == [20, 30, 40, 50, 60]
    assert groups == [[1], [2, 3, 4], [5, 6]]


async def test_each_submitter_gets_its_own_error_and_a_failed_write_fails_only_its_group() -> None:
    calls = 0

    async def write(items: Sequence[str]) -> list[str | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database gone")
        return [ValueError(i) if i == "bad" else i.upper() for i in items]

    commit: GroupCommit[str, str] = GroupCommit(write, max_items=10)
    with pytest.raises(ConnectionError):
        await commit.submit("lost")
    outcomes = await asyncio.gather(commit.submit("ok"), commit.submit("bad"), return_exceptions=True)
    assert outcomes[0] == "OK"
    assert isinstance(outcomes[1], ValueError)
    assert await commit.submit("again") == "AGAIN"
