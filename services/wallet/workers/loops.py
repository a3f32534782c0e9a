"""The wallet's background work on the kit's loop shape: building and signing sends, broadcasting
them, following the chain (blocks and mempool) for deposits and for the confirmations of both. Safe
with several replicas: sends are claimed in PostgreSQL with fencing tokens, and deposits are
recorded idempotently (one wallet transaction per account and txid, credits guarded by status)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from proofline_kit.loops import Loop
from services.wallet.domain.deposits import DepositFollower
from services.wallet.domain.send_pipeline import SendPipeline

_ERROR_PAUSE_S = 1.0


def _busy(round_: Callable[[], Awaitable[int]]) -> Callable[[], Awaitable[bool]]:
    async def run() -> bool:
        return await round_() > 0

    return run


def wallet_loops(
    pipeline: SendPipeline,
    follower: DepositFollower,
    poll_s: float,
    follow_poll_s: float,
    broadcast_wake: asyncio.Event,
    *,
    recheck_wake: asyncio.Event | None = None,
    follow_wake: asyncio.Event | None = None,
    build_workers: int = 1,
) -> list[Loop]:
    """The first `build_workers` loops build sends (wake them when one is recorded);
    `broadcast_wake` is set when a round signed some. `recheck_wake` and `follow_wake` start the
    recheck round and the block scan before their interval is out (an ARC callback named one of our
    sends)."""
    return [
        *(
            Loop(f"sends-build-{i}", _busy(pipeline.build_round), poll_s, error_pause_s=_ERROR_PAUSE_S)
            for i in range(build_workers)
        ),
        Loop(
            "sends-broadcast",
            _busy(pipeline.broadcast_round),
            poll_s,
            wake=broadcast_wake,
            error_pause_s=_ERROR_PAUSE_S,
        ),
        Loop(
            "sends-recheck",
            _busy(pipeline.recheck_round),
            follow_poll_s,
            wake=recheck_wake or asyncio.Event(),
            error_pause_s=_ERROR_PAUSE_S,
        ),
        Loop("coins-audit", _busy(pipeline.audit_round), follow_poll_s, error_pause_s=_ERROR_PAUSE_S),
        Loop(
            "deposits-blocks",
            follower.follow_round,
            follow_poll_s,
            wake=follow_wake or asyncio.Event(),
            error_pause_s=_ERROR_PAUSE_S,
        ),
        Loop("deposits-mempool", follower.mempool_round, follow_poll_s, error_pause_s=_ERROR_PAUSE_S),
    ]
