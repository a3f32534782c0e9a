"""GetJob, ListJobs, WatchJob and wait_for, driven by status changes made through the store as the
workers will make them; and the jobs table's state machine, audit and claims."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from proofline.publisher.v1 import publisher_pb2

from services.publisher.domain.models import TRANSITIONS, Actor, Job, JobFilter, JobStatus, JobUpdate
from services.publisher.store import PublisherStore, PublisherUnitOfWork
from tests.harness.grpc_errors import expect_rpc_error
from tests.publisher.conftest import CLIENT, WALLET, PublisherUnderTest, publish, publisher_env, register
from tests.publisher.conftest import start_publisher_under_test as start_under_test

WORKER = Actor("worker-1", "batch-req-1")
TXID = "ab" * 32
BLOCK = "cd" * 32


async def _queue(publisher: PublisherUnderTest, count: int = 1) -> list[publisher_pb2.Job]:
    key = await register(publisher)
    return [(await publish(publisher, key.intent())).job for _ in range(count)]


async def _snapshot(stream: grpc.aio.UnaryStreamCall[Any, Any]) -> publisher_pb2.Job:
    """The next message of a WatchJob stream (within 5 s)."""
    message = await asyncio.wait_for(stream.read(), 5)
    assert isinstance(message, publisher_pb2.WatchJobResponse), message
    return message.job


async def _to_sent(publisher: PublisherUnderTest, job_id: str) -> None:
    """QUEUED -> PROCESSING -> SIGNED -> SENT, as a worker would."""
    async with publisher.running.store.unit_of_work() as uow:
        claimed = await uow.claim_queued("worker-1", 1000, 30, "batch-1", WORKER)
        token = next(c.lease_token for c in claimed if c.job.job_id == job_id)
    async with publisher.running.store.unit_of_work() as uow:
        signed = await uow.move_job(
            job_id,
            JobStatus.PROCESSING,
            JobStatus.SIGNED,
            WORKER,
            update=JobUpdate(txid=TXID, raw_tx=b"\x01\x00", fee_satoshis=12),
            lease_token=token,
        )
        assert signed is not None
    async with publisher.running.store.unit_of_work() as uow:
        sent = await uow.move_job(
            job_id,
            JobStatus.SIGNED,
            JobStatus.SENT,
            WORKER,
            reason="SEEN_ON_NETWORK",
            update=JobUpdate(attempts_increment=1),
        )
        assert sent is not None


async def test_get_job_unknown_and_invalid_ids(publisher: PublisherUnderTest) -> None:
    await expect_rpc_error(
        publisher.stub.GetJob(publisher_pb2.GetJobRequest(job_id="job_nope"), metadata=CLIENT),
        grpc.StatusCode.NOT_FOUND,
        "JOB_NOT_FOUND",
    )
    await expect_rpc_error(
        publisher.stub.GetJob(publisher_pb2.GetJobRequest(job_id=""), metadata=CLIENT),
        grpc.StatusCode.INVALID_ARGUMENT,
        "JOB_ID_INVALID",
    )


async def test_list_jobs_pages_newest_first_and_filters(publisher: PublisherUnderTest) -> None:
    alice = await register(publisher)
    bob = await register(publisher)
    alice_jobs = [(await publish(publisher, alice.intent())).job for _ in range(5)]
    bob_jobs = [(await publish(publisher, bob.intent())).job for _ in range(2)]
    await _to_sent(publisher, alice_jobs[1].job_id)

    seen: list[str] = []
    token = ""
    while True:
        page = await publisher.stub.ListJobs(
            publisher_pb2.ListJobsRequest(page_size=3, page_token=token), metadata=CLIENT, timeout=5
        )
        seen += [j.job_id for j in page.jobs]
        token = page.next_page_token
        if not token:
            break
    assert seen == [j.job_id for j in reversed(alice_jobs + bob_jobs)]

    async def ids(**filters: Any) -> list[str]:
        page = await publisher.stub.ListJobs(publisher_pb2.ListJobsRequest(**filters), metadata=WALLET, timeout=5)
        return [j.job_id for j in page.jobs]

    assert await ids(identity_pubkey=bob.pubkey) == [j.job_id for j in reversed(bob_jobs)]
    assert await ids(statuses=[publisher_pb2.JOB_STATUS_SENT]) == [alice_jobs[1].job_id]
    # _to_sent's worker claimed every queued job; the others are still PROCESSING.
    assert await ids(statuses=[publisher_pb2.JOB_STATUS_QUEUED]) == []
    assert await ids(statuses=[publisher_pb2.JOB_STATUS_SENT, publisher_pb2.JOB_STATUS_PROCESSING]) == [
        j.job_id for j in reversed(alice_jobs + bob_jobs)
    ]
    assert await ids(txid=TXID) == [alice_jobs[1].job_id]
    assert await ids(batch_id="batch-1") == [j.job_id for j in reversed(alice_jobs + bob_jobs)]
    assert await ids(batch_id="other") == []
    later = Timestamp()
    later.FromDatetime(datetime.now(UTC) + timedelta(minutes=1))
    assert await ids(start_time=later) == []
    assert len(await ids(end_time=later)) == 7
    cut = Timestamp()
    cut.FromDatetime(bob_jobs[0].create_time.ToDatetime(tzinfo=UTC))
    assert await ids(start_time=cut) == [j.job_id for j in reversed(bob_jobs)]

    full = await publisher.stub.ListJobs(
        publisher_pb2.ListJobsRequest(txid=TXID, view=publisher_pb2.JOB_VIEW_FULL), metadata=CLIENT, timeout=5
    )
    assert full.jobs[0].raw_tx == b"\x01\x00" and full.jobs[0].intent.pubkey == alice.pubkey
    basic = await publisher.stub.ListJobs(publisher_pb2.ListJobsRequest(txid=TXID), metadata=CLIENT, timeout=5)
    assert basic.jobs[0].raw_tx == b"" and not basic.jobs[0].HasField("intent")
    assert basic.jobs[0].fee_satoshis == 12 and basic.jobs[0].attempts == 1

    first = await publisher.stub.ListJobs(publisher_pb2.ListJobsRequest(page_size=1), metadata=CLIENT, timeout=5)
    await expect_rpc_error(
        publisher.stub.ListJobs(
            publisher_pb2.ListJobsRequest(page_size=1, page_token=first.next_page_token, identity_pubkey=bob.pubkey),
            metadata=CLIENT,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "PAGE_TOKEN_INVALID",
    )
    await expect_rpc_error(
        publisher.stub.ListJobs(publisher_pb2.ListJobsRequest(txid="XYZ"), metadata=CLIENT),
        grpc.StatusCode.INVALID_ARGUMENT,
        "TXID_INVALID",
    )


async def test_watch_job_streams_each_status_change(publisher: PublisherUnderTest) -> None:
    [job] = await _queue(publisher)
    stream = publisher.stub.WatchJob(publisher_pb2.WatchJobRequest(job_id=job.job_id), metadata=CLIENT, timeout=20)
    first = await _snapshot(stream)
    assert first.status == publisher_pb2.JOB_STATUS_QUEUED

    started = time.monotonic()
    await _to_sent(publisher, job.job_id)
    statuses = []
    while True:
        message = await _snapshot(stream)
        statuses.append(message.status)
        if message.status == publisher_pb2.JOB_STATUS_SENT:
            break
    # Woken by NOTIFY, not by the 2 s fallback poll.
    assert time.monotonic() - started < 1.5
    assert statuses[-1] == publisher_pb2.JOB_STATUS_SENT
    assert set(statuses) <= {
        publisher_pb2.JOB_STATUS_PROCESSING,
        publisher_pb2.JOB_STATUS_SIGNED,
        publisher_pb2.JOB_STATUS_SENT,
    }

    async with publisher.running.store.unit_of_work() as uow:
        confirmed = await uow.move_job(
            job.job_id,
            JobStatus.SENT,
            JobStatus.CONFIRMED,
            WORKER,
            update=JobUpdate(block_hash=BLOCK, block_height=101, merkle_bump=b"\x65\x00"),
        )
        assert confirmed is not None
    last = await _snapshot(stream)
    assert last.status == publisher_pb2.JOB_STATUS_CONFIRMED
    assert last.merkle_proof.block_hash == BLOCK and last.merkle_proof.block_height == 101
    assert last.txid == TXID and last.HasField("confirm_time")
    # CONFIRMED ends the stream with OK.
    assert await asyncio.wait_for(stream.read(), 5) == grpc.aio.EOF
    assert await stream.code() == grpc.StatusCode.OK


async def test_watch_job_until_and_failed_end_the_stream(publisher: PublisherUnderTest) -> None:
    first, second = await _queue(publisher, 2)
    stream = publisher.stub.WatchJob(
        publisher_pb2.WatchJobRequest(job_id=first.job_id, until=publisher_pb2.JOB_STATUS_PROCESSING),
        metadata=WALLET,
        timeout=20,
    )
    assert (await _snapshot(stream)).status == publisher_pb2.JOB_STATUS_QUEUED
    async with publisher.running.store.unit_of_work() as uow:
        await uow.claim_queued("worker-1", 1, 30, "b", WORKER)
    assert (await _snapshot(stream)).status == publisher_pb2.JOB_STATUS_PROCESSING
    assert await asyncio.wait_for(stream.read(), 5) == grpc.aio.EOF

    failing = publisher.stub.WatchJob(publisher_pb2.WatchJobRequest(job_id=second.job_id), metadata=CLIENT, timeout=20)
    await asyncio.wait_for(failing.read(), 5)
    async with publisher.running.store.unit_of_work() as uow:
        moved = await uow.move_job(
            second.job_id,
            JobStatus.QUEUED,
            JobStatus.FAILED,
            WORKER,
            reason="RETRIES_EXHAUSTED",
            update=JobUpdate(error_reason="RETRIES_EXHAUSTED", error_detail="gave up"),
        )
        assert moved is not None
    last = await _snapshot(failing)
    assert last.status == publisher_pb2.JOB_STATUS_FAILED and last.error_reason == "RETRIES_EXHAUSTED"
    assert await asyncio.wait_for(failing.read(), 5) == grpc.aio.EOF

    await expect_rpc_error(
        publisher.stub.WatchJob(
            publisher_pb2.WatchJobRequest(job_id=first.job_id, until=publisher_pb2.JOB_STATUS_FAILED), metadata=CLIENT
        ).read(),
        grpc.StatusCode.INVALID_ARGUMENT,
        "UNTIL_INVALID",
    )
    await expect_rpc_error(
        publisher.stub.WatchJob(publisher_pb2.WatchJobRequest(job_id="job_none"), metadata=CLIENT).read(),
        grpc.StatusCode.NOT_FOUND,
        "JOB_NOT_FOUND",
    )


async def test_a_draining_server_ends_watches_with_unavailable(database_url: str, redis_url: str) -> None:
    under_test = await start_under_test(publisher_env(database_url, redis_url), redis_url)
    try:
        [job] = await _queue(under_test)
        stream = under_test.stub.WatchJob(publisher_pb2.WatchJobRequest(job_id=job.job_id), metadata=CLIENT, timeout=20)
        await asyncio.wait_for(stream.read(), 5)
        started = time.monotonic()
        stopping = asyncio.ensure_future(under_test.running.stop())
        await expect_rpc_error(asyncio.wait_for(stream.read(), 5), grpc.StatusCode.UNAVAILABLE, "SERVER_DRAINING")
        await stopping
        assert time.monotonic() - started < 1.5, "draining must not wait for open streams"
    finally:
        await under_test.channel.close()


async def test_wait_for_answers_when_the_job_gets_there(publisher: PublisherUnderTest) -> None:
    key = await register(publisher)
    intent = key.intent()
    waiting = asyncio.ensure_future(
        publish(publisher, intent, request_id="waits", wait_for=publisher_pb2.JOB_STATUS_SENT)
    )
    job_id = ""
    for _ in range(100):
        async with publisher.running.store.reader() as uow:
            page = await uow.list_jobs(JobFilter(), None, 1)
        if page:
            job_id = page[0].job_id
            break
        await asyncio.sleep(0.02)
    assert job_id and not waiting.done()
    await _to_sent(publisher, job_id)
    response = await asyncio.wait_for(waiting, 5)
    assert response.job.status == publisher_pb2.JOB_STATUS_SENT and response.job.txid == TXID


async def test_batch_wait_for_waits_for_every_job(publisher: PublisherUnderTest) -> None:
    key = await register(publisher)
    waiting = asyncio.ensure_future(
        publisher.stub.PublishBatch(
            publisher_pb2.PublishBatchRequest(
                request_id="bw", intents=[key.intent(), key.intent()], wait_for=publisher_pb2.JOB_STATUS_PROCESSING
            ),
            metadata=CLIENT,
            timeout=10,
        )
    )
    claimed = []
    for _ in range(100):
        async with publisher.running.store.unit_of_work() as uow:
            claimed += await uow.claim_queued("w", 1, 30, "b", WORKER)
        if len(claimed) == 2:
            break
        await asyncio.sleep(0.05)
        if len(claimed) == 1:
            assert not waiting.done()
    response = await asyncio.wait_for(waiting, 5)
    assert [r.job.status for r in response.results] == [publisher_pb2.JOB_STATUS_PROCESSING] * 2


# --- the jobs table -----------------------------------------------------------------------------


async def test_the_database_state_machine_is_the_code_state_machine(publisher: PublisherUnderTest) -> None:
    async with publisher.running.store.reader() as uow:
        assert await uow.transition_table() == set(TRANSITIONS)


class _Undo(Exception):
    """Raised to roll a unit of work back."""


_PATH = {
    JobStatus.QUEUED: [],
    JobStatus.PROCESSING: [JobStatus.PROCESSING],
    JobStatus.SIGNED: [JobStatus.PROCESSING, JobStatus.SIGNED],
    JobStatus.SENT: [JobStatus.PROCESSING, JobStatus.SIGNED, JobStatus.SENT],
    JobStatus.CONFIRMED: [JobStatus.PROCESSING, JobStatus.SIGNED, JobStatus.SENT, JobStatus.CONFIRMED],
    JobStatus.FAILED: [JobStatus.FAILED],
}
# Everything any target needs, so that only the state machine can refuse a move.
_EVERYTHING = JobUpdate(
    txid=TXID, raw_tx=b"\x00", block_hash=BLOCK, block_height=1, merkle_bump=b"\x00", error_reason="TEST"
)


async def _move(uow: PublisherUnitOfWork, job_id: str, source: JobStatus, target: JobStatus) -> Job | None:
    claim = ("edge-test", 30.0) if target is JobStatus.PROCESSING else None
    return await uow.move_job(job_id, source, target, WORKER, update=_EVERYTHING, claim=claim)


async def test_every_edge_of_the_state_machine_in_the_database(publisher: PublisherUnderTest) -> None:
    """For every pair of statuses: the move commits exactly when it is in TRANSITIONS."""
    jobs = await _queue(publisher, len(JobStatus))
    store = publisher.running.store
    outcomes: dict[tuple[JobStatus, JobStatus], str] = {}
    for job, source in zip(jobs, JobStatus, strict=True):
        async with store.unit_of_work() as uow:
            at = JobStatus.QUEUED
            for step in _PATH[source]:
                assert await _move(uow, job.job_id, at, step) is not None
                at = step
        for target in JobStatus:
            if target is not source:
                outcomes[(source, target)] = await _attempt(store, job.job_id, source, target)
    expected = {pair: ("moved" if pair in TRANSITIONS else "refused") for pair in outcomes}
    assert outcomes == expected
    assert len(outcomes) == 30


async def _attempt(store: PublisherStore, job_id: str, source: JobStatus, target: JobStatus) -> str:
    """'moved' (then rolled back) or 'refused' by the database's state machine."""
    try:
        async with store.unit_of_work() as uow:
            moved = await _move(uow, job_id, source, target)
            assert moved is not None and moved.status is target
            raise _Undo
    except _Undo:
        return "moved"
    except asyncpg.CheckViolationError as refused:
        return "refused" if "not an allowed transition" in str(refused) else f"other: {refused}"


