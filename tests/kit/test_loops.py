"""The one loop shape: busy rounds run again at once, idle ones wait their interval or a wake-up,
a failed round is counted and the loop goes on, stop lets a round finish within its grace."""

from __future__ import annotations

import asyncio

from proofline_kit.loops import BackgroundLoops, Loop


async def test_a_busy_round_runs_again_at_once_and_an_idle_one_waits_for_its_wake_up() -> None:
    rounds: list[int] = []
    wake = asyncio.Event()

    async def work() -> bool:
        rounds.append(len(rounds))
        return len(rounds) < 3  # busy twice, then idle

    loops = BackgroundLoops("test.loops")
    loops.add(Loop("work", work, interval_s=60, wake=wake))
    loops.start()
    await asyncio.sleep(0.05)
    assert len(rounds) == 3
    wake.set()
    await asyncio.sleep(0.05)
    assert len(rounds) == 4
    await loops.stop(grace_s=1)


async def test_a_failed_round_is_counted_and_the_loop_carries_on() -> None:
    failures: list[str] = []
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")

    loops = BackgroundLoops("test.loops", failures.append)
    loops.add(Loop("flaky", flaky, interval_s=60, error_pause_s=0.01))
    loops.start()
    await asyncio.sleep(0.1)
    await loops.stop(grace_s=1)
    assert failures == ["flaky"]
    assert calls == 2


async def test_stop_lets_a_round_in_flight_finish_within_the_grace_and_a_loop_added_late_starts() -> None:
    finished: list[str] = []

    async def slow() -> None:
        await asyncio.sleep(0.05)
        finished.append("slow")

    async def late() -> None:
        finished.append("late")

    loops = BackgroundLoops("test.loops")
    loops.add(Loop("slow", slow, interval_s=60))
    loops.start()
    loops.add(Loop("late", late, interval_s=60))
    await asyncio.sleep(0.01)
    await loops.stop(grace_s=1)
    assert sorted(finished) == ["late", "slow"]


async def test_a_loop_added_after_start_runs_even_when_none_ran_before() -> None:
    ran = asyncio.Event()

    async def late() -> None:
        ran.set()

    loops = BackgroundLoops("test.loops")
    loops.start()
    loops.add(Loop("late", late, interval_s=60))
    await asyncio.wait_for(ran.wait(), 1)
    await loops.stop(grace_s=1)
