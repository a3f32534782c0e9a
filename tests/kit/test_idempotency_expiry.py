"""Recorded request_id answers are forgotten after IDEMPOTENCY_RETENTION_MS (real PostgreSQL)."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc

from proofline_kit.database import DbConnection
from proofline_kit.idempotency import expire_answers, forget_answers
from tests.harness.grpc_errors import expect_rpc_error
from tests.signer_gateway.conftest import create_key, signer_env, start_signer_under_test, stop_signer_under_test

DAY_S = 24 * 3600.0


async def connect(database_url: str) -> asyncpg.Connection:
    return await asyncpg.connect(database_url, server_settings={"search_path": "signer"})


async def add_answer(conn: DbConnection, request_id: str, age_s: float) -> None:
    await conn.execute(
        """INSERT INTO idempotency_keys (caller_id, method, request_id, request_hash, response, created_at)
           VALUES ('c', 'M', $1, '\\x00', '\\x00', now() - make_interval(secs => $2))""",
        request_id,
        age_s,
    )


async def request_ids(conn: DbConnection) -> set[str]:
    return {r["request_id"] for r in await conn.fetch("SELECT request_id FROM idempotency_keys")}


async def test_only_answers_older_than_the_retention_are_forgotten_oldest_first_in_bounded_batches(
    database_url: str,
) -> None:
    conn = await connect(database_url)
    try:
        for index, age in enumerate([10 * DAY_S, 9 * DAY_S, 8 * DAY_S]):
            await add_answer(conn, f"old-{index}", age)
        await add_answer(conn, "recent", 6 * DAY_S)
        await add_answer(conn, "fresh", 0)

        assert await forget_answers(conn, 7 * DAY_S, limit=2) == 2
        assert await request_ids(conn) == {"old-2", "recent", "fresh"}
        assert await forget_answers(conn, 7 * DAY_S) == 1
        assert await forget_answers(conn, 7 * DAY_S) == 0
        assert await request_ids(conn) == {"recent", "fresh"}
    finally:
        await conn.close()


async def test_retention_zero_keeps_every_answer(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1, server_settings={"search_path": "signer"})
    assert pool is not None
    try:
        async with pool.acquire() as conn:
            await add_answer(conn, "ancient", 3650 * DAY_S)
        await asyncio.wait_for(expire_answers(pool, 0), timeout=1)  # returns at once, deletes nothing
        async with pool.acquire() as conn:
            assert await request_ids(conn) == {"ancient"}
    finally:
        await pool.close()


async def test_a_service_forgets_its_answers_and_a_late_retry_is_a_new_request(database_url: str) -> None:
    signer = await start_signer_under_test(signer_env(database_url, IDEMPOTENCY_RETENTION_MS="1000"))
    conn = await connect(database_url)
    try:
        await create_key(signer, "expiry-key")
        assert "create-expiry-key" in await request_ids(conn)
        for _ in range(100):
            if "create-expiry-key" not in await request_ids(conn):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the CreateKey answer was still recorded 10 s after a 1 s retention")
        # Without its recorded answer the retry runs again (instead of replaying): the key exists.
        await expect_rpc_error(create_key(signer, "expiry-key"), grpc.StatusCode.ALREADY_EXISTS)
    finally:
        await conn.close()
        await stop_signer_under_test(signer)
