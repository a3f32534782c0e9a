"""Intent → SENT → CONFIRMED with every service real; the record read back from the chain."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import asyncpg
import grpc
from proofline.publisher.v1 import publisher_pb2
from proofline.utxo.v1 import utxo_pb2

from proofline_kit.wire import parse
from tests.publisher.conftest import canonical
from tests.publisher_e2e.conftest import CLIENT, POOL_KEY, Suite, record_pushes

SENT = publisher_pb2.JOB_STATUS_SENT
CONFIRMED = publisher_pb2.JOB_STATUS_CONFIRMED


async def _next(stream: grpc.aio.UnaryStreamCall[Any, Any], timeout_s: float = 20.0) -> publisher_pb2.Job:
    message = await asyncio.wait_for(stream.read(), timeout_s)
    assert isinstance(message, publisher_pb2.WatchJobResponse), message
    return message.job


async def test_publish_is_sent_then_confirmed_and_the_record_is_on_chain(suite: Suite) -> None:
    [funding] = await suite.fund_pool(5_000)
    await suite.start_publisher()
    key = await suite.register()
    record = {"doc": "sha256:0123456789abcdef", "title": "proof of existence"}

    queued = await suite.publish(key.intent(key.payload(record)))
    assert queued.status in (publisher_pb2.JOB_STATUS_QUEUED, publisher_pb2.JOB_STATUS_PROCESSING)
    stream = suite.stub.WatchJob(publisher_pb2.WatchJobRequest(job_id=queued.job_id), metadata=CLIENT, timeout=60)
    job = await _next(stream)
    while job.status != SENT:
        assert job.status != publisher_pb2.JOB_STATUS_FAILED, job
        job = await _next(stream)
    assert len(job.txid) == 64 and job.fee_satoshis > 0 and job.attempts == 1 and job.batch_id
    assert job.sign_time.seconds and job.sent_time.seconds and not job.block_hash

    # The record is on chain exactly as signed (JCS bytes), in an OP_FALSE OP_RETURN output of 0 sat.
    assert await suite.data_of(job.txid) == record_pushes(record)
    tx = parse(await suite.tx_raw(job.txid))
    assert [(i.outpoint.txid, i.outpoint.vout) for i in tx.inputs] == [(funding.txid, funding.vout)]
    change = tx.outputs[1]
    assert change.locking_script == suite.pool_script and change.satoshis == 5_000 - job.fee_satoshis

    # The pool: the UTXO is spent by this txid, the change is tracked as a new PUBLISH output.
    spent = await suite.pool_utxo(funding)
    assert spent.status == utxo_pb2.UTXO_STATUS_SPENT and spent.spent_by_txid == job.txid
    [tracked] = await suite.outputs_of(job.txid)
    assert (tracked.outpoint.vout, tracked.satoshis, tracked.owner_key_id) == (1, change.satoshis, POOL_KEY)
    assert tracked.purpose == utxo_pb2.UTXO_PURPOSE_PUBLISH

    [block] = await suite.mine()
    assert job.txid in block["txids"]
    job = await _next(stream)
    assert job.status == CONFIRMED, job
    assert (job.block_hash, job.block_height) == (block["hash"], block["height"])
    # The stream ends at CONFIRMED.
    assert await asyncio.wait_for(stream.read(), 5) == grpc.aio.EOF

    full = await suite.job(job.job_id)
    assert full.merkle_proof.bump and full.merkle_proof.block_hash == block["hash"]
    assert full.raw_tx == await suite.tx_raw(job.txid)
    steps = [(e["from_status"], e["to_status"]) for e in await suite.events(job.job_id)]
    assert steps == [
        ("", "queued"),
        ("queued", "processing"),
        ("processing", "signed"),
        ("signed", "sent"),
        ("sent", "confirmed"),
    ]


async def test_confirmation_by_arc_callback_alone(suite: Suite) -> None:
    """Polling is an hour away: only ARC's MINED callback to the publisher can confirm the job."""
    await suite.fund_pool(5_000)
    await suite.start_publisher(PUBLISHER_CONFIRM_POLL_MS="3600000", PUBLISHER_REORG_CHECK_MS="3600000")
    key = await suite.register()
    job = await suite.publish(key.intent(), wait_for=SENT)
    assert job.status == SENT
    [block] = await suite.mine()
    job = await suite.wait_status(job.job_id, CONFIRMED, timeout_s=15)
    assert job.block_hash == block["hash"]
    delivered = [c for c in await suite.sim.callbacks(job.txid) if c["state"] == "delivered"]
    assert any(c["payload"]["txStatus"] == "MINED" for c in _flatten(delivered)), delivered
    actors = {e["actor"] for e in await suite.events(job.job_id) if e["to_status"] == "confirmed"}
    assert all(a.endswith("/arc-callback") for a in actors), actors


