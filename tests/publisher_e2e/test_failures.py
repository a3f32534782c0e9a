"""Fee too low, chain unavailable, a rejection, bounded retries, and two replicas sharing the queue."""

from __future__ import annotations

import asyncio

import grpc
from google.protobuf.duration_pb2 import Duration
from proofline.publisher.v1 import publisher_pb2, publisher_pb2_grpc
from proofline.utxo.v1 import utxo_pb2

from proofline_kit.settings import EnvReader
from services.publisher.app import start_publisher
from services.publisher.settings import read_publisher_settings
from tests.publisher_e2e.conftest import CLIENT, Suite

SIGNED = publisher_pb2.JOB_STATUS_SIGNED
SENT = publisher_pb2.JOB_STATUS_SENT
FAILED = publisher_pb2.JOB_STATUS_FAILED
CONFIRMED = publisher_pb2.JOB_STATUS_CONFIRMED


async def _until(suite: Suite, job_id: str, done: object, timeout_s: float = 20.0) -> publisher_pb2.Job:
    assert callable(done)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        job = await suite.job(job_id)
        if done(job):
            return job
        assert asyncio.get_running_loop().time() < deadline, job
        await asyncio.sleep(0.05)


async def test_fee_too_low_refreshes_the_policy_rate_and_rebuilds(suite: Suite) -> None:
    await suite.fund_pool(5_000, 6_000, 7_000)
    await suite.start_publisher()
    key = await suite.register()
    # The publisher has ARC's rate (1 sat/kB) cached; then ARC's policy goes up 500-fold.
    warm = await suite.publish(key.intent(), wait_for=SENT)
    assert warm.status == SENT
    await suite.sim.faults({"policy_override": {"miningFee": {"satoshis": 500, "bytes": 1000}}})
    job = await suite.publish(key.intent())

    sent = await suite.wait_status(job.job_id, SENT, timeout_s=30)
    size = len(await suite.tx_raw(sent.txid))
    assert sent.fee_satoshis >= (size * 500 + 999) // 1000
    events = await suite.events(job.job_id)
    dead = [e for e in events if (e["from_status"], e["to_status"]) == ("signed", "processing")]
    assert [e["reason"] for e in dead] == ["FEE_TOO_LOW"] and dead[0]["txid"] != sent.txid


async def test_chain_unavailable_keeps_the_job_signed_and_resends_the_same_bytes(suite: Suite) -> None:
    await suite.fund_pool(5_000)
    await suite.start_publisher(PUBLISHER_WOC_BROADCAST_FALLBACK="0", PUBLISHER_FEE_RATE_SAT_PER_KB="1")
    await suite.sim.faults({"rules": [{"face": "arc", "action": "http:503"}]})
    key = await suite.register()
    job = await suite.publish(key.intent())

    waiting = await _until(suite, job.job_id, lambda j: j.error_reason == "CHAIN_UNAVAILABLE")
    assert waiting.status == SIGNED and waiting.attempts >= 1 and waiting.txid
    await asyncio.sleep(1.0)
    still = await suite.job(job.job_id)
    assert still.status == SIGNED and still.txid == waiting.txid and still.raw_tx == waiting.raw_tx
    await suite.sim.clear_faults()

    sent = await suite.wait_status(job.job_id, SENT, timeout_s=20)
    assert sent.txid == waiting.txid and sent.attempts > waiting.attempts and sent.error_reason == ""
    builds = [
        e for e in await suite.events(job.job_id) if (e["from_status"], e["to_status"]) == ("processing", "signed")
    ]
    assert len(builds) == 1


async def test_a_rejected_transaction_fails_the_job_with_the_reason(suite: Suite) -> None:
    [funding] = await suite.fund_pool(5_000)
    await suite.start_publisher()
    await suite.sim.faults({"rules": [{"face": "arc", "action": "reject:non-final", "times": 1}]})
    key = await suite.register()
    job = await suite.publish(key.intent())

    failed = await _until(suite, job.job_id, lambda j: j.status == FAILED)
    assert failed.error_reason == "BROADCAST_REJECTED" and "non-final" in failed.error_detail, failed
    # The pool hears of it and takes the UTXO back only on chain evidence.
    for _ in range(100):
        utxo = await suite.pool_utxo(funding)
        if utxo.status == utxo_pb2.UTXO_STATUS_DIRTY:
            break
        await asyncio.sleep(0.05)
    assert utxo.status == utxo_pb2.UTXO_STATUS_DIRTY and utxo.status_reason == "REJECTED", utxo
    await suite.sync_pool()
    assert (await suite.pool_utxo(funding)).status == utxo_pb2.UTXO_STATUS_AVAILABLE


async def test_retries_are_bounded(suite: Suite) -> None:
    """One transaction per job at most: when it is proven dead, the job fails."""
    small, _ = await suite.fund_pool(1_000, 3_000)
    await suite.spend_elsewhere(small, 1_000)
    await suite.mine()
    await suite.start_publisher(PUBLISHER_MAX_BUILDS="1")
    key = await suite.register()
    job = await suite.publish(key.intent())

    failed = await _until(suite, job.job_id, lambda j: j.status == FAILED)
    assert failed.error_reason == "RETRIES_EXHAUSTED" and "MISSING_INPUTS" in failed.error_detail, failed


async def test_two_replicas_share_the_queue_without_double_spending(suite: Suite) -> None:
    funded = await suite.fund_pool(*[2_000] * 40)
    settings = {"PUBLISHER_BATCH_MAX_JOBS": "5", "PUBLISHER_WORKERS": "2"}
    await suite.start_publisher(**settings)
    other = await start_publisher(read_publisher_settings(EnvReader(suite.env_for_publisher(**settings))))
    try:
        key = await suite.register()
        response = await suite.stub.PublishBatch(
            publisher_pb2.PublishBatchRequest(
                request_id="replicas-1",
                intents=[key.intent() for _ in range(40)],
                wait_for=SENT,
                wait_timeout=Duration(seconds=60),
            ),
            metadata=CLIENT,
            timeout=90,
        )
        jobs = [r.job for r in response.results]
        assert [j.status for j in jobs] == [SENT] * 40, [(j.status, j.error_reason) for j in jobs]
        assert len({j.txid for j in jobs}) == 40
        spenders = [(await suite.pool_utxo(o)).spent_by_txid for o in funded]
        assert sorted(spenders) == sorted(j.txid for j in jobs)
        owners: set[str] = set()
        for job in jobs:
            events = await suite.events(job.job_id)
            built = [e for e in events if (e["from_status"], e["to_status"]) == ("processing", "signed")]
            assert len(built) == 1 and built[0]["txid"] == job.txid
            owners.add(built[0]["actor"].rsplit("/", 1)[0])
        assert len(owners) >= 2, owners
        # Either replica answers for every job.
        async with grpc.aio.insecure_channel(f"127.0.0.1:{other.port}") as channel:
            stub = publisher_pb2_grpc.PublisherServiceStub(channel)
            seen = await stub.GetJob(publisher_pb2.GetJobRequest(job_id=jobs[0].job_id), metadata=CLIENT)
            assert seen.job.txid == jobs[0].txid
        await suite.mine()
        for job in jobs:
            await suite.wait_status(job.job_id, CONFIRMED, timeout_s=30)
    finally:
        await other.stop()
