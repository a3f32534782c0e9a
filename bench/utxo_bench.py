"""UTXO pool throughput and lease latency.

Starts a real utxo service process on a fresh database (PostgreSQL from BENCH_DATABASE_SERVER_URL or
this machine's), fills the pool with COPY, and drives it over gRPC from this process:

* lease latency p50/p99 (one client: LeaseUtxos count=1, then ReleaseLease) with 1k, 100k and 1M
  AVAILABLE rows in the pool;
* UTXOs leased and committed per second with 1 and 8 concurrent workers, each looping LeaseUtxos
  (count = BENCH_UTXO_BATCH, default 100; also 5x that) then one CommitSpend of one spend per UTXO;
  with no outputs to track, and with one change output per spend (what a publisher batch commits).

The server, the client and PostgreSQL share this machine's cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import psycopg
from proofline.utxo.v1 import utxo_pb2, utxo_pb2_grpc

from bench.measure import free_port, percentile
from proofline_kit.database import apply_migrations
from services.utxo.store import MIGRATIONS

SERVER_URL = os.environ.get("BENCH_DATABASE_SERVER_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
TOKEN = "bench-pool-token"
METADATA = (("authorization", f"Bearer {TOKEN}"),)
DURATION_S = float(os.environ.get("BENCH_UTXO_SECONDS", "5"))
BATCH = int(os.environ.get("BENCH_UTXO_BATCH", "100"))
LATENCY_SAMPLES = int(os.environ.get("BENCH_UTXO_LATENCY_SAMPLES", "2000"))
POOL_SIZES = [int(n) for n in os.environ.get("BENCH_UTXO_POOL_SIZES", "1000,100000,1000000").split(",")]
SCRIPT = bytes.fromhex("76a914" + "22" * 20 + "88ac")
OWNER = "bench-publish-key"
COPY_COLUMNS = ["txid", "vout", "satoshis", "locking_script", "owner_key_id", "purpose", "status", "block_height"]


@dataclass
class Throughput:
    workers: int
    batch: int
    utxos_per_s: float
    lease_p50_ms: float
    commit_p50_ms: float
    cycle_p99_ms: float


async def fill(database_url: str, rows: int) -> None:
    """Top the pool up with AVAILABLE publish outpoints (COPY, 100k rows per round)."""
    conn = await asyncpg.connect(database_url)
    try:
        done = 0
        while done < rows:
            chunk = min(100_000, rows - done)
            txid = os.urandom(32).hex()
            records = [
                (txid, vout, 1_000 + (vout % 97), SCRIPT, OWNER, "publish", "available", 100) for vout in range(chunk)
            ]
            await conn.copy_records_to_table(
                "utxos",
                records=records,
                columns=[
                    "txid",
                    "vout",
                    "satoshis",
                    "locking_script",
                    "owner_key_id",
                    "purpose",
                    "status",
                    "block_height",
                ],
                schema_name="utxo",
            )
            done += chunk
        await conn.execute("VACUUM ANALYZE utxo.utxos")
        # Flush the fill's dirty pages now, not during the latency samples that follow.
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def lease_latency(stub: utxo_pb2_grpc.UtxoServiceAsyncStub) -> tuple[float, float]:
    latencies: list[float] = []
    for _ in range(LATENCY_SAMPLES):
        request = utxo_pb2.LeaseUtxosRequest(
            request_id=uuid.uuid4().hex, purpose=utxo_pb2.UTXO_PURPOSE_PUBLISH, count=1
        )
        start = time.perf_counter()
        lease = (await stub.LeaseUtxos(request, metadata=METADATA, timeout=10)).lease
        latencies.append(time.perf_counter() - start)
        await stub.ReleaseLease(
            utxo_pb2.ReleaseLeaseRequest(request_id=uuid.uuid4().hex, lease_id=lease.lease_id),
            metadata=METADATA,
            timeout=10,
        )
    return percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000


async def throughput(
    stub: utxo_pb2_grpc.UtxoServiceAsyncStub, workers: int, batch: int, with_change: bool
) -> Throughput:
    leased = 0
    lease_times: list[float] = []
    commit_times: list[float] = []
    cycles: list[float] = []
    stop_at = time.perf_counter() + DURATION_S

    async def worker() -> None:
        nonlocal leased
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            lease = (
                await stub.LeaseUtxos(
                    utxo_pb2.LeaseUtxosRequest(
                        request_id=uuid.uuid4().hex, purpose=utxo_pb2.UTXO_PURPOSE_PUBLISH, count=batch
                    ),
                    metadata=METADATA,
                    timeout=30,
                )
            ).lease
            leased_at = time.perf_counter()
            # The client shares the cores with the server and PostgreSQL: build the request in place
            # (add() into the repeated field, the lease's own outpoint messages, one urandom call).
            request = utxo_pb2.CommitSpendRequest(
                request_id=uuid.uuid4().hex, lease_id=lease.lease_id, fencing_token=lease.fencing_token
            )
            add = request.spends.add
            txids = os.urandom(32 * len(lease.utxos)).hex()
            for index, utxo in enumerate(lease.utxos):
                txid = txids[64 * index : 64 * index + 64]
                if with_change:
                    change = utxo_pb2.SpendOutput(
                        vout=1,
                        satoshis=utxo.satoshis - 1,
                        locking_script=SCRIPT,
                        owner_key_id=OWNER,
                        purpose=utxo_pb2.UTXO_PURPOSE_PUBLISH,
                    )
                    add(txid=txid, inputs=[utxo.outpoint], outputs=[change])
                else:
                    add(txid=txid, inputs=[utxo.outpoint])
            await stub.CommitSpend(request, metadata=METADATA, timeout=30)
            done = time.perf_counter()
            lease_times.append(leased_at - start)
            commit_times.append(done - leased_at)
            cycles.append(done - start)
            leased += len(lease.utxos)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    elapsed = time.perf_counter() - began
    return Throughput(
        workers,
        batch,
        leased / elapsed,
        percentile(lease_times, 0.5) * 1000,
        percentile(commit_times, 0.5) * 1000,
        percentile(cycles, 0.99) * 1000,
    )


async def wait_ready(port: int) -> None:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = utxo_pb2_grpc.UtxoServiceStub(channel)
    for _ in range(150):
        try:
            await stub.GetPoolHealth(utxo_pb2.GetPoolHealthRequest(), metadata=METADATA, timeout=2)
            break
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            await asyncio.sleep(0.2)
    await channel.close()


async def run(port: int, database_url: str) -> None:
    await wait_ready(port)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub: utxo_pb2_grpc.UtxoServiceAsyncStub = utxo_pb2_grpc.UtxoServiceStub(channel)  # type: ignore[assignment]
    print("utxo: lease latency (one client, LeaseUtxos count=1 then ReleaseLease)", flush=True)
    print(f"  {'pool rows':>10} {'p50 ms':>8} {'p99 ms':>8}   (fill time)", flush=True)
    filled = 0
    for size in POOL_SIZES:
        start = time.perf_counter()
        await fill(database_url, size - filled)
        filled = size
        took = time.perf_counter() - start
        p50, p99 = await lease_latency(stub)
        print(f"  {size:>10,} {p50:>8.2f} {p99:>8.2f}   ({took:.0f} s)", flush=True)
    print(
        "utxo: UTXOs leased and committed per second (each worker: LeaseUtxos count=<batch>, then one CommitSpend "
        f"of <batch> one-input spends; pool of {filled:,} rows)",
        flush=True,
    )
    print(
        f"  {'workers':>7} {'batch':>5} {'change outputs':>14} {'UTXOs/s':>10} {'lease p50 ms':>12} "
        f"{'commit p50 ms':>13} {'cycle p99 ms':>12}"
    )
    for workers, batch, with_change in (
        (1, BATCH, False),
        (8, BATCH, False),
        (8, 5 * BATCH, False),
        (1, BATCH, True),
        (8, BATCH, True),
    ):
        result = await throughput(stub, workers, min(batch, 1000), with_change)
        print(
            f"  {result.workers:>7} {result.batch:>5} {'1 per spend' if with_change else 'none':>14} "
            f"{result.utxos_per_s:>10,.0f} {result.lease_p50_ms:>12.1f} {result.commit_p50_ms:>13.1f} "
            f"{result.cycle_p99_ms:>12.1f}",
            flush=True,
        )
    await channel.close()


def main() -> None:
    database = f"proofline_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')  # type: ignore[arg-type]
    parts = urlsplit(SERVER_URL)
    database_url = urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))
    apply_migrations(database_url, "utxo", [MIGRATIONS])
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": f"bench{uuid.uuid4().hex[:6]}",
        "UTXO_GRPC_PORT": str(port),
        "UTXO_METRICS_PORT": "0",
        "UTXO_DB_POOL_SIZE": "10",
        "UTXO_MAINTENANCE_ENABLED": "0",
        "UTXO_METRICS_REFRESH_MS": "600000",
        "AUTH_TOKENS": f"bench:pool:{TOKEN}",
        "LOG_LEVEL": "warning",
    }
    server = subprocess.Popen([sys.executable, "-m", "services.utxo"], env=env)
    try:
        asyncio.run(run(port, database_url))
    finally:
        server.terminate()
        server.wait(timeout=30)
        with psycopg.connect(SERVER_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