async def test_a_status_change_without_its_audit_row_cannot_commit(publisher: PublisherUnderTest) -> None:
    [job] = await _queue(publisher)
    conn = await asyncpg.connect(publisher.database_url, server_settings={"search_path": "publisher"})
    try:
        with pytest.raises(asyncpg.CheckViolationError, match="without an audit row"):
            async with conn.transaction():
                await conn.execute(
                    "UPDATE jobs SET status = 'failed', error_reason = 'X' WHERE job_id = $1", job.job_id
                )
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("DELETE FROM job_events")
        assert await conn.fetchval("SELECT status FROM jobs WHERE job_id = $1", job.job_id) == "queued"
    finally:
        await conn.close()


async def test_every_status_change_is_audited_with_actor_reason_and_request_id(publisher: PublisherUnderTest) -> None:
    [job] = await _queue(publisher)
    await _to_sent(publisher, job.job_id)
    async with publisher.running.store.unit_of_work() as uow:
        await uow.move_job(
            job.job_id,
            JobStatus.SENT,
            JobStatus.CONFIRMED,
            WORKER,
            reason="MINED",
            update=JobUpdate(block_hash=BLOCK, block_height=7, merkle_bump=b"\x01"),
        )
        reorged = await uow.move_job(job.job_id, JobStatus.CONFIRMED, JobStatus.SENT, WORKER, reason="REORG")
    assert reorged is not None and reorged.block_hash == "" and reorged.confirmed_at is None and reorged.sent_at
    async with publisher.running.store.reader() as uow:
        events = await uow.job_events(job.job_id)
    assert [(e.from_status, e.to_status, e.actor, e.request_id) for e in events] == [
        ("", "queued", "client", events[0].request_id),
        ("queued", "processing", "worker-1", "batch-req-1"),
        ("processing", "signed", "worker-1", "batch-req-1"),
        ("signed", "sent", "worker-1", "batch-req-1"),
        ("sent", "confirmed", "worker-1", "batch-req-1"),
        ("confirmed", "sent", "worker-1", "batch-req-1"),
    ]
    assert [e.reason for e in events] == ["ACCEPTED", "CLAIMED", "", "SEEN_ON_NETWORK", "MINED", "REORG"]
    assert events[2].txid == TXID


