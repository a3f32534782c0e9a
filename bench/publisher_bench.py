"""Publisher figures for issue 5: the whole Container A side on this machine.

Starts chainsim (real validation), signer_gateway, utxo and publisher as separate processes on a
fresh PostgreSQL database and this machine's Redis, funds the publish pool with one confirmed UTXO per
intent to come, registers an identity, signs every intent up front, and then:

1. sustained: PublishBatch calls (500 intents each) keep the queue fed (never more than
   BENCH_PUBLISHER_MAX_QUEUED QUEUED jobs) for BENCH_PUBLISHER_SECONDS (default 60); printed: jobs
   that reached SENT per second (intent accepted → network accepted), counted from the jobs' sent_at
   in PostgreSQL over the window after a warm-up;
2. latency: unary Publish calls at a fixed BENCH_PUBLISHER_RATE (default 300/s) for
   BENCH_PUBLISHER_LATENCY_SECONDS (default 20); printed: submit latency p50/p99 and how far SENT
   kept up;
3. memory: every process's RSS sampled each second; printed: peak while intents flow (the target),
   the average of the first and last tenth of that window (flat or not), and, apart, the peak while
   the pool was being funded;
4. where the time goes: CPU seconds per process over the sustained window, and the publisher's
   per-stage batch timings (from its Prometheus metrics).

Environment: BENCH_DATABASE_SERVER_URL, BENCH_REDIS_URL, BENCH_PUBLISHER_SECONDS (60),
BENCH_PUBLISHER_WARMUP_SECONDS (10), BENCH_PUBLISHER_LATENCY_SECONDS (20), BENCH_PUBLISHER_RATE (300),
BENCH_PUBLISHER_WORKERS (4), BENCH_PUBLISHER_BATCH (500), BENCH_PUBLISHER_MAX_QUEUED (5000),
BENCH_PUBLISHER_POOL_KEYS (8: the pool's UTXOs are spread over this many signer keys, because
signer_gateway serializes SignTransaction per key),
BENCH_PUBLISHER_IDENTITIES (32: intents are signed by this many registered identity keys),
BENCH_PUBLISHER_SIGN_MODE (policy: SignTransactions, the signer checks every transaction; batch: one blind
Sign per batch),
BENCH_PUBLISHER_CAPACITY (intents to fund for the sustained phase; default 2500/s x duration).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import httpx
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc
from proofline.common.v1 import common_pb2
from proofline.publisher.v1 import publisher_pb2, publisher_pb2_grpc
from proofline.signer.v1 import signer_pb2, signer_pb2_grpc
from proofline.utxo.v1 import utxo_pb2, utxo_pb2_grpc

from bench.measure import free_port, percentile, postgres_cpu_s, process_children
from proofline_tools.signed_intents import IdentityKey, intent_body

ROOT = Path(__file__).resolve().parent.parent
SERVER_URL = os.environ.get("BENCH_DATABASE_SERVER_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SECONDS = float(os.environ.get("BENCH_PUBLISHER_SECONDS", "60"))
WARMUP_S = float(os.environ.get("BENCH_PUBLISHER_WARMUP_SECONDS", "10"))
LATENCY_SECONDS = float(os.environ.get("BENCH_PUBLISHER_LATENCY_SECONDS", "20"))
RATE = int(os.environ.get("BENCH_PUBLISHER_RATE", "300"))
WORKERS = os.environ.get("BENCH_PUBLISHER_WORKERS", "4")
BATCH = int(os.environ.get("BENCH_PUBLISHER_BATCH", "500"))
IDENTITIES = int(os.environ.get("BENCH_PUBLISHER_IDENTITIES", "32"))
SIGN_MODE = os.environ.get("BENCH_PUBLISHER_SIGN_MODE", "policy")
POOL_KEYS = int(os.environ.get("BENCH_PUBLISHER_POOL_KEYS", "8"))
MAX_QUEUED = int(os.environ.get("BENCH_PUBLISHER_MAX_QUEUED", "5000"))
CAPACITY = int(os.environ.get("BENCH_PUBLISHER_CAPACITY", str(int(2500 * (SECONDS + WARMUP_S)))))
TARGET_TPS = 1000
MEMORY_LIMIT = 300 << 20
UTXO_VALUE = 1_000
POOL_KEY = "bench-pool"
TOKENS = {
    "admin": "bench-admin-token",
    "publisher": "bench-publisher-token",
    "utxo": "bench-utxo-token",
    "client": "bench-client-token",
}
AUTH_TOKENS = (
    f"admin:admin:{TOKENS['admin']},publisher:pool:{TOKENS['publisher']},utxo:service:{TOKENS['utxo']},"
    f"client:publish+registrar:{TOKENS['client']}"
)
ADMIN = (("authorization", f"Bearer {TOKENS['admin']}"),)
CLIENT = (("authorization", f"Bearer {TOKENS['client']}"),)
AUDIENCE = "proofline-bench"


@dataclass
class Proc:
    name: str
    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    rss: list[int] = field(default_factory=list)  # sampled while intents flow (the target's window)
    setup_rss: list[int] = field(default_factory=list)  # sampled while the pool is funded

    def tree(self, children: dict[int, list[int]]) -> list[int]:
        """The process and its descendants (the signer signs in worker processes)."""
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo += children.get(pid, [])
        return found

    def stat_cpu_s(self, children: dict[int, list[int]] | None = None) -> float:
        total = 0
        for pid in self.tree(children if children is not None else process_children()):
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def sample_rss(self, children: dict[int, list[int]], *, setup: bool) -> None:
        """The largest process of the tree (each process is its own service process budget)."""
        largest = 0
        for pid in self.tree(children):
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        largest = max(largest, int(line.split()[1]) * 1024)
        (self.setup_rss if setup else self.rss).append(largest)

    def tail(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]


@contextlib.contextmanager
def processes() -> Iterator[dict[str, Proc]]:
    running: dict[str, Proc] = {}
    try:
        yield running
    finally:
        for proc in running.values():
            if proc.proc.poll() is None:
                proc.proc.terminate()
        for proc in running.values():
            try:
                proc.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.proc.kill()
                proc.proc.wait(timeout=10)
            proc.log.close()


def spawn(running: dict[str, Proc], name: str, module: str, env: dict[str, str]) -> Proc:
    log = tempfile.TemporaryFile()  # noqa: SIM115 - processes() closes it
    proc = subprocess.Popen(
        [sys.executable, "-m", module], cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
    )
    running[name] = Proc(name, proc, log)
    return running[name]


async def wait_grpc(proc: Proc, port: int) -> None:
    deadline = time.monotonic() + 60
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            if proc.proc.poll() is not None:
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
            with contextlib.suppress(grpc.aio.AioRpcError):
                answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proc.name} not serving within 60 s:\n{proc.tail()}")
            await asyncio.sleep(0.2)


async def wait_http(proc: Proc, url: str) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(trust_env=False) as http:
        while True:
            if proc.proc.poll() is not None:
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url, timeout=1)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proc.name} not answering within 60 s:\n{proc.tail()}")
            await asyncio.sleep(0.2)


def bench_intent(identity: IdentityKey, index: int) -> publisher_pb2.SignedIntent:
    record = {"doc": f"sha256:{hashlib.sha256(str(index).encode()).hexdigest()}", "n": index}
    nonce = f"bench{index:012d}{uuid.uuid4().hex[:8]}"
    return identity.intent(intent_body(record, ttl_s=3000, nonce=nonce, audience=AUDIENCE))


class Bench:
    def __init__(self, running: dict[str, Proc], database_url: str, sim_url: str, ports: dict[str, int]) -> None:
        self.running = running
        self.database_url = database_url
        self.sim = sim_url
        self.ports = ports
        self.http = httpx.AsyncClient(trust_env=False, timeout=120)
        self.signer = signer_pb2_grpc.SignerServiceStub(grpc.aio.insecure_channel(f"127.0.0.1:{ports['signer']}"))
        utxo_channel = grpc.aio.insecure_channel(f"127.0.0.1:{ports['utxo']}")
        self.utxo = utxo_pb2_grpc.UtxoServiceStub(utxo_channel)
        self.utxo_admin = utxo_pb2_grpc.UtxoAdminServiceStub(utxo_channel)
        self.publisher = publisher_pb2_grpc.PublisherServiceStub(
            grpc.aio.insecure_channel(f"127.0.0.1:{ports['publisher']}")
        )
        self.db: asyncpg.Pool | None = None
        self.sampling = True
        self.setting_up = True  # funding the pool and signing intents; no intent flows yet

    def _sample(self) -> None:
        children = process_children()
        for proc in self.running.values():
            proc.sample_rss(children, setup=self.setting_up)

    async def sample_memory(self) -> None:
        # In a thread: scanning /proc on the event loop would show up in the submit latencies.
        while self.sampling:
            await asyncio.to_thread(self._sample)
            await asyncio.sleep(1.0)

    async def cpu_times(self) -> tuple[dict[str, float], float]:
        def read() -> tuple[dict[str, float], float]:
            children = process_children()
            return {name: p.stat_cpu_s(children) for name, p in self.running.items()}, postgres_cpu_s()

        return await asyncio.to_thread(read)

    async def fund_pool(self, count: int) -> None:
        """`count` UTXOs spread over POOL_KEYS signer keys (the signer serializes signings per key)."""
        scripts: dict[str, bytes] = {}
        for index in range(POOL_KEYS):
            key_id = f"{POOL_KEY}-{index}"
            await self.signer.CreateKey(
                signer_pb2.CreateKeyRequest(request_id=f"bench-key-{index}", key_id=key_id), metadata=ADMIN
            )
            key = await self.signer.GetPublicKey(signer_pb2.GetPublicKeyRequest(key_id=key_id), metadata=ADMIN)
            scripts[key_id] = bytes(key.locking_script)
        started = time.monotonic()
        for number, chunk in enumerate(range(0, count, 1000)):
            n = min(1000, count - chunk)
            key_id = f"{POOL_KEY}-{number % POOL_KEYS}"
            script = scripts[key_id]
            funded = (
                await self.http.post(
                    f"{self.sim}/_sim/fund", json={"script_hex": script.hex(), "satoshis": UTXO_VALUE, "count": n}
                )
            ).json()
            outputs = [
                utxo_pb2.NewOutput(
                    outpoint=common_pb2.Outpoint(txid=funded["txid"], vout=vout),
                    satoshis=UTXO_VALUE,
                    locking_script=script,
                    owner_key_id=key_id,
                    purpose=utxo_pb2.UTXO_PURPOSE_PUBLISH,
                )
                for vout in range(n)
            ]
            await self.utxo.AddOutputs(
                utxo_pb2.AddOutputsRequest(request_id=f"add-{chunk}", outputs=outputs), metadata=ADMIN, timeout=60
            )
        await self.utxo_admin.SyncFromChain(
            utxo_pb2.SyncFromChainRequest(request_id="bench-sync", owner_key_ids=list(scripts)),
            metadata=ADMIN,
            timeout=600,
        )
        print(
            f"  pool funded: {count} UTXOs of {UTXO_VALUE} sat over {POOL_KEYS} signer keys"
            f" in {time.monotonic() - started:.1f} s",
            flush=True,
        )

    async def register(self, count: int) -> list[IdentityKey]:
        identities = []
        for index in range(count):
            identity = IdentityKey.generate()
            await self.publisher.RegisterIdentity(
                publisher_pb2.RegisterIdentityRequest(
                    request_id=f"bench-identity-{index}", pubkey=identity.pubkey, label=f"bench {index}"
                ),
                metadata=CLIENT,
            )
            identities.append(identity)
        return identities

    async def counts(self) -> dict[str, int]:
        assert self.db is not None
        rows = await self.db.fetch("SELECT status, count(*) AS n FROM publisher.jobs GROUP BY status")
        return {row["status"]: int(row["n"]) for row in rows}

    async def sent_between(self, start: float, end: float) -> int:
        assert self.db is not None
        value = await self.db.fetchval(
            "SELECT count(*) FROM publisher.jobs WHERE sent_at >= to_timestamp($1) AND sent_at < to_timestamp($2)",
            start,
            end,
        )
        return int(value)

    async def sustained(self, intents: list[publisher_pb2.SignedIntent]) -> tuple[float, float, float, int]:
        """Returns (tx/s SENT over the window, window start, window end, intents submitted)."""
        submitted = 0
        stop = asyncio.Event()

        async def feed() -> None:
            nonlocal submitted
            while not stop.is_set() and submitted < len(intents):
                if (await self.counts()).get("queued", 0) > MAX_QUEUED:
                    await asyncio.sleep(0.05)
                    continue
                chunk = intents[submitted : submitted + BATCH]
                submitted += len(chunk)
                response = await self.publisher.PublishBatch(
                    publisher_pb2.PublishBatchRequest(request_id=f"feed-{submitted}", intents=chunk),
                    metadata=CLIENT,
                    timeout=120,
                )
                refused = [r.error.reason for r in response.results if r.HasField("error")]
                if refused:
                    raise RuntimeError(f"intents refused: {refused[:3]}")

        feeders = [asyncio.create_task(feed()) for _ in range(2)]
        began = time.time()
        await asyncio.sleep(WARMUP_S)
        window_start = time.time()
        cpu_before, pg_before = await self.cpu_times()
        await asyncio.sleep(SECONDS)
        window_end = time.time()
        cpu_after, pg_after = await self.cpu_times()
        stop.set()
        for task in feeders:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        sent = await self.sent_between(window_start, window_end)
        rate = sent / (window_end - window_start)
        print(f"  submitted {submitted} intents in {window_end - began:.0f} s (warm-up {WARMUP_S:.0f} s)")
        print(f"  sustained: {rate:,.0f} tx/s intent→SENT over {window_end - window_start:.0f} s ({sent} jobs)")
        span = window_end - window_start
        print("  CPU over the window (cores busy; each service with its child processes):")
        for name in self.running:
            print(f"    {name:10s} {(cpu_after[name] - cpu_before[name]) / span:5.2f}")
        print(f"    {'postgres':10s} {(pg_after - pg_before) / span:5.2f}  (every backend of the shared server)")
        print(f"    {'machine':10s} {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
        return rate, window_start, window_end, submitted

    async def drain(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            counts = await self.counts()
            if not any(counts.get(s, 0) for s in ("queued", "processing", "signed")):
                return
            await asyncio.sleep(0.5)

    async def latency(self, intents: list[publisher_pb2.SignedIntent]) -> tuple[float, float, float]:
        cpu_before, pg_before = await self.cpu_times()
        client_before = sum(os.times()[:2])
        latencies: list[float] = []
        errors: dict[str, int] = {}
        first_errors: list[str] = []
        interval = 1.0 / RATE
        started = time.monotonic()
        window_start = time.time()
        tasks: list[asyncio.Task[None]] = []

        async def one(intent: publisher_pb2.SignedIntent, index: int) -> None:
            t0 = time.perf_counter()
            try:
                await self.publisher.Publish(
                    publisher_pb2.PublishRequest(request_id=f"lat-{index}", intent=intent), metadata=CLIENT, timeout=30
                )
            except grpc.aio.AioRpcError as error:
                errors[error.code().name] = errors.get(error.code().name, 0) + 1
                if len(first_errors) < 3:
                    first_errors.append(
                        f"{error.code().name}: {error.details()} after {time.perf_counter() - t0:.2f} s"
                    )
                return
            latencies.append(time.perf_counter() - t0)

        for index, intent in enumerate(intents):
            due = started + index * interval
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(intent, index)))
        await asyncio.gather(*tasks)
        window_end = time.time()
        cpu_after, pg_after = await self.cpu_times()
        span = window_end - window_start
        busy = {name: (cpu_after[name] - cpu_before[name]) / span for name in self.running}
        busy["postgres"] = (pg_after - pg_before) / span
        busy["bench client"] = (sum(os.times()[:2]) - client_before) / span
        print("  CPU during the latency run (cores busy): " + ", ".join(f"{k} {v:.2f}" for k, v in busy.items()))
        await self.drain(60)
        sent = await self.sent_between(window_start, time.time())
        if errors:
            print(f"  failed submits: {errors}; first: {first_errors}")
            print(f"  publisher log tail:\n{self.running['publisher'].tail()}")
        p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
        print(
            f"  at {RATE}/s for {LATENCY_SECONDS:.0f} s: submit p50 {p50:.1f} ms, p99 {p99:.1f} ms; "
            f"{sent}/{len(intents)} SENT (offered {len(intents) / (window_end - window_start):.0f}/s)"
        )
        return p50, p99, sent / max(1, len(intents))

    async def stage_timings(self) -> None:
        text = (await self.http.get(f"http://127.0.0.1:{self.ports['publisher_metrics']}/metrics")).text
        sums: dict[str, float] = {}
        counts: dict[str, float] = {}
        jobs: dict[str, float] = {}
        for line in text.splitlines():
            for prefix, target in (
                ("publisher_pipeline_stage_seconds_sum", sums),
                ("publisher_pipeline_stage_seconds_count", counts),
                ("publisher_pipeline_stage_jobs_total", jobs),
            ):
                if line.startswith(prefix + "{"):
                    stage = line.split('stage="', 1)[1].split('"', 1)[0]
                    target[stage] = float(line.rsplit(" ", 1)[1])
        print("  publisher stages (per batch, mean):")
        for stage in ("collect", "lease", "sign", "store", "commit", "broadcast", "settle"):
            if counts.get(stage):
                per_batch = sums[stage] / counts[stage] * 1000
                per_job = sums[stage] / max(1.0, jobs.get(stage, 0)) * 1e6
                size = jobs.get(stage, 0) / counts[stage]
                print(f"    {stage:9s} {per_batch:8.1f} ms/batch  {per_job:7.0f} µs/job  ({size:.0f} jobs/batch)")

    def memory(self) -> bool:
        ok = True
        print("  RSS (MiB) while intents flow: peak / first tenth / last tenth   (peak while the pool was funded)")
        for name, proc in self.running.items():
            if not proc.rss:
                continue
            tenth = max(1, len(proc.rss) // 10)
            first = sum(proc.rss[:tenth]) / tenth / 2**20
            last = sum(proc.rss[-tenth:]) / tenth / 2**20
            peak = max(proc.rss) / 2**20
            setup_peak = max(proc.setup_rss, default=0) / 2**20
            if name != "chainsim" and max(proc.rss) > MEMORY_LIMIT:
                ok = False
            print(f"    {name:10s} {peak:7.0f} / {first:7.0f} / {last:7.0f}   ({setup_peak:.0f})")
        return ok


async def run(running: dict[str, Proc], database_url: str) -> None:
    ports = {name: free_port() for name in ("sim", "signer", "utxo", "publisher", "publisher_metrics")}
    sim_url = f"http://127.0.0.1:{ports['sim']}"
    base = {
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": f"bench{uuid.uuid4().hex[:6]}",
        "PROOFLINE_ENV": "dev",
        "AUTH_TOKENS": AUTH_TOKENS,
        "LOG_LEVEL": "warning",
        "ARC_URL": sim_url,
        "WOC_URL": sim_url,
        "WOC_NETWORK": "test",
        "SIGNER_GRPC_PORT": str(ports["signer"]),
        "UTXO_GRPC_PORT": str(ports["utxo"]),
    }
    sim = spawn(
        running,
        "chainsim",
        "services.chainsim",
        {"CHAINSIM_PORT": str(ports["sim"]), "CHAINSIM_NETWORK": "test", "CHAINSIM_WOC_PAGE_SIZE": "10000"},
    )
    await wait_http(sim, f"{sim_url}/v1/health")
    signer = spawn(
        running,
        "signer",
        "services.signer_gateway",
        {
            **base,
            "SIGNER_METRICS_PORT": "0",
            "SIGNER_MASTER_KEYS": "1:" + base64.b64encode(os.urandom(32)).decode(),
            "SIGNER_ACL": "publisher=bench-*;utxo=bench-*",
            "SIGNER_NETWORK": "testnet",
        },
    )
    await wait_grpc(signer, ports["signer"])
    utxo = spawn(
        running,
        "utxo",
        "services.utxo",
        {
            **base,
            "UTXO_METRICS_PORT": "0",
            "UTXO_MAINTENANCE_ENABLED": "0",
            "UTXO_NETWORK": "testnet",
            "UTXO_MIN_CONFIRMATIONS": "1",
            "UTXO_DB_POOL_SIZE": "10",
            "UTXO_METRICS_REFRESH_MS": "600000",
            "UTXO_SIGNER_ADDR": f"127.0.0.1:{ports['signer']}",
            "UTXO_SIGNER_TOKEN": TOKENS["utxo"],
        },
    )
    await wait_grpc(utxo, ports["utxo"])
    publisher = spawn(
        running,
        "publisher",
        "services.publisher",
        {
            **base,
            "PUBLISHER_GRPC_PORT": str(ports["publisher"]),
            "PUBLISHER_METRICS_PORT": str(ports["publisher_metrics"]),
            "PUBLISHER_AUDIENCE": AUDIENCE,
            "PUBLISHER_WORKERS": WORKERS,
            "PUBLISHER_UTXO_TOKEN": TOKENS["publisher"],
            "PUBLISHER_SIGNER_TOKEN": TOKENS["publisher"],
            "PUBLISHER_CALLBACK_PORT": "0",
            "PUBLISHER_BATCH_MAX_JOBS": "500",
            "PUBLISHER_BATCH_WINDOW_MS": "200",
            "PUBLISHER_DB_POOL_SIZE": "16",
            "PUBLISHER_MAX_QUEUED_JOBS": "1000000",
            "PUBLISHER_SIGN_MODE": SIGN_MODE,
        },
    )
    await wait_grpc(publisher, ports["publisher"])
    bench = Bench(running, database_url, sim_url, ports)
    bench.db = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    sampler = asyncio.create_task(bench.sample_memory())
    try:
        latency_count = int(RATE * LATENCY_SECONDS)
        await bench.fund_pool(CAPACITY + latency_count)
        identities = await bench.register(IDENTITIES)
        started = time.monotonic()
        intents = [bench_intent(identities[i % IDENTITIES], i) for i in range(CAPACITY + latency_count)]
        print(f"  {len(intents)} intents signed in {time.monotonic() - started:.1f} s", flush=True)
        bench.setting_up = False
        print(f"sustained throughput ({WORKERS} workers, batches of up to 500, sign mode {SIGN_MODE}):", flush=True)
        rate, _, _, submitted = await bench.sustained(intents[:CAPACITY])
        if submitted >= CAPACITY:
            print("  note: every funded intent was submitted; raise BENCH_PUBLISHER_CAPACITY for a longer window")
        await bench.drain()
        await bench.stage_timings()
        print(f"submit latency at a fixed {RATE} intents/s:", flush=True)
        await bench.latency(intents[CAPACITY : CAPACITY + latency_count])
        counts = await bench.counts()
        print(f"  jobs by status: {counts}")
        bench.sampling = False
        await sampler
        memory_ok = bench.memory()
        verdict = "meets" if rate >= TARGET_TPS else "below"
        print(f"target {TARGET_TPS} tx/s sustained: {verdict} ({rate:,.0f} tx/s)")
        print(f"target RSS <= 300 MiB per service: {'met' if memory_ok else 'NOT met'}")
    finally:
        bench.sampling = False
        if not sampler.done():
            sampler.cancel()
        await bench.db.close()
        await bench.http.aclose()


def main() -> None:
    database = f"proofline_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')  # type: ignore[arg-type]
    parts = urlsplit(SERVER_URL)
    database_url = urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))
    try:
        with processes() as running:
            asyncio.run(run(running, database_url))
    finally:
        with psycopg.connect(SERVER_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
