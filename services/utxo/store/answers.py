"""Idempotency: the answers recorded for request ids."""

from __future__ import annotations

from proofline_kit import idempotency
from proofline_kit.database import DbConnection


class RecordedAnswers:
    _conn: DbConnection

    async def find_answer(self, caller_id: str, method: str, request_id: str, fingerprint: bytes) -> bytes | None:
        return await idempotency.find_answer(self._conn, caller_id, method, request_id, fingerprint)

    async def record_answer(
        self, caller_id: str, method: str, request_id: str, fingerprint: bytes, answer: bytes
    ) -> None:
        await idempotency.record_answer(self._conn, caller_id, method, request_id, fingerprint, answer)
