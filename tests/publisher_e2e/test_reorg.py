"""Reorgs: a CONFIRMED job whose block leaves the longest chain goes back to SENT and is followed
again; one whose transaction is mined again in the new branch ends CONFIRMED in the new block."""

from __future__ import annotations

import asyncio

import pytest
from proofline.publisher.v1 import publisher_pb2

from tests.publisher_e2e.conftest import Suite

SENT = publisher_pb2.JOB_STATUS_SENT
CONFIRMED = publisher_pb2.JOB_STATUS_CONFIRMED


async def _confirmed(suite: Suite, **settings: str) -> tuple[publisher_pb2.Job, str]:
    await suite.fund_pool(5_000)
    await suite.start_publisher(**settings)
    key = await suite.register()
    job = await suite.publish(key.intent(), wait_for=SENT)
    assert job.status == SENT, job
    [block] = await suite.mine()
    job = await suite.wait_status(job.job_id, CONFIRMED)
    assert job.block_hash == block["hash"]
    return job, block["hash"]


@pytest.mark.parametrize(
    ("settings", "actor"),
    [
        # ARC's MINED_IN_STALE_BLOCK callback; the reorg check is an hour away.
        ({"PUBLISHER_REORG_CHECK_MS": "3600000"}, "/arc-callback"),
        # No callbacks: the reorg check compares the job's block with the chain's header.
        ({"PUBLISHER_CALLBACK_ENABLED": "0", "PUBLISHER_CONFIRM_POLL_MS": "300"}, "/reorg"),
    ],
    ids=["callback", "reorg-check"],
)
async def test_a_reorg_that_drops_the_block_moves_the_job_back_to_sent(
    suite: Suite, settings: dict[str, str], actor: str
) -> None:
    job, old_block = await _confirmed(suite, **settings)
    reorg = await suite.sim.reorg(1, drop=[job.txid])
    assert [b["hash"] for b in reorg["stale"]] == [old_block] and job.txid in reorg["stale_only"]

    back = await suite.wait_status(job.job_id, SENT, timeout_s=15)
    assert back.block_hash == "" and back.block_height == 0 and back.txid == job.txid
    assert not (await suite.job(job.job_id)).merkle_proof.bump
    # Followed again: the same transaction is mined in the next block and confirmed there.
    [block] = await suite.mine()
    assert job.txid in block["txids"]
    again = await suite.wait_status(job.job_id, CONFIRMED, timeout_s=15)
    assert again.block_hash == block["hash"] != old_block and again.txid == job.txid
    events = await suite.events(job.job_id)
    moves = [(e["from_status"], e["to_status"], e["reason"]) for e in events]
    assert ("confirmed", "sent", "REORG") in moves
    [unconfirmed] = [e for e in events if (e["from_status"], e["to_status"]) == ("confirmed", "sent")]
    assert unconfirmed["actor"].endswith(actor), unconfirmed["actor"]
    assert moves[-1][:2] == ("sent", "confirmed")


async def test_a_transaction_mined_again_in_the_new_branch_ends_confirmed_in_the_new_block(suite: Suite) -> None:
    job, old_block = await _confirmed(suite)
    reorg = await suite.sim.reorg(1)
    assert job.txid in reorg["remined"]
    new_block = next(b for b in reorg["new"] if job.txid in b["txids"])
    for _ in range(300):
        current = await suite.job(job.job_id)
        if current.status == CONFIRMED and current.block_hash == new_block["hash"]:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"job not confirmed in the new block: {current}")
    assert current.merkle_proof.block_hash == new_block["hash"] != old_block
    assert current.block_height == new_block["height"]
