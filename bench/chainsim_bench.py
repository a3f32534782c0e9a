"""chainsim figures for issue 3: POST /v1/txs throughput and memory with 1M UTXOs.

1. Throughput: a real chainsim process (pinned to one core) is funded with N outputs; N signed
   one-input two-output P2PKH transactions (Extended Format) are built up front, then posted with
   ``POST /v1/txs`` in batches. Every transaction is validated for real (FORKID sighash, low-S ECDSA
   with libsecp256k1) and must come back SEEN_ON_NETWORK. Printed: tx/s over wall time and per
   server CPU second.
2. Memory: a fresh chainsim process is funded with 1,000,000 confirmed UTXOs over the control API
   (1,000 addresses x 1,000 outputs); printed: the server's resident memory (VmRSS).

Environment: BENCH_CHAINSIM_TXS (default 30000), BENCH_CHAINSIM_BATCH (500), BENCH_CHAINSIM_UTXOS
(1000000).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import httpx
from bsv import P2PKH, PrivateKey, Script, Transaction, TransactionInput, TransactionOutput
from bsv.constants import Network

from services.chainsim.chain.txcodec import to_ef

TXS = int(os.environ.get("BENCH_CHAINSIM_TXS", "30000"))
BATCH = int(os.environ.get("BENCH_CHAINSIM_BATCH", "500"))
UTXOS = int(os.environ.get("BENCH_CHAINSIM_UTXOS", "1000000"))
TARGET_TPS = 3000
MEMORY_LIMIT = 1 << 30


@dataclass
class Server:
    proc: subprocess.Popen[str]
    base: str

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("VmRSS not found")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_server(cpu: int | None) -> Server:
    env = {**os.environ, "CHAINSIM_PORT": "0", "CHAINSIM_HOST": "127.0.0.1"}
    env.pop("CHAINSIM_SNAPSHOT", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.chainsim"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on " not in line:
        proc.kill()
        raise RuntimeError(f"chainsim did not start: {line!r}")
    if cpu is not None:
        os.sched_setaffinity(proc.pid, {cpu})
    base = line.split("listening on ", 1)[1].split()[0]
    return Server(proc, base)


def build_txs(funding: dict[str, Any], key: Any, count: int) -> list[str]:
    """``count`` signed 1-in-2-out P2PKH transactions as EF hex, one per funding output."""
    lock = P2PKH().lock(key.address(network=Network.TESTNET))
    lock_bytes = bytes(lock.serialize())
    dest = P2PKH().lock(PrivateKey(0xB0B).address(network=Network.TESTNET))
    out: list[str] = []
    unlock = P2PKH().unlock(key)
    for o in funding["outputs"][:count]:
        inp = TransactionInput(
            source_txid=funding["txid"], source_output_index=o["vout"], unlocking_script_template=unlock
        )
        inp.satoshis = o["satoshis"]
        inp.locking_script = lock
        sats = o["satoshis"]
        tx = Transaction([inp], [TransactionOutput(dest, 1_000), TransactionOutput(Script(lock_bytes), sats - 1_001)])
        tx.sign()
        out.append(to_ef(tx.serialize(), [(sats, lock_bytes)]).hex())
    return out


async def post_all(base: str, txs: list[str], batch: int) -> tuple[float, list[float]]:
    """Post every batch (two requests in flight); return (elapsed seconds, per-request latencies)."""
    batches = [txs[i : i + batch] for i in range(0, len(txs), batch)]
    latencies: list[float] = []
    sem = asyncio.Semaphore(2)
    async with httpx.AsyncClient(base_url=base, timeout=120.0, trust_env=False) as client:

        async def send(chunk: list[str]) -> None:
            async with sem:
                t0 = time.perf_counter()
                r = await client.post("/v1/txs", json=[{"rawTx": h} for h in chunk])
                latencies.append(time.perf_counter() - t0)
                r.raise_for_status()
                statuses = [e.get("txStatus") for e in r.json()]
                bad = [s for s in statuses if s != "SEEN_ON_NETWORK"]
                if bad or len(statuses) != len(chunk):
                    raise RuntimeError(f"unexpected results: {bad[:3]} ({len(statuses)} of {len(chunk)})")

        start = time.perf_counter()
        await asyncio.gather(*(send(b) for b in batches))
        return time.perf_counter() - start, latencies


def throughput(count: int, batch: int) -> tuple[float, float, float, float]:
    cpus = sorted(os.sched_getaffinity(0))
    server = start_server(cpus[0] if len(cpus) > 1 else None)
    if len(cpus) > 1:
        os.sched_setaffinity(0, set(cpus[1:]))
    try:
        key = PrivateKey(0xA11CE)
        address = key.address(network=Network.TESTNET)
        with httpx.Client(base_url=server.base, timeout=120.0, trust_env=False) as client:
            r = client.post("/_sim/fund", json={"address": address, "satoshis": 10_000, "count": count})
            r.raise_for_status()
            funding = r.json()
        print(f"building {count} signed transactions ...", flush=True)
        txs = build_txs(funding, key, count)
        cpu0 = server.cpu_seconds()
        elapsed, latencies = asyncio.run(post_all(server.base, txs, batch))
        cpu = server.cpu_seconds() - cpu0
        latencies.sort()
        p50 = latencies[len(latencies) // 2]
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        return count / elapsed, count / cpu if cpu else float("inf"), p50, p99
    finally:
        server.stop()
        os.sched_setaffinity(0, set(cpus))


def memory(utxos: int) -> tuple[int, int, int]:
    server = start_server(None)
    try:
        base_rss = server.rss_bytes()
        per_call = 1_000
        calls = (utxos + per_call - 1) // per_call
        with httpx.Client(base_url=server.base, timeout=120.0, trust_env=False) as client:
            for i in range(calls):
                address = PrivateKey(0x10000 + i).address(network=Network.TESTNET)
                n = min(per_call, utxos - i * per_call)
                r = client.post("/_sim/fund", json={"address": address, "satoshis": 5_000, "count": n})
                r.raise_for_status()
            state = client.get("/_sim/state").json()
        return int(state["utxos"]), server.rss_bytes(), base_rss
    finally:
        server.stop()


def main() -> None:
    tps, per_cpu, p50, p99 = throughput(TXS, BATCH)
    print(
        f"chainsim POST /v1/txs: {tps:,.0f} tx/s wall ({per_cpu:,.0f} tx per server CPU-second), "
        f"{TXS} 1-in-2-out P2PKH txs in batches of {BATCH}, p50 {p50 * 1000:.0f} ms p99 {p99 * 1000:.0f} ms "
        f"per request [target >= {TARGET_TPS:,} tx/s: {'PASS' if tps >= TARGET_TPS else 'FAIL'}]",
        flush=True,
    )
    count, rss, base = memory(UTXOS)
    print(
        f"chainsim memory: {count:,} UTXOs held in {rss / 2**20:,.0f} MiB RSS "
        f"(empty chainsim {base / 2**20:,.0f} MiB) [target < 1,024 MiB: {'PASS' if rss < MEMORY_LIMIT else 'FAIL'}]",
        flush=True,
    )


if __name__ == "__main__":
    main()
