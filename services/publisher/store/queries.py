"""The connection every query family of a unit of work shares."""

from __future__ import annotations

from proofline_kit.database import DbConnection


class Queries:
    def __init__(self, conn: DbConnection) -> None:
        self._conn = conn
