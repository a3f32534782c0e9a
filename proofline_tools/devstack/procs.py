"""Child processes: spawn, stream their output, notice unexpected exits, stop them in order.

Every child gets its own process group, so a Ctrl-C in the terminal reaches only the supervisor,
which then stops the children in reverse start order. On Linux every child also gets a
parent-death signal, so even a supervisor killed with SIGKILL leaves no server behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from proofline_tools.devstack.console import Console
from proofline_tools.devstack.errors import StartupError

_PR_SET_PDEATHSIG = 1
_READ_CHUNK = 64 * 1024
_OUTPUT_DRAIN_S = 1.0
_KILL_WAIT_S = 5.0


@dataclass(frozen=True, slots=True)
class Account:
    """An unprivileged system account a child runs as (PostgreSQL refuses to run as root)."""

    name: str
    uid: int
    gid: int


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path | None = None
    stop_signal: signal.Signals = signal.SIGTERM
    account: Account | None = None


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit code {returncode}"


def read_pid_file(path: Path) -> int | None:
    """The pid on the first line of a server's pid file, if there is one."""
    try:
        first = path.read_text().split("\n", 1)[0].strip()
    except OSError:
        return None
    return int(first) if first.isdigit() else None


def pid_alive(pid: int) -> bool:
    """True if `pid` is a live process (a zombie, shown as <defunct>, does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # no /proc (macOS) or already gone
    return status.rsplit(")", 1)[-1].split()[0] == "Z"


def parent_death_hook(sig: signal.Signals) -> Callable[[], None] | None:
    """A preexec hook that has the kernel send `sig` to the child when the supervisor dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    supervisor_pid = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != supervisor_pid:  # the supervisor died before prctl took effect
            os.kill(os.getpid(), sig)

    return hook


async def _spawn(spec: ProcessSpec) -> asyncio.subprocess.Process:
    account = spec.account
    try:
        return await asyncio.create_subprocess_exec(
            *spec.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(spec.env),
            cwd=spec.cwd,
            process_group=0,
            preexec_fn=parent_death_hook(spec.stop_signal),
            user=account.uid if account else None,
            group=account.gid if account else None,
            extra_groups=[] if account else None,
        )
    except OSError as exc:
        raise StartupError(f"cannot start {spec.name} ({spec.argv[0]}): {exc}") from exc


class ManagedProcess:
    """A long-running child whose output is streamed and whose exit is watched."""

    def __init__(
        self,
        spec: ProcessSpec,
        process: asyncio.subprocess.Process,
        console: Console,
        on_unexpected_exit: Callable[[str], None],
    ) -> None:
        self.spec = spec
        self._process = process
        self._console = console
        self._stopping = False
        self._pump = asyncio.create_task(self._pump_output(), name=f"{spec.name}-output")
        self._watch = asyncio.create_task(self._watch_exit(on_unexpected_exit), name=f"{spec.name}-exit")

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    async def stop(self, timeout_s: float) -> None:
        """Ask the child to stop, wait up to `timeout_s`, then kill its whole process group."""
        self._stopping = True
        if self._process.returncode is None:
            self._send(self.spec.stop_signal)
            try:
                await asyncio.wait_for(self._process.wait(), timeout_s)
            except TimeoutError:
                self._console.say(f"{self.name} did not stop within {timeout_s:g} s; killing it")
                self._kill_group()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._process.wait(), _KILL_WAIT_S)
        await self._settle()

    def _send(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._process.send_signal(sig)

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signal.SIGKILL)

    async def _settle(self) -> None:
        """Let the output pump drain and the exit watcher finish, without waiting on a stuck pipe."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._pump), _OUTPUT_DRAIN_S)
        for task in (self._pump, self._watch):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _pump_output(self) -> None:
        stream = self._process.stdout
        if stream is None:
            return
        pending = b""
        while chunk := await stream.read(_READ_CHUNK):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                self._emit(line)
        if pending:
            self._emit(pending)

    def _emit(self, line: bytes) -> None:
        self._console.line(self.name, line.decode(errors="replace").rstrip("\r"))

    async def _watch_exit(self, on_unexpected_exit: Callable[[str], None]) -> None:
        returncode = await self._process.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._pump), _OUTPUT_DRAIN_S)
        if not self._stopping:
            on_unexpected_exit(f"{self.name} exited unexpectedly ({describe_exit(returncode)})")


async def run_to_completion(spec: ProcessSpec, console: Console, timeout_s: float) -> None:
    """Run a one-shot command (e.g. initdb); print its output only if it fails."""
    process = await _spawn(spec)
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout_s)
    except BaseException:  # timeout or cancellation (a stop request): leave nothing running
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        raise
    if process.returncode != 0:
        for line in output.decode(errors="replace").splitlines():
            console.line(spec.name, line)
        raise StartupError(f"{spec.name} failed ({describe_exit(process.returncode or 0)})")


class Launcher:
    """Starts children and registers each one's stop on the shared exit stack (LIFO = reverse order)."""

    def __init__(
        self,
        console: Console,
        stack: contextlib.AsyncExitStack,
        on_unexpected_exit: Callable[[str], None],
        stop_timeout_s: float,
    ) -> None:
        self.console = console
        self._stack = stack
        self._on_unexpected_exit = on_unexpected_exit
        self._stop_timeout_s = stop_timeout_s

    async def spawn(self, spec: ProcessSpec) -> ManagedProcess:
        process = await _spawn(spec)
        # No await between the spawn and the registration: a stop request can never miss this child.
        child = ManagedProcess(spec, process, self.console, self._on_unexpected_exit)
        self._stack.push_async_callback(self._stop, child)
        self.console.say(f"started {spec.name} (pid {child.pid})")
        return child

    async def run(self, spec: ProcessSpec, timeout_s: float) -> None:
        await run_to_completion(spec, self.console, timeout_s)

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Run `callback` when the stack unwinds, after everything started later has stopped."""
        self._stack.callback(callback)

    async def _stop(self, child: ManagedProcess) -> None:
        if child.returncode is None:
            self.console.say(f"stopping {child.name} (pid {child.pid})")
        await child.stop(self._stop_timeout_s)
