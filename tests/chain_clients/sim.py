"""A live chainsim process for the contract tests, and a thin wrapper over its control API."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from tests.chain_clients.wallet import Coin, Key

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: on Linux, SIGTERM chainsim if the test process dies, so a
    killed pytest never leaves a simulator behind."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def chainsim_process(**settings: str) -> Iterator[str]:
    """Run ``python -m services.chainsim`` on a free loopback port until the block exits."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINSIM_")}
    env.update({"CHAINSIM_HOST": "127.0.0.1", "CHAINSIM_PORT": str(port), "CHAINSIM_NETWORK": "test"})
    env.update({f"CHAINSIM_{k.upper()}": v for k, v in settings.items()})
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.chainsim"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        try:
            _wait_ready(proc, base_url, log)
            yield base_url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _wait_ready(proc: subprocess.Popen[bytes], base_url: str, log: Any) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"chainsim exited with {proc.returncode}:\n{log.read().decode(errors='replace')}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/v1/health", timeout=1.0, trust_env=False).status_code == 200:
                return
        time.sleep(0.1)
    log.seek(0)
    raise RuntimeError(f"chainsim did not answer within {START_TIMEOUT_S}s:\n{log.read().decode(errors='replace')}")


class SimControl:
    """The control API (``/_sim``): funding, mining, reorgs, faults, callback log."""

    def __init__(self, http: httpx.AsyncClient, base_url: str) -> None:
        self.http = http
        self.base_url = base_url

    async def _post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = await self.http.post(f"{self.base_url}/_sim/{path}", json=body or {})
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
        return response.json()

    async def reset(self) -> None:
        await self._post("reset")

    async def fund(self, key: Key, satoshis: int = 100_000, count: int = 1) -> list[Coin]:
        body = await self._post("fund", {"address": key.address, "satoshis": satoshis, "count": count})
        return [Coin(body["txid"], o["vout"], o["satoshis"], key, body["raw_hex"]) for o in body["outputs"]]

    async def mine(self, blocks: int = 1) -> list[dict[str, Any]]:
        mined: list[dict[str, Any]] = await self._post("mine", {"blocks": blocks})
        return mined

    async def reorg(self, depth: int = 1, *, drop: Sequence[str] = ()) -> dict[str, Any]:
        result: dict[str, Any] = await self._post("reorg", {"depth": depth, "drop_txids": list(drop)})
        return result

    async def faults(self, config: dict[str, Any]) -> None:
        await self._post("faults", config)

    async def clear_faults(self) -> None:
        response = await self.http.delete(f"{self.base_url}/_sim/faults")
        assert response.status_code == 200, response.text

    async def fault_rules(self) -> list[dict[str, Any]]:
        response = await self.http.get(f"{self.base_url}/_sim/faults")
        rules: list[dict[str, Any]] = response.json()["rules"]
        return rules

    async def callbacks(self, txid: str) -> list[dict[str, Any]]:
        response = await self.http.get(f"{self.base_url}/_sim/callbacks", params={"txid": txid})
        log: list[dict[str, Any]] = response.json()
        return log
