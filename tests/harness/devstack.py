"""`make run`'s supervisor as a subprocess whose output a test reads line by line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

READY = re.compile(r"devstack \| ready")
READY_TIMEOUT_S = 90.0
EXIT_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Devstack:
    """One supervisor subprocess whose output is collected line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._grew = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, cwd: Path, env: Mapping[str, str]) -> Devstack:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "proofline_tools.devstack",
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        return cls(process)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    async def wait_for(self, pattern: re.Pattern[str], timeout_s: float = READY_TIMEOUT_S) -> re.Match[str]:
        async def scan() -> re.Match[str]:
            while True:
                for line in self.lines:
                    if found := pattern.search(line):
                        return found
                if self._reader.done():
                    raise AssertionError(f"supervisor exited before {pattern.pattern!r}:\n{self.output}")
                self._grew.clear()
                await self._grew.wait()

        try:
            return await asyncio.wait_for(scan(), timeout_s)
        except TimeoutError:
            raise AssertionError(f"no {pattern.pattern!r} within {timeout_s} s:\n{self.output}") from None

    async def wait_ready(self) -> None:
        await self.wait_for(READY)

    def value(self, label: str) -> str:
        """The URL printed on the banner line that starts with `label`."""
        return self._banner(rf"^\s+{label}\s+(\S+)")

    def service_pid(self, name: str) -> int:
        return int(self._banner(rf"^\s+{name}\s+\S+\s+\S+\s+(\d+)$"))

    def _banner(self, pattern: str) -> str:
        found = re.search(pattern, self.output, re.MULTILINE)
        assert found, f"{pattern!r} not in:\n{self.output}"
        return found.group(1)

    async def stop(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = EXIT_TIMEOUT_S) -> int:
        self.process.send_signal(sig)
        return await self.wait_exit(timeout_s)

    async def wait_exit(self, timeout_s: float = EXIT_TIMEOUT_S) -> int:
        try:
            returncode = await asyncio.wait_for(self.process.wait(), timeout_s)
            await asyncio.wait_for(self._reader, timeout_s)
        except TimeoutError:
            raise AssertionError(f"supervisor still running after {timeout_s} s:\n{self.output}") from None
        return returncode

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))
            self._grew.set()
        self._grew.set()


def supervisor_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "ARC_URL", "WOC_URL", "AUTH_TOKENS", "PYTHONPATH"}
        and not key.startswith(("SIGNER_", "DEVSTACK_", "CHAINSIM_", "PROOFLINE_"))
    }
    env.update(PROOFLINE_DATA_DIR=str(data_dir), DEVSTACK_STOP_TIMEOUT_MS="10000", **extra)
    return env