async def test_confirmation_by_polling_alone(suite: Suite) -> None:
    """No callback endpoint: the poller asks ARC for the status and verifies the merkle path."""
    await suite.fund_pool(5_000)
    await suite.start_publisher(PUBLISHER_CALLBACK_ENABLED="0", PUBLISHER_CONFIRM_POLL_MS="300")
    key = await suite.register()
    job = await suite.publish(key.intent(), wait_for=SENT)
    assert job.status == SENT
    assert await suite.sim.callbacks(job.txid) == []
    [block] = await suite.mine()
    job = await suite.wait_status(job.job_id, CONFIRMED, timeout_s=15)
    assert (job.block_hash, job.block_height) == (block["hash"], block["height"])
    actors = {e["actor"] for e in await suite.events(job.job_id) if e["to_status"] == "confirmed"}
    assert all(a.endswith("/confirm") for a in actors), actors


def _flatten(callbacks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Batched callbacks carry {"count", "callbacks": [...]}; single ones are the status itself."""
    out: list[dict[str, Any]] = []
    for c in callbacks:
        payload = c["payload"]
        if "callbacks" in payload:
            out += [{**c, "payload": item} for item in payload["callbacks"]]
        else:
            out.append(c)
    return out


async def test_a_batch_is_signed_stored_and_broadcast_together(suite: Suite) -> None:
    """20 intents, one worker, a window long enough to gather them: one batch, one lease, one ARC
    /v1/txs call, one transaction (and one pool UTXO) per job."""
    funded = await suite.fund_pool(*[2_000] * 20)
    await suite.start_publisher(PUBLISHER_WORKERS="1", PUBLISHER_BATCH_WINDOW_MS="1500", PUBLISHER_BATCH_MAX_JOBS="20")
    key = await suite.register()
    records = [{"doc": f"sha256:{i:064x}", "n": i} for i in range(20)]
    response = await suite.stub.PublishBatch(
        publisher_pb2.PublishBatchRequest(
            request_id="batch-e2e-1",
            intents=[key.intent(key.payload(r)) for r in records],
            wait_for=SENT,
            wait_timeout=_seconds(30),
        ),
        metadata=CLIENT,
        timeout=60,
    )
    jobs = [r.job for r in response.results]
    assert [j.status for j in jobs] == [SENT] * 20, [(j.status, j.error_reason) for j in jobs]
    assert len({j.txid for j in jobs}) == 20
    assert len({j.batch_id for j in jobs}) == 1
    for job, record in zip(jobs, records, strict=True):
        assert await suite.data_of(job.txid) == record_pushes(record)
    spent = {(u.outpoint.txid, u.outpoint.vout): u.spent_by_txid for u in [await suite.pool_utxo(o) for o in funded]}
    assert sorted(spent.values()) == sorted(j.txid for j in jobs)

    registry = suite.publisher.registry if suite.publisher else None
    assert registry is not None
    broadcasts = registry.get_sample_value("publisher_pipeline_stage_seconds_count", {"stage": "broadcast"})
    broadcast_jobs = registry.get_sample_value("publisher_pipeline_stage_jobs_total", {"stage": "broadcast"})
    assert (broadcasts, broadcast_jobs) == (1.0, 20.0)

    await suite.mine()
    for job in jobs:
        await suite.wait_status(job.job_id, CONFIRMED, timeout_s=20)


def _seconds(value: int) -> Any:
    from google.protobuf.duration_pb2 import Duration

    return Duration(seconds=value)


async def test_hash_mode_puts_the_record_hash_and_the_job_reference_on_chain(suite: Suite) -> None:
    await suite.fund_pool(5_000)
    await suite.start_publisher(PUBLISHER_DATA_MODE="hash", PUBLISHER_DATA_PREFIX="acme")
    key = await suite.register()
    record = {"doc": "sha256:kept-off-chain", "size": 123}
    job = await suite.publish(key.intent(key.payload(record)), wait_for=SENT)
    assert job.status == SENT
    assert await suite.data_of(job.txid) == [b"acme", hashlib.sha256(canonical(record)).digest(), job.job_id.encode()]


async def test_batch_sign_mode_signs_a_batch_in_one_call(suite: Suite) -> None:
    """PUBLISHER_SIGN_MODE=batch: one blind Sign call for all sighashes; chainsim checks every script."""
    await suite.fund_pool(*[2_000] * 10)
    await suite.start_publisher(PUBLISHER_SIGN_MODE="batch", PUBLISHER_WORKERS="1", PUBLISHER_BATCH_WINDOW_MS="1000")
    key = await suite.register()
    records = [{"doc": f"sha256:{i:064x}"} for i in range(10)]
    response = await suite.stub.PublishBatch(
        publisher_pb2.PublishBatchRequest(
            request_id="batch-sign-1",
            intents=[key.intent(key.payload(r)) for r in records],
            wait_for=SENT,
            wait_timeout=_seconds(30),
        ),
        metadata=CLIENT,
        timeout=60,
    )
    jobs = [r.job for r in response.results]
    assert [j.status for j in jobs] == [SENT] * 10, [(j.status, j.error_reason, j.error_detail) for j in jobs]
    for job, record in zip(jobs, records, strict=True):
        assert await suite.data_of(job.txid) == record_pushes(record)
    conn = await asyncpg.connect(suite.database_url, server_settings={"search_path": "signer"})
    try:
        calls = await conn.fetchval("SELECT count(DISTINCT request_id) FROM signing_audit WHERE outcome = 'signed'")
    finally:
        await conn.close()
    assert calls == 1
