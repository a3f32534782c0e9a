"""`make run`'s supervisor, run for real as a subprocess.

Most tests run it against stand-in services (a `services` package written into a temp dir that
shadows the real one), so they do not depend on which services are implemented yet; one test runs
the real tree with infrastructure only. Every wait has a deadline, and whatever a test starts is
killed at the end even when the test fails.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from proofline_kit.auth import TokenDirectory
from proofline_kit.settings import SettingsError
from proofline_tools.devstack.config import SERVICES, read_config
from proofline_tools.devstack.credentials import dev_auth_tokens, ensure_master_key
from proofline_tools.devstack.postgres import grant_traverse
from proofline_tools.devstack.procs import Account
from proofline_tools.devstack.report import redact_url
from tests.harness.devstack import READY, READY_TIMEOUT_S, Devstack, free_port, supervisor_env

REPO_ROOT = Path(__file__).resolve().parents[2]
PROBE_TIMEOUT_S = 3.0

# --------------------------------------------------------------------------- stand-in services

FAKE_SERVICE = """\
import asyncio, json, os, signal, sys
from pathlib import Path
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

NAME, PORT_ENV, HEALTH_NAME = {name!r}, {port_env!r}, {health!r}
REPORT = Path(os.environ["FAKE_REPORT_DIR"])

async def main() -> None:
    exit_code = os.environ.get("FAKE_EXIT_" + NAME)
    if exit_code:
        print(NAME, "failing on purpose", flush=True)
        sys.exit(int(exit_code))
    server = aio.server()
    servicer = health.aio.HealthServicer()
    await servicer.set(HEALTH_NAME, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    server.add_insecure_port("127.0.0.1:" + os.environ[PORT_ENV])
    await server.start()
    (REPORT / (NAME + ".env.json")).write_text(json.dumps(dict(os.environ)))
    print(NAME, "serving", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0)
    with open(REPORT / "stops.log", "a") as log:
        log.write(NAME + "\\n")

asyncio.run(main())
"""

FAKE_CHAINSIM = """\
import os, signal, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPORT = Path(os.environ["FAKE_REPORT_DIR"])

class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/v1/health" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass

server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["CHAINSIM_PORT"])), Handler)
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
(REPORT / "chainsim.env.json").write_text(__import__("json").dumps(dict(os.environ)))
print("chainsim listening", flush=True)
server.serve_forever()
with open(REPORT / "stops.log", "a") as log:
    log.write("chainsim\\n")
