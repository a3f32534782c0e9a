"""Start the stack in dependency order, wait for a stop request, stop everything in reverse order."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import traceback
from collections.abc import Iterator
from pathlib import Path

from proofline_tools.devstack.config import SERVICES, DevstackConfig, ServiceSpec
from proofline_tools.devstack.console import Console
from proofline_tools.devstack.credentials import MASTER_KEY_FILE, dev_auth_tokens, ensure_master_key
from proofline_tools.devstack.demo import DemoPublish, prepare_demo
from proofline_tools.devstack.errors import StartupError
from proofline_tools.devstack.mail import MAIL_FOLDER, LocalMailServer
from proofline_tools.devstack.postgres import start_postgres
from proofline_tools.devstack.procs import Launcher
from proofline_tools.devstack.provisioning import PoolKeys, ensure_pool_keys, pool_key_defaults
from proofline_tools.devstack.report import PUBLISHER, SIGNER, UTXO, WALLET, Dependency, StackReport, ready_banner
from proofline_tools.devstack.suite import (
    CHAINSIM,
    RunningService,
    is_runnable,
    services_root,
    start_chainsim,
    start_service,
)
from proofline_tools.devstack.valkey import start_valkey
from proofline_tools.devstack.wallet_demo import prepare_wallet_demo

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
READY_LINE = "ready: Ctrl-C (or SIGTERM) stops everything"


class StopRequest:
    """The first reason to stop wins: a signal (exit 0) or a failure (exit 1)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.reason = ""
        self.failed = False

    def by_signal(self, signum: int) -> None:
        self._set(f"received {signal.Signals(signum).name}", failed=False)

    def by_failure(self, message: str) -> None:
        self._set(message, failed=True)

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()

    def _set(self, reason: str, *, failed: bool) -> None:
        if not self._event.is_set():
            self.reason, self.failed = reason, failed
            self._event.set()


# Set in the services' environment when the stack runs its own SMTP server.
_EMBEDDED_MAIL = "DEVSTACK_EMBEDDED_MAIL"


async def supervise(config: DevstackConfig, console: Console) -> int:
    """Run the stack until a signal (exit 0) or a failure (exit 1); nothing started is left running."""
    stop = StopRequest()
    with _signal_handlers(stop, console):
        try:
            with _data_dir_lock(config.data_dir):
                async with contextlib.AsyncExitStack() as stack:
                    launcher = Launcher(console, stack, stop.by_failure, config.stop_timeout_s)
                    await _run_until_stopped(config, launcher, stop)
        except StartupError as exc:
            stop.by_failure(str(exc))
    console.say(f"stopped after a failure: {stop.reason}" if stop.failed else "stopped")
    return 1 if stop.failed else 0


