"""The database as the last line of defence (migration 0003): impossible numbers in jobs and the
identity audit are refused by name, and every uint32 funding vout is storable."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.publisher.domain.models import Actor, BuiltTx, JobMove, JobStatus, LeaseChange
from tests.publisher.conftest import PublisherUnderTest, publish, register

MAX_SATOSHIS = 2_100_000_000_000_000
MAX_VOUT = 4_294_967_295
WORKER = Actor("worker-1", "batch-req-1")
FUNDING = "ef" * 32


@pytest.fixture
async def conn(publisher: PublisherUnderTest) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(publisher.database_url, server_settings={"search_path": "publisher"})
    try:
        yield connection
    finally:
        await connection.close()


async def _queued_job(publisher: PublisherUnderTest) -> str:
    key = await register(publisher)
    return (await publish(publisher, key.intent())).job.job_id


@pytest.mark.parametrize(
    ("assignments", "constraint"),
    [
        ("fee_satoshis = -1", "jobs_fee_satoshis_range"),
        (f"fee_satoshis = {MAX_SATOSHIS + 1}", "jobs_fee_satoshis_range"),
        (f"funding_txid = '{FUNDING}', funding_vout = 0, funding_satoshis = 0", "jobs_funding_satoshis_range"),
        (
            f"funding_txid = '{FUNDING}', funding_vout = 0, funding_satoshis = {MAX_SATOSHIS + 1}",
            "jobs_funding_satoshis_range",
        ),
        (f"funding_txid = '{FUNDING}', funding_vout = -1, funding_satoshis = 1", "jobs_funding_vout_range"),
        (
            f"funding_txid = '{FUNDING}', funding_vout = {MAX_VOUT + 1}, funding_satoshis = 1",
            "jobs_funding_vout_range",
        ),
        ("attempts = -1", "jobs_attempts_check"),
        ("builds = -1", "jobs_builds_check"),
        (f"block_hash = '{'cd' * 32}', block_height = -1", "jobs_block_height_check"),
        ("lease_token = 0, lease_expires_at = now()", "jobs_lease_token_range"),
        ("utxo_fencing_token = -1", "jobs_utxo_fencing_token_range"),
    ],
)
async def test_an_impossible_job_value_is_refused(
    publisher: PublisherUnderTest, conn: asyncpg.Connection, assignments: str, constraint: str
) -> None:
    job_id = await _queued_job(publisher)
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await conn.execute(f"UPDATE jobs SET {assignments} WHERE job_id = $1", job_id)
    assert refused.value.constraint_name == constraint


async def test_a_negative_count_of_cancelled_jobs_is_refused(
    publisher: PublisherUnderTest, conn: asyncpg.Connection
) -> None:
    key = await register(publisher)
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await conn.execute(
            """INSERT INTO identity_events (pubkey, action, actor, cancelled_jobs)
               VALUES ($1, 'revoked', 'admin', -1)""",
            key.pubkey,
        )
    assert refused.value.constraint_name == "identity_events_cancelled_jobs_range"


async def test_the_largest_funding_vout_and_amounts_are_stored_through_the_store(
    publisher: PublisherUnderTest,
) -> None:
    job_id = await _queued_job(publisher)
    store = publisher.running.store
    async with store.unit_of_work() as uow:
        [claimed] = await uow.claim_queued("worker-1", 10, 30, "batch-1", WORKER)
    tx = BuiltTx(
        txid="ab" * 32,
        raw_tx=b"\x01\x00",
        fee_satoshis=MAX_SATOSHIS,
        funding_txid=FUNDING,
        funding_vout=MAX_VOUT,
        funding_satoshis=MAX_SATOSHIS,
        funding_script=b"\x51",
        change_key_id="",
        utxo_lease_id="lease-1",
        utxo_fencing_token=2**63 - 1,
    )
    move = JobMove(
        job_id,
        JobStatus.PROCESSING,
        JobStatus.SIGNED,
        "",
        lease_token=claimed.lease_token,
        lease=LeaseChange.KEEP,
        tx=tx,
    )
    async with store.unit_of_work() as uow:
        assert await uow.apply_moves([move], WORKER) == {job_id}
    async with store.reader() as uow:
        [stored] = await uow.in_flight_by_txids([tx.txid])
    assert stored.tx == tx
