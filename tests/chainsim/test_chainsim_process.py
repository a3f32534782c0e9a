"""``python -m services.chainsim`` as a real process: env config, port 0, SIGTERM, snapshots."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.chainsim.helpers import Coin, Key, ef_hex, spend

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def chainsim_process(**env: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    full = {**os.environ, "CHAINSIM_HOST": "127.0.0.1", "CHAINSIM_PORT": "0", **env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.chainsim"],
        cwd=ROOT,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line, (line, proc.stderr.read() if proc.stderr else "")
        yield proc, line.split("listening on ", 1)[1].split()[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> int:
    proc.send_signal(sig)
    return proc.wait(timeout=20)


def test_env_port_zero_and_graceful_sigterm(tmp_path: Path) -> None:
    snap = tmp_path / "chain.json"
    alice = Key(0xA11CE)
    with chainsim_process(CHAINSIM_SNAPSHOT=str(snap), CHAINSIM_NETWORK="main", CHAINSIM_SNAPSHOT_INTERVAL_S="0") as (
        proc,
        base,
    ):
        with httpx.Client(base_url=base, timeout=10, trust_env=False) as client:
            assert client.get("/v1/bsv/main/chain/info").json()["chain"] == "main"
            funded = client.post("/_sim/fund", json={"address": alice.address, "satoshis": 9_000}).json()
            coin = Coin(funded["txid"], 0, 9_000, alice.lock, alice, funded["raw_hex"])
            tx = spend(coin)
            assert client.post("/v1/tx", json={"rawTx": ef_hex(tx)}).json()["txStatus"] == "SEEN_ON_NETWORK"
            pending = spend(coin, fee=2)  # double spend, kept as a competitor
            assert client.post("/v1/tx", json={"rawTx": ef_hex(pending)}).json()["txStatus"] == "DOUBLE_SPEND_ATTEMPTED"
            before = client.get("/_sim/state").json()
        assert _stop(proc) == 0
        assert proc.stdout is not None and "chainsim stopped" in proc.stdout.read()
    assert snap.exists()
    with chainsim_process(CHAINSIM_SNAPSHOT=str(snap), CHAINSIM_NETWORK="main") as (proc, base):
        with httpx.Client(base_url=base, timeout=10, trust_env=False) as client:
            after = client.get("/_sim/state").json()
            for key in ("height", "tip", "mempool", "utxos", "transactions", "competitors"):
                assert after[key] == before[key], key
            st = client.get(f"/v1/tx/{tx.txid()}").json()
            assert st["txStatus"] == "DOUBLE_SPEND_ATTEMPTED" and st["competingTxs"] == [pending.txid()]
            block = client.post("/_sim/mine", json={}).json()[0]
            assert block["height"] == before["height"] + 1 and tx.txid() in block["txids"]
            assert client.get(f"/v1/tx/{pending.txid()}").json()["txStatus"] == "REJECTED"
        assert _stop(proc, signal.SIGINT) == 0


def test_bad_configuration_exits_2() -> None:
    full = {**os.environ, "CHAINSIM_PROFILE": "lenient", "CHAINSIM_PORT": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "services.chainsim"], cwd=ROOT, env=full, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2 and "CHAINSIM_PROFILE must be one of arc_faithful, strict" in proc.stderr


def test_auto_mining(tmp_path: Path) -> None:
    with chainsim_process(CHAINSIM_MINE_INTERVAL_MS="100") as (proc, base):
        with httpx.Client(base_url=base, timeout=10, trust_env=False) as client:
            import time

            deadline = time.monotonic() + 5
            while client.get("/v1/bsv/test/chain/info").json()["blocks"] < 3:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert _stop(proc) == 0
