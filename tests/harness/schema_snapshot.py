"""A digest of every row of every table of one service schema, to prove a call changed nothing."""

from __future__ import annotations

from collections.abc import Iterable

import psycopg
from psycopg import sql


class SchemaSnapshot:
    """`take()` answers {table: md5 of all its rows} for the schema's base tables, minus `exclude`.

    Rows are rendered as text and sorted, so the digest depends on the content only."""

    def __init__(self, database_url: str, schema: str, exclude: Iterable[str] = ()) -> None:
        self.schema = schema
        self.excluded = frozenset(exclude)
        self._conn = psycopg.connect(database_url, autocommit=True)
        rows = self._conn.execute(
            """SELECT table_name FROM information_schema.tables
               WHERE table_schema = %s AND table_type = 'BASE TABLE' ORDER BY table_name""",
            (schema,),
        ).fetchall()
        self.tables = [str(name) for (name,) in rows if str(name) not in self.excluded]
        unknown = self.excluded - {str(name) for (name,) in rows}
        if unknown:
            raise ValueError(f"excluded tables not in schema {schema}: {sorted(unknown)}")
        if not self.tables:
            raise ValueError(f"schema {schema} has no tables")
        self._query = sql.SQL(" UNION ALL ").join(
            sql.SQL(
                "SELECT {name}, md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"
            ).format(name=sql.Literal(table), table=sql.Identifier(schema, table))
            for table in self.tables
        )

    def take(self) -> dict[str, str]:
        return {str(table): str(digest) for table, digest in self._conn.execute(self._query).fetchall()}

    def close(self) -> None:
        self._conn.close()


def changed_tables(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(table for table in before.keys() | after.keys() if before.get(table) != after.get(table))