"""


def write_fake_services(root: Path, names: tuple[str, ...], *, chainsim: bool) -> None:
    package = root / "services"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for spec in SERVICES:
        if spec.name in names:
            health_name = spec.health_service
            source = FAKE_SERVICE.format(name=spec.name, port_env=spec.grpc_port_env, health=health_name)
            (package / spec.name).mkdir()
            (package / spec.name / "__main__.py").write_text(source)
    if chainsim:
        (package / "chainsim").mkdir()
        (package / "chainsim" / "__main__.py").write_text(FAKE_CHAINSIM)


def fake_ports() -> dict[str, str]:
    """Free ports for every fake component; the fake signer has no CreateKey, so the pool keys are
    given instead of provisioned."""
    names = [env for spec in SERVICES for env in (spec.grpc_port_env, spec.metrics_port_env)]
    return {name: str(free_port()) for name in [*names, "CHAINSIM_PORT"]} | {"UTXO_FUNDING_KEY_ID": "fake-funding"}


# --------------------------------------------------------------------------- leftovers


def processes_under(directory: Path) -> list[str]:
    """Live (non-zombie) processes whose cwd or command line is inside `directory`."""
    found: list[str] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _uses_directory(entry, str(directory)):
            found.append(f"{entry.name}: {_cmdline(entry)}")
    return found


def _uses_directory(proc: Path, directory: str) -> bool:
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        cwd = os.readlink(proc / "cwd")
    except OSError:
        return False
    return state != "Z" and (cwd.startswith(directory) or directory in _cmdline(proc))


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


async def assert_nothing_left(directory: Path) -> None:
    """Children may take a moment to be reaped by init; give them a short grace period."""
    for _ in range(50):
        if not processes_under(directory):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"processes left behind: {processes_under(directory)}")


def kill_leftovers(directory: Path) -> None:
    for line in processes_under(directory):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)


# --------------------------------------------------------------------------- probes


async def postgres_answers(dsn: str) -> bool:
    try:
        connection = await asyncpg.connect(dsn, timeout=PROBE_TIMEOUT_S)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    try:
        return bool(await connection.fetchval("SELECT 1") == 1)
    finally:
        await connection.close()


async def redis_answers(url: str) -> bool:
    timeout = PROBE_TIMEOUT_S
    client = aioredis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(await client.ping())
    except (RedisError, OSError):
        return False
    finally:
        await client.aclose()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short, world-traversable temp dir (PostgreSQL runs as `nobody` when the tests run as root)."""
    path = Path(tempfile.mkdtemp(prefix="devstack-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        kill_leftovers(path)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def devstacks(workdir: Path) -> AsyncIterator[list[Devstack]]:
    """Supervisors a test started; killed (and their children with them) when the test ends."""
    started: list[Devstack] = []
    yield started
    for devstack in started:
        await devstack.kill()
    kill_leftovers(workdir)


def fake_tree(workdir: Path, names: tuple[str, ...], *, chainsim: bool) -> tuple[Path, Path]:
    """(cwd holding the stand-in `services` package, report dir the stand-ins write to)."""
    cwd, report = workdir / "tree", workdir / "report"
    report.mkdir()
    write_fake_services(cwd, names, chainsim=chainsim)
    return cwd, report


# --------------------------------------------------------------------------- end to end


async def test_embedded_servers_answer_and_are_gone_after_sigterm(workdir: Path, devstacks: list[Devstack]) -> None:
    data_dir = workdir / "data"
    env = supervisor_env(data_dir, DEVSTACK_SERVICES="none", ARC_URL="http://127.0.0.1:9", WOC_URL="http://x")
    devstack = await Devstack.start(REPO_ROOT, env)
    devstacks.append(devstack)
    await devstack.wait_ready()
    dsn, redis_url = devstack.value("PostgreSQL"), devstack.value("Redis")

    assert await postgres_answers(dsn)
    connection = await asyncpg.connect(dsn, timeout=PROBE_TIMEOUT_S)
    assert await connection.fetchval("SELECT current_database()") == "proofline"
    await connection.close()
    assert await redis_answers(redis_url)

    second = await Devstack.start(REPO_ROOT, env)
    devstacks.append(second)
    assert await second.wait_exit() == 1
    assert "another devstack is already running" in second.output

    assert await devstack.stop(signal.SIGTERM) == 0
    assert "devstack | stopped" in devstack.output
    assert not await postgres_answers(dsn)
    assert not await redis_answers(redis_url)
    await assert_nothing_left(workdir)


async def test_data_survives_a_restart(workdir: Path, devstacks: list[Devstack]) -> None:
    cwd, _ = fake_tree(workdir, (), chainsim=False)
    env = supervisor_env(workdir / "data")
    first = await Devstack.start(cwd, env)
    devstacks.append(first)
    await first.wait_ready()
    connection = await asyncpg.connect(first.value("PostgreSQL"), timeout=PROBE_TIMEOUT_S)
    await connection.execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
    await connection.close()
    client = aioredis.Redis.from_url(first.value("Redis"), socket_timeout=PROBE_TIMEOUT_S)
    await client.set("kept", "still here")
    await client.aclose()
    assert await first.stop(signal.SIGINT) == 0

    second = await Devstack.start(cwd, env)
    devstacks.append(second)
    await second.wait_ready()
    assert "creating a PostgreSQL cluster" not in second.output
    connection = await asyncpg.connect(second.value("PostgreSQL"), timeout=PROBE_TIMEOUT_S)
    assert await connection.fetchval("SELECT v FROM kept") == "still here"
    await connection.close()
    client = aioredis.Redis.from_url(second.value("Redis"), socket_timeout=PROBE_TIMEOUT_S)
    assert await client.get("kept") == b"still here"
    await client.aclose()
    assert await second.stop() == 0
    await assert_nothing_left(workdir)


async def test_services_and_chainsim_start_in_order_and_stop_in_reverse(
    workdir: Path, devstacks: list[Devstack]
) -> None:
    names = tuple(spec.name for spec in SERVICES)
    cwd, report = fake_tree(workdir, names, chainsim=True)
    ports = fake_ports()
    data_dir = workdir / "data"
    devstack = await Devstack.start(cwd, supervisor_env(data_dir, FAKE_REPORT_DIR=str(report), **ports))
    devstacks.append(devstack)
    await devstack.wait_ready()

    started = [line.split("started ", 1)[1].split()[0] for line in devstack.lines if "| started " in line]
    assert started == ["postgres", "valkey", "chainsim", *names]
    for spec in SERVICES:
        assert re.search(
            rf"^\s+{spec.name}\s+127\.0\.0\.1:{ports[spec.grpc_port_env]}\s+"
            rf"http://127\.0\.0\.1:{ports[spec.metrics_port_env]}/metrics\s+\d+$",
            devstack.output,
            re.MULTILINE,
        )
    assert f'Bearer dev-admin-token\' -d \'{{"key_id":"demo"}}\' 127.0.0.1:{ports["SIGNER_GRPC_PORT"]}' in (
        devstack.output
    )

    seen = json.loads((report / "signer_gateway.env.json").read_text())
    chain = f"http://127.0.0.1:{ports['CHAINSIM_PORT']}"
    assert seen["DATABASE_URL"] == devstack.value("PostgreSQL")
    assert seen["REDIS_URL"] == devstack.value("Redis")
    assert (seen["ARC_URL"], seen["WOC_URL"], seen["WOC_NETWORK"]) == (chain, chain, "test")
    assert seen["AUTH_TOKENS"] == "admin:admin:dev-admin-token"
    assert seen["PROOFLINE_ENV"] == "dev"
    assert seen["SIGNER_MASTER_KEY_FILE"] == str(data_dir / "signer-master.key")
    assert seen["WALLET_GRPC_PORT"] == ports["WALLET_GRPC_PORT"]
    wallet_env = json.loads((report / "wallet.env.json").read_text())
    # The wallet's identity side forwards to the stack's publisher, with the dev admin token.
    assert wallet_env["WALLET_PUBLISHER_ADDR"] == f"127.0.0.1:{ports['PUBLISHER_GRPC_PORT']}"
    assert wallet_env["WALLET_PUBLISHER_TOKEN"] == "dev-admin-token"
    chainsim_env = json.loads((report / "chainsim.env.json").read_text())
    assert chainsim_env["CHAINSIM_SNAPSHOT"] == str(data_dir / "chainsim.json")

    assert await devstack.stop(signal.SIGINT) == 0
    assert (report / "stops.log").read_text().split() == [*reversed(names), "chainsim"]
    await assert_nothing_left(workdir)


async def test_a_child_that_dies_stops_everything_with_a_nonzero_exit(workdir: Path, devstacks: list[Devstack]) -> None:
    cwd, report = fake_tree(workdir, ("signer_gateway",), chainsim=False)
    env = supervisor_env(workdir / "data", FAKE_REPORT_DIR=str(report), **fake_ports())
    devstack = await Devstack.start(cwd, env)
    devstacks.append(devstack)
    await devstack.wait_ready()
    dsn, redis_url = devstack.value("PostgreSQL"), devstack.value("Redis")

    os.kill(devstack.service_pid("signer_gateway"), signal.SIGKILL)

    assert await devstack.wait_exit() == 1
    assert "signer_gateway exited unexpectedly (killed by SIGKILL)" in devstack.output
    assert not await postgres_answers(dsn)
    assert not await redis_answers(redis_url)
    await assert_nothing_left(workdir)


async def test_a_service_failing_at_start_up_stops_everything(workdir: Path, devstacks: list[Devstack]) -> None:
    cwd, report = fake_tree(workdir, ("signer_gateway",), chainsim=False)
    env = supervisor_env(workdir / "data", FAKE_REPORT_DIR=str(report), FAKE_EXIT_signer_gateway="3")
    env.update(fake_ports())
    devstack = await Devstack.start(cwd, env)
    devstacks.append(devstack)

    assert await devstack.wait_exit(READY_TIMEOUT_S) == 1
    assert "signer_gateway exited unexpectedly (exit code 3)" in devstack.output
    assert not READY.search(devstack.output)
    assert "stopping postgres" in devstack.output
    await assert_nothing_left(workdir)


# --------------------------------------------------------------------------- pieces


def test_master_key_is_created_private_and_reused(tmp_path: Path) -> None:
    path = ensure_master_key(tmp_path / "signer-master.key")
    content = path.read_text()
    version, encoded = content.strip().split(":")
    assert version == "1"
    assert len(base64.b64decode(encoded, validate=True)) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    path.chmod(0o644)
    assert ensure_master_key(path).read_text() == content
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_dev_auth_tokens_give_an_admin_caller() -> None:
    caller = TokenDirectory.parse(dev_auth_tokens("dev-admin-token")).authenticate("dev-admin-token")
    assert caller is not None
    assert caller.caller_id == "admin"
    assert caller.has_role("admin")


def test_urls_are_printed_without_passwords() -> None:
    assert redact_url("postgresql://app:s3cret@db:5432/proofline") == "postgresql://app:***@db:5432/proofline"
    assert redact_url("redis://:s3cret@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert redact_url("postgresql://postgres@/proofline?host=/x") == "postgresql://postgres@/proofline?host=/x"


def test_config_defaults_and_service_selection(tmp_path: Path) -> None:
    config = read_config({"PROOFLINE_DATA_DIR": str(tmp_path), "ARC_URL": "http://arc"})
    assert config.embedded_postgres
    assert config.embedded_redis
    assert not config.chainsim_wanted
    assert config.chainsim_port == 8700
    assert config.chainsim_snapshot == tmp_path / "chainsim.json"
    assert config.admin_token == "dev-admin-token"
    assert config.selected_services is None
    assert read_config({"DEVSTACK_SERVICES": "none"}).selected_services == ()
    assert read_config({"DEVSTACK_SERVICES": "wallet, utxo"}).selected_services == ("wallet", "utxo")
    with pytest.raises(SettingsError, match="DEVSTACK_SERVICES"):
        read_config({"DEVSTACK_SERVICES": "signer"})


def test_grant_traverse_adds_only_search_permission_where_missing(workdir: Path) -> None:
    closed = workdir / "closed"
    target = closed / "open" / "pg"
    target.mkdir(parents=True)
    closed.chmod(0o700)
    stranger = Account("stranger", uid=54321, gid=54321)
    try:
        changed = grant_traverse(target, stranger)
        assert closed in changed
        assert stat.S_IMODE(closed.stat().st_mode) == 0o701
        assert grant_traverse(target, stranger) == []
    finally:
        closed.chmod(0o755)
