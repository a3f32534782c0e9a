"""Replay of answers to retried mutating requests (`request_id`, AIP-155).

The answer is recorded in the same database transaction as the effect, so a retry either sees
the committed answer or finds nothing and the effect never happened.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import asyncpg
import orjson

from proofline_kit.database import DbConnection, Queries
from proofline_kit.errors import DomainError, ErrorKind, invalid_argument
from proofline_kit.logging import get_logger

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

_SELECT = """
SELECT request_hash, response FROM idempotency_keys
WHERE caller_id = $1 AND method = $2 AND request_id = $3
"""
_INSERT = """
INSERT INTO idempotency_keys (caller_id, method, request_id, request_hash, response)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT DO NOTHING
"""
_SELECT_MANY = """
SELECT k.caller_id, k.request_id, k.request_hash, k.response
FROM unnest($2::text[], $3::text[]) AS r (caller_id, request_id)
JOIN idempotency_keys k ON k.caller_id = r.caller_id AND k.method = $1 AND k.request_id = r.request_id
"""
_INSERT_MANY = """
INSERT INTO idempotency_keys (caller_id, method, request_id, request_hash, response)
SELECT r.caller_id, $1, r.request_id, r.request_hash, r.response
FROM unnest($2::text[], $3::text[], $4::bytea[], $5::bytea[]) AS r (caller_id, request_id, request_hash, response)
ON CONFLICT DO NOTHING
"""
# Oldest first, at most $2 rows; rows another transaction holds are left for the next round.
_FORGET = """
DELETE FROM idempotency_keys WHERE ctid IN (
    SELECT ctid FROM idempotency_keys
    WHERE created_at < now() - make_interval(secs => $1)
    ORDER BY created_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
"""
FORGET_BATCH_ROWS = 10_000


def check_request_id(request_id: str) -> str:
    if not _REQUEST_ID.match(request_id):
        raise invalid_argument("REQUEST_ID_INVALID", "request_id", "required: 1-64 characters of [A-Za-z0-9._:-]")
    return request_id


def request_fingerprint(*parts: object) -> bytes:
    """What identifies a request's content, to tell a retry from a reuse of its request_id."""
    return hashlib.sha256(orjson.dumps(parts)).digest()


async def find_answer(
    conn: DbConnection, caller_id: str, method: str, request_id: str, fingerprint: bytes
) -> bytes | None:
    """The recorded answer of an earlier identical request, or None."""
    row = await conn.fetchrow(_SELECT, caller_id, method, request_id)
    if row is None:
        return None
    return answer_for((bytes(row["request_hash"]), bytes(row["response"])), request_id, fingerprint)


async def record_answer(
    conn: DbConnection, caller_id: str, method: str, request_id: str, fingerprint: bytes, answer: bytes
) -> None:
    """Record the answer inside the caller's transaction. If a concurrent request with the same id
    committed first, ABORTED: the caller's transaction rolls back and a retry replays that answer."""
    status = await conn.execute(_INSERT, caller_id, method, request_id, fingerprint, answer)
    if not status.endswith(" 1"):
        raise DomainError(
            ErrorKind.ABORTED,
            "REQUEST_IN_PROGRESS",
            "a request with this request_id completed concurrently; retry to get its answer",
            metadata={"requestId": request_id},
        )


async def find_answers(
    conn: DbConnection, method: str, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[bytes, bytes]]:
    """The recorded (fingerprint, answer) of each (caller_id, request_id) that has one, in one
    statement; the caller compares fingerprints (`answer_for`)."""
    rows = await conn.fetch(_SELECT_MANY, method, [c for c, _ in keys], [r for _, r in keys])
    return {(r["caller_id"], r["request_id"]): (bytes(r["request_hash"]), bytes(r["response"])) for r in rows}


def answer_for(recorded: tuple[bytes, bytes], request_id: str, fingerprint: bytes) -> bytes:
    """The recorded answer, if it answered this very request; REQUEST_ID_REUSED if not."""
    request_hash, response = recorded
    if request_hash != fingerprint:
        raise DomainError(
            ErrorKind.FAILED_PRECONDITION,
            "REQUEST_ID_REUSED",
            "request_id was already used for a different request",
            metadata={"requestId": request_id},
        )
    return response


async def record_answers(conn: DbConnection, method: str, answers: Sequence[tuple[str, str, bytes, bytes]]) -> None:
    """`record_answer` for many (caller_id, request_id, fingerprint, answer) in one statement; if
    any was recorded concurrently, ABORTED and the caller's transaction rolls back."""
    if not answers:
        return
    status = await conn.execute(
        _INSERT_MANY,
        method,
        [a[0] for a in answers],
        [a[1] for a in answers],
        [a[2] for a in answers],
        [a[3] for a in answers],
    )
    if int(status.rsplit(" ", 1)[1]) != len(answers):
        raise DomainError(
            ErrorKind.ABORTED,
            "REQUEST_IN_PROGRESS",
            "a request with one of these request_ids completed concurrently; retry to get its answer",
        )


async def forget_answers(conn: DbConnection, retention_s: float, limit: int = FORGET_BATCH_ROWS) -> int:
    """Deletes up to `limit` answers recorded more than `retention_s` ago; returns how many.
    A retry arriving after that is treated as a new request (every mutating RPC is also idempotent
    on its own data: Publish on the intent, CommitSpend on (input, txid), ...)."""
    status = await conn.execute(_FORGET, retention_s, limit)
    return int(status.rsplit(" ", 1)[1])


def expiry_interval_s(retention_ms: int) -> float:
    """How often `expire_answers` runs for a retention: a tenth of it, between 1 s and an hour."""
    return min(3600.0, max(1.0, retention_ms / 1000 / 10))


async def expire_answers(pool: asyncpg.Pool, retention_ms: int) -> int:
    """One round of the expiry loop: forgets the answers older than `retention_ms` in batches (each
    its own short transaction, so no lock is held for long); returns how many. Safe with replicas.
    Returns 0 at once when `retention_ms` is 0 (keep forever)."""
    if retention_ms <= 0:
        return 0
    retention_s = retention_ms / 1000
    forgotten = 0
    while True:
        async with pool.acquire() as conn:
            deleted = await forget_answers(conn, retention_s)
        forgotten += deleted
        if deleted < FORGET_BATCH_ROWS:
            break
    if forgotten:
        get_logger("idempotency").info("idempotency.expired", answers=forgotten, retention_ms=retention_ms)
    return forgotten


class RecordedAnswers(Queries):
    """The query family every unit of work has: the answers recorded for `request_id`s."""

    async def find_answer(self, caller_id: str, method: str, request_id: str, fingerprint: bytes) -> bytes | None:
        return await find_answer(self._conn, caller_id, method, request_id, fingerprint)

    async def record_answer(
        self, caller_id: str, method: str, request_id: str, fingerprint: bytes, answer: bytes
    ) -> None:
        await record_answer(self._conn, caller_id, method, request_id, fingerprint, answer)

    async def find_answers(
        self, method: str, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[bytes, bytes]]:
        return await find_answers(self._conn, method, keys)

    async def record_answers(self, method: str, answers: Sequence[tuple[str, str, bytes, bytes]]) -> None:
        await record_answers(self._conn, method, answers)
