"""PostgreSQL: migrations with yoyo (one schema per service) and the asyncpg pool."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Generic, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

# What a unit of work runs its SQL on: a plain connection or one borrowed from a pool.
DbConnection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

KIT_MIGRATIONS = Path(__file__).parent / "migrations"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_schema_name(schema: str) -> str:
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    return schema


def _yoyo_url(database_url: str, schema: str) -> str:
    parts = urlsplit(database_url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "schema"]
    query.append(("schema", schema))
    scheme = "postgresql+psycopg"
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def apply_migrations(database_url: str, schema: str, migration_dirs: Sequence[Path]) -> int:
    """Create the schema if needed and apply pending migrations (kit first, then the service's).

    Returns how many migrations were applied. yoyo takes a lock, so concurrent replicas are safe.
    """
    from yoyo import get_backend, read_migrations

    check_schema_name(schema)
    _create_schema(database_url, schema)
    backend = get_backend(_yoyo_url(database_url, schema))
    migrations = read_migrations(*(str(d) for d in [KIT_MIGRATIONS, *migration_dirs]))
    try:
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
    finally:
        backend.connection.close()
    return len(pending)


def _create_schema(database_url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(_libpq_url(database_url), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')


def _libpq_url(database_url: str) -> str:
    parts = urlsplit(database_url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "schema"]
    return urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(query), parts.fragment))


async def apply_migrations_async(database_url: str, schema: str, migration_dirs: Sequence[Path]) -> int:
    return await asyncio.to_thread(apply_migrations, database_url, schema, migration_dirs)


async def create_pool(database_url: str, schema: str, size: int) -> asyncpg.Pool:
    """A pool whose connections see only the service's own schema."""
    check_schema_name(schema)
    pool = await asyncpg.create_pool(
        _libpq_url(database_url),
        min_size=min(2, size),
        max_size=size,
        server_settings={"search_path": schema, "application_name": f"proofline-{schema}"},
        reset=_keep_session,
    )
    assert pool is not None
    return pool


async def _keep_session(_connection: asyncpg.Connection) -> None:
    """Released connections skip asyncpg's default reset query (advisory unlock, CLOSE ALL,
    UNLISTEN, RESET ALL): a round trip on every release, for session state no service leaves
    behind (no session SETs, advisory locks or cursors; the one LISTEN is on a connection held for
    the process's life). asyncpg still rolls back an open transaction and drops Python listeners."""


U = TypeVar("U")


class PooledStore(Generic[U]):
    """A service's database over its asyncpg pool: `unit` wraps one connection in the service's
    unit of work (its SQL), and this hands units out in the three ways the use cases read and write."""

    def __init__(self, pool: asyncpg.Pool, unit: Callable[[DbConnection], U]) -> None:
        self._pool = pool
        self._unit = unit

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[U]:
        """One read-write transaction: committed when the block ends, rolled back if it raises."""
        async with self._pool.acquire() as conn, conn.transaction():
            yield self._unit(conn)

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[U]:
        """Autocommit reads: no transaction to open and close."""
        async with self._pool.acquire() as conn:
            yield self._unit(conn)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[U]:
        """Several reads from one consistent snapshot (repeatable read, read only)."""
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            yield self._unit(conn)

    async def ping(self) -> None:
        async with self._pool.acquire() as conn:
            await conn.fetchval("SELECT 1")


class Queries:
    """Base of a service's query families: each family is a class of SQL over the one connection
    that a unit of work (the class inheriting every family) shares."""

    def __init__(self, conn: DbConnection) -> None:
        self._conn = conn