async def test_claims_skip_locked_rows_and_fence_stale_workers(publisher: PublisherUnderTest) -> None:
    jobs = await _queue(publisher, 6)
    store = publisher.running.store
    async with store.unit_of_work() as first:
        mine = await first.claim_queued("worker-a", 4, 30, "batch-a", WORKER)
        # A second worker, while the first transaction still holds its rows, gets the others.
        async with store.unit_of_work() as second:
            theirs = await second.claim_queued("worker-b", 4, 30, "batch-b", WORKER)
    assert [c.job.job_id for c in mine] == [j.job_id for j in jobs[:4]]
    assert [c.job.job_id for c in theirs] == [j.job_id for j in jobs[4:]]
    assert len({c.lease_token for c in mine + theirs}) == 6
    assert all(c.record.startswith(b'{"doc":"sha256:') for c in mine)

    # worker-a hangs: its lease expires and worker-c takes the job over with a newer token.
    victim = mine[0]
    conn = await asyncpg.connect(publisher.database_url, server_settings={"search_path": "publisher"})
    try:
        await conn.execute(
            "UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE job_id = $1", victim.job.job_id
        )
    finally:
        await conn.close()
    async with store.unit_of_work() as uow:
        [taken] = await uow.claim_stuck("worker-c", 10, 30, Actor("worker-c", "reclaim"))
    assert taken.job.job_id == victim.job.job_id and taken.lease_token > victim.lease_token
    async with store.unit_of_work() as uow:
        stale = await uow.move_job(
            victim.job.job_id,
            JobStatus.PROCESSING,
            JobStatus.SIGNED,
            WORKER,
            update=JobUpdate(txid=TXID, raw_tx=b"\x00"),
            lease_token=victim.lease_token,
        )
        assert stale is None, "a write with a superseded token must not apply"
        fresh = await uow.move_job(
            victim.job.job_id,
            JobStatus.PROCESSING,
            JobStatus.SIGNED,
            Actor("worker-c", "reclaim"),
            update=JobUpdate(txid=TXID, raw_tx=b"\x00"),
            lease_token=taken.lease_token,
        )
        assert fresh is not None and fresh.status is JobStatus.SIGNED
    async with store.reader() as uow:
        events = await uow.job_events(victim.job.job_id)
    assert ("processing", "processing", "LEASE_EXPIRED") in [(e.from_status, e.to_status, e.reason) for e in events]


async def test_backoff_keeps_a_job_from_being_claimed(publisher: PublisherUnderTest) -> None:
    [job] = await _queue(publisher)
    store = publisher.running.store
    async with store.unit_of_work() as uow:
        [claimed] = await uow.claim_queued("w", 1, 30, "b", WORKER)
        back = await uow.move_job(
            job.job_id,
            JobStatus.PROCESSING,
            JobStatus.QUEUED,
            WORKER,
            reason="POOL_EXHAUSTED",
            update=JobUpdate(error_reason="POOL_EXHAUSTED", next_attempt_delay_s=60),
            lease_token=claimed.lease_token,
        )
        assert back is not None and back.status is JobStatus.QUEUED and back.error_reason == "POOL_EXHAUSTED"
    async with store.unit_of_work() as uow:
        assert await uow.claim_queued("w", 1, 30, "b", WORKER) == []
