"""A gRPC service as a child process (`python -m services.<name>`), so a test can kill -9 it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.chain_clients.sim import REPO_ROOT, free_port

_DIE_WITH_PARENT_THEN_RUN = (
    "import ctypes, runpy, signal; ctypes.CDLL(None).prctl(1, signal.SIGKILL); "
    "runpy.run_module('{module}', run_name='__main__', alter_sys=True)"
)
# Settings the child must not inherit from the test runner's environment.
_SERVICE_PREFIXES = ("PUBLISHER_", "UTXO_", "SIGNER_", "WALLET_")


@dataclass
class ServiceProcess:
    proc: subprocess.Popen[bytes]
    port: int
    log: IO[bytes]
    name: str

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@contextlib.asynccontextmanager
async def service_process(name: str, port_env: str, env: dict[str, str]) -> AsyncIterator[ServiceProcess]:
    """`python -m services.<name>` with `env` on a free port, serving; terminated on the way out (if
    still alive)."""
    with tempfile.TemporaryFile() as log:
        process = _launch(name, port_env, env, log)
        try:
            await _wait_serving(process)
            yield process
        finally:
            process.terminate()


def _launch(name: str, port_env: str, env: dict[str, str], log: IO[bytes]) -> ServiceProcess:
    port = free_port()
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(_SERVICE_PREFIXES)}
    child_env.update(env)
    child_env.update({port_env: str(port), "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "info"})
    # No preexec_fn: Python code between fork and exec in a process full of gRPC threads crashed
    # about one spawn in 25. The child asks for the parent-death signal itself, after exec.
    proc = subprocess.Popen(
        [sys.executable, "-c", _DIE_WITH_PARENT_THEN_RUN.format(module=f"services.{name}")],
        cwd=REPO_ROOT,
        env=child_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return ServiceProcess(proc, port, log, name)


async def _wait_serving(process: ServiceProcess) -> None:
    deadline = time.monotonic() + 30
    async with grpc.aio.insecure_channel(f"127.0.0.1:{process.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            if process.proc.poll() is not None:
                raise AssertionError(f"{process.name} exited with {process.proc.returncode}:\n{process.output()}")
            try:
                answer = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{process.name} not serving within 30 s:\n{process.output()}")
            await asyncio.sleep(0.2)