async def _run_until_stopped(config: DevstackConfig, launcher: Launcher, stop: StopRequest) -> None:
    startup = asyncio.create_task(start_stack(config, launcher), name="startup")
    stopped = asyncio.create_task(stop.wait(), name="stop-request")
    try:
        await asyncio.wait({startup, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if startup.done() and not stop.is_set():
            _announce(startup, launcher.console, stop)
            await stopped
    finally:
        for task in (startup, stopped):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    cause = "after a failure" if stop.failed else f"({stop.reason})"
    launcher.console.say(f"stopping everything {cause}")


def _announce(startup: asyncio.Task[StackReport], console: Console, stop: StopRequest) -> None:
    """Print the banner, or turn a start-up error into a stop request."""
    try:
        report = startup.result()
    except StartupError as exc:
        stop.by_failure(f"start-up failed: {exc}")
        return
    except Exception as exc:
        for chunk in traceback.format_exception(exc):
            console.raw(chunk.rstrip("\n"))
        stop.by_failure(f"start-up failed: {exc!r}")
        return
    for line in ready_banner(report):
        console.raw(line)
    console.say(READY_LINE)


async def start_stack(config: DevstackConfig, launcher: Launcher) -> StackReport:
    """Everything the services need first, then the services in dependency order."""
    env = base_service_env(config)
    dependencies = (
        await _database(config, launcher, env),
        await _redis(config, launcher, env),
        await _chain(config, launcher, env),
        await _mail(config, launcher, env),
    )
    root = services_root()
    to_start = [spec for spec in SERVICES if _wanted(config, spec) and is_runnable(root, spec.name)]
    running: list[RunningService] = []
    pool_keys: PoolKeys | None = None
    wanted_keys = pool_key_defaults(env, config.admin_token)
    for spec in to_start:
        started = await start_service(launcher, spec, env, config.ready_timeout_s)
        running.append(started)
        if spec.name == SIGNER and wanted_keys is not None:
            pool_keys = await ensure_pool_keys(started.grpc_address, config.admin_token, *wanted_keys)
    demo = await _demo(config, env, running, pool_keys)
    wallet = next((s for s in running if s.name == WALLET), None)
    wallet_demo = (
        await prepare_wallet_demo(wallet.grpc_address, config.admin_token)
        if wallet is not None and demo is not None
        else None
    )
    return StackReport(
        services=tuple(running),
        not_started=tuple(spec.name for spec in SERVICES if spec not in to_start),
        dependencies=dependencies,
        admin_token=config.admin_token if not config.env.get("AUTH_TOKENS") else None,
        pool_keys=pool_keys,
        chain_url=env.get("ARC_URL", ""),
        demo=demo,
        wallet_demo=wallet_demo,
        mail_folder=config.data_dir / MAIL_FOLDER if env.get(_EMBEDDED_MAIL) else None,
    )


async def _demo(
    config: DevstackConfig, env: dict[str, str], running: list[RunningService], pool_keys: PoolKeys | None
) -> DemoPublish | None:
    """The demo pool and identity: only on the stack's own chainsim with the dev pool keys, once
    utxo and the publisher both run."""
    addresses = {s.name: s.grpc_address for s in running}
    if pool_keys is None or not config.chainsim_wanted or not {UTXO, PUBLISHER} <= set(addresses):
        return None
    return await prepare_demo(
        chain_url=env["ARC_URL"],
        utxo_address=addresses[UTXO],
        publisher_address=addresses[PUBLISHER],
        pool=pool_keys,
        admin_token=config.admin_token,
        data_dir=config.data_dir,
        intent_ttl_s=config.reader().integer("PUBLISHER_INTENT_MAX_TTL_S", 3600, minimum=1),
    )


def base_service_env(config: DevstackConfig) -> dict[str, str]:
    """The supervisor's environment plus the dev defaults every service reads."""
    env = dict(config.env)
    reader = config.reader()
    env["PYTHONUNBUFFERED"] = "1"
    env["PROOFLINE_ENV"] = env.get("PROOFLINE_ENV") or "dev"
    if not env.get("AUTH_TOKENS"):
        env["AUTH_TOKENS"] = dev_auth_tokens(config.admin_token)
    if not env.get("SIGNER_MASTER_KEYS") and not env.get("SIGNER_MASTER_KEY_FILE"):
        env["SIGNER_MASTER_KEY_FILE"] = str(ensure_master_key(config.data_dir / MASTER_KEY_FILE))
    for spec in SERVICES:  # every service learns every port, so each can find the others
        env[spec.grpc_port_env] = str(spec.grpc_port(reader))
        env[spec.metrics_port_env] = str(spec.metrics_port(reader))
    env["UTXO_SIGNER_ADDR"] = env.get("UTXO_SIGNER_ADDR") or f"127.0.0.1:{env['SIGNER_GRPC_PORT']}"
    env["WALLET_PUBLISHER_ADDR"] = env.get("WALLET_PUBLISHER_ADDR") or f"127.0.0.1:{env['PUBLISHER_GRPC_PORT']}"
    return env


def _wanted(config: DevstackConfig, spec: ServiceSpec) -> bool:
    return config.selected_services is None or spec.name in config.selected_services


async def _database(config: DevstackConfig, launcher: Launcher, env: dict[str, str]) -> Dependency:
    if not config.embedded_postgres:
        return Dependency("PostgreSQL", env["DATABASE_URL"], "from DATABASE_URL")
    pg_dir = config.data_dir / "pg"
    env["DATABASE_URL"] = await start_postgres(launcher, pg_dir, config.ready_timeout_s)
    return Dependency("PostgreSQL", env["DATABASE_URL"], f"embedded, data in {pg_dir}")


async def _redis(config: DevstackConfig, launcher: Launcher, env: dict[str, str]) -> Dependency:
    if not config.embedded_redis:
        return Dependency("Redis", env["REDIS_URL"], "from REDIS_URL")
    valkey_dir = config.data_dir / "valkey"
    env["REDIS_URL"] = await start_valkey(launcher, valkey_dir, config.redis_port, config.ready_timeout_s)
    return Dependency("Redis", env["REDIS_URL"], f"embedded Valkey, data in {valkey_dir}")


async def _chain(config: DevstackConfig, launcher: Launcher, env: dict[str, str]) -> Dependency:
    if not config.chainsim_wanted:
        return Dependency("chain", env.get("ARC_URL") or env.get("WOC_URL") or "", "from ARC_URL / WOC_URL")
    if not is_runnable(services_root(), CHAINSIM):
        return Dependency("chain", "-", "none: ARC_URL/WOC_URL unset and services.chainsim not available")
    urls = await start_chainsim(launcher, env, config.chainsim_port, config.chainsim_snapshot, config.ready_timeout_s)
    env["ARC_URL"], env["WOC_URL"], env["WOC_NETWORK"] = urls.arc_url, urls.woc_url, "test"
    return Dependency("chainsim", urls.arc_url, f"ARC_URL={urls.arc_url} WOC_URL={urls.woc_url}")


async def _mail(config: DevstackConfig, launcher: Launcher, env: dict[str, str]) -> Dependency:
    """The wallet's sign-up mail: the operator's SMTP server, or a local one keeping what it receives
    in the data directory (where the newcomer reads the code)."""
    if env.get("WALLET_SMTP_HOST"):
        return Dependency("mail", f"smtp://{env['WALLET_SMTP_HOST']}", "from WALLET_SMTP_HOST")
    folder = config.data_dir / MAIL_FOLDER
    server = LocalMailServer(folder=folder)
    server.start()
    launcher.on_stop(server.stop)
    env.update(
        WALLET_SMTP_HOST=server.host,
        WALLET_SMTP_PORT=str(server.port),
        WALLET_SMTP_SECURITY="none",
        **{_EMBEDDED_MAIL: "1"},
    )
    return Dependency("mail", f"smtp://{server.host}:{server.port}", f"embedded aiosmtpd, mail in {folder}")


@contextlib.contextmanager
def _signal_handlers(stop: StopRequest, console: Console) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, _on_signal, stop, console, sig)
    try:
        yield
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)


def _on_signal(stop: StopRequest, console: Console, sig: signal.Signals) -> None:
    if stop.is_set():
        console.say(f"{sig.name} received; already stopping, please wait")
    else:
        stop.by_signal(sig)


@contextlib.contextmanager
def _data_dir_lock(data_dir: Path) -> Iterator[None]:
    """One supervisor per data directory: two would share the same PostgreSQL cluster and ports."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / "devstack.lock").open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise StartupError(f"another devstack is already running with its data in {data_dir}") from exc
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
