"""A pool UTXO spent behind the publisher's back: the conflict is reported to the pool, the first
transaction is kept until the chain proves it dead, and only then is the job rebuilt on another UTXO."""

from __future__ import annotations

import asyncio

from proofline.common.v1 import common_pb2
from proofline.publisher.v1 import publisher_pb2
from proofline.utxo.v1 import utxo_pb2

from proofline_kit.wire import parse
from tests.publisher_e2e.conftest import Suite, record_pushes

SIGNED = publisher_pb2.JOB_STATUS_SIGNED
SENT = publisher_pb2.JOB_STATUS_SENT
CONFIRMED = publisher_pb2.JOB_STATUS_CONFIRMED


async def _first_txid(suite: Suite, job_id: str, reason: str) -> str:
    """The txid of the job's first transaction, once the job reports `reason`."""
    for _ in range(200):
        job = await suite.job(job_id)
        if job.error_reason == reason and job.txid:
            return job.txid
        assert job.status != publisher_pb2.JOB_STATUS_FAILED, job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job never reported {reason}: {await suite.job(job_id)}")


async def _pool_status(
    suite: Suite, outpoint: common_pb2.Outpoint, status: utxo_pb2.UtxoStatus.ValueType
) -> utxo_pb2.Utxo:
    for _ in range(100):
        utxo = await suite.pool_utxo(outpoint)
        if utxo.status == status:
            return utxo
        await asyncio.sleep(0.05)
    raise AssertionError(f"pool UTXO never reached {utxo_pb2.UtxoStatus.Name(status)}: {utxo}")


async def test_double_spend_is_reported_and_the_job_retried_once_the_first_tx_is_dead(suite: Suite) -> None:
    small, big = await suite.fund_pool(1_000, 3_000)
    # Someone spends the smallest pool UTXO (the one the publisher will lease first) in the mempool.
    competitor = await suite.spend_elsewhere(small, 1_000)
    await suite.start_publisher()
    key = await suite.register()
    record = {"doc": "sha256:double-spend"}
    job = await suite.publish(key.intent(key.payload(record)))

    first = await _first_txid(suite, job.job_id, "DOUBLE_SPEND")
    waiting = await suite.job(job.job_id)
    # Not proven dead yet (the competitor is only in the mempool): the job keeps its transaction.
    assert waiting.status == SIGNED and waiting.txid == first, waiting
    assert competitor in waiting.error_detail or "double spend" in waiting.error_detail.lower()
    # The report to the pool follows the job's update.
    dirty = await _pool_status(suite, small, utxo_pb2.UTXO_STATUS_DIRTY)
    assert dirty.status_reason == "DOUBLE_SPEND", dirty
    assert competitor in dirty.competing_txids

    # The competitor is mined: the first transaction is now dead; a new one spends another UTXO.
    [block] = await suite.mine()
    assert competitor in block["txids"] and first not in block["txids"]
    sent = await suite.wait_status(job.job_id, SENT, timeout_s=30)
    assert sent.txid != first
    tx = parse(await suite.tx_raw(sent.txid))
    assert [(i.outpoint.txid, i.outpoint.vout) for i in tx.inputs] == [(big.txid, big.vout)]
    assert await suite.data_of(sent.txid) == record_pushes(record)
    assert (await suite.arc_status(first))["txStatus"] == "REJECTED"

    events = await suite.events(job.job_id)
    dead = [e for e in events if e["from_status"] == "signed" and e["to_status"] == "processing"]
    assert len(dead) == 1 and dead[0]["txid"] == first and dead[0]["reason"] == "DOUBLE_SPEND"
    assert [e["txid"] for e in events if e["to_status"] == "signed" and e["from_status"] == "processing"] == [
        first,
        sent.txid,
    ]
    await suite.mine()
    await suite.wait_status(job.job_id, CONFIRMED)


async def test_missing_inputs_is_reported_for_resync_and_the_job_retried(suite: Suite) -> None:
    small, big = await suite.fund_pool(1_000, 3_000)
    # The smallest pool UTXO was spent in a block already; the pool does not know yet.
    competitor = await suite.spend_elsewhere(small, 1_000)
    await suite.mine()
    await suite.start_publisher()
    key = await suite.register()
    record = {"doc": "sha256:missing-inputs"}
    job = await suite.publish(key.intent(key.payload(record)))

    sent = await suite.wait_status(job.job_id, SENT, timeout_s=30)
    tx = parse(await suite.tx_raw(sent.txid))
    assert [(i.outpoint.txid, i.outpoint.vout) for i in tx.inputs] == [(big.txid, big.vout)]
    assert await suite.data_of(sent.txid) == record_pushes(record)

    events = await suite.events(job.job_id)
    dead = [e for e in events if e["from_status"] == "signed" and e["to_status"] == "processing"]
    assert len(dead) == 1 and dead[0]["reason"] == "MISSING_INPUTS", [dict(e) for e in events]
    assert competitor in dead[0]["detail"]
    first = dead[0]["txid"]
    assert first != sent.txid
    # The pool was told (DIRTY, awaiting chain evidence); a sync resolves it from the chain.
    reported = await _pool_status(suite, small, utxo_pb2.UTXO_STATUS_DIRTY)
    assert reported.status_reason == "MISSING_INPUTS", reported
    await suite.sync_pool()
    resolved = await suite.pool_utxo(small)
    assert resolved.status == utxo_pb2.UTXO_STATUS_SPENT, resolved
    await suite.mine()
    await suite.wait_status(job.job_id, CONFIRMED)
