"""Replay of answers to retried mutating requests (`request_id`, AIP-155).

The answer is recorded in the same database transaction as the effect, so a retry either sees
the committed answer or finds nothing and the effect never happened.
"""

from __future__ import annotations

import hashlib
import re

import orjson

from proofline_kit.database import DbConnection
from proofline_kit.errors import DomainError, ErrorKind, invalid_argument

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
    if bytes(row["request_hash"]) != fingerprint:
        raise DomainError(
            ErrorKind.FAILED_PRECONDITION,
            "REQUEST_ID_REUSED",
            "request_id was already used for a different request",
            metadata={"requestId": request_id},
        )
    return bytes(row["response"])


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
