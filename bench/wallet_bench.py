"""Wallet figures for issue 13: the whole Container B money side on this machine.

Starts chainsim, signer_gateway, utxo and the wallet as separate processes (``python -m
services.<name>``) on a fresh PostgreSQL database and this machine's Redis, and then:

1. sends: BENCH_WALLET_ACCOUNTS accounts (1,000), each with BENCH_WALLET_COINS credited deposits of
   BENCH_WALLET_COIN_SATOSHIS (funded on chainsim with ``count``, mined, followed and credited by the
   wallet at WALLET_MIN_CONFIRMATIONS=1). BENCH_WALLET_CLIENTS concurrent callers Send from them in
   turn (1,000-5,000 sat to an outside address; answered once recorded) for a warm-up and
   BENCH_WALLET_SECONDS, holding back while BENCH_WALLET_MAX_IN_FLIGHT sends are PENDING or SENDING,
   and chainsim mines a block every BENCH_WALLET_BLOCK_INTERVAL_S. The wallet spends its own change
   as soon as the network accepted the send that made it (to WALLET_UNCONFIRMED_DEPTH), so one coin
   per account is a supply that never runs out: the rate is the steady state, not a pre-funded
   window's. The wallet runs rounds of 500 sends with 16 database
   connections (WALLET_SEND_BATCH, WALLET_DB_POOL_SIZE; any WALLET_* variable set for the bench
   passes through to the wallet). Printed: sends that reached UNCONFIRMED per second over
   the window (accepted_at in PostgreSQL), Send latency p50/p99 (this client), Send recorded ->
   UNCONFIRMED p50/p99 (created_at -> accepted_at), the coin supply, CPU per process (and what else
   kept this machine busy) and the server time of every RPC the services answered (their Prometheus
   histograms). Then Sends at a fixed BENCH_WALLET_LATENCY_LOAD (half) of that rate for
   BENCH_WALLET_LATENCY_SECONDS: the same latencies without the queue;
2. GetBalance p50/p99 over gRPC (one call at a time) for an account with 1,000 ledger postings and one
   with 1,000,000, seeded by SQL as balanced reserve/release pairs (the migration's trigger projects
   them onto the books, which stay the sum of their postings);
3. deposit scanning: BENCH_WALLET_SCAN_SCRIPTS (1,000,000) issued deposit scripts inserted by SQL
   for one account; BENCH_WALLET_SCAN_BLOCKS blocks of BENCH_WALLET_SCAN_TXS transactions with
   BENCH_WALLET_SCAN_OUTPUTS outputs each (one output in BENCH_WALLET_SCAN_MATCH_EVERY pays an issued
   deposit address, the rest random P2PKH scripts), mined back to back once the running wallet has
   read them from the mempool; outputs/s from one ``scanned_blocks`` row to the next. Then the wallet
   is stopped and the same round runs in this process (a DepositFollower on the same database and
   chainsim), timed by stage, once more under cProfile, and on a block of BENCH_WALLET_SCAN_SMALL_TXS
   two-output transactions;
4. memory: the peak RSS (VmHWM) of every process, read at the end.

BENCH_WALLET_PROFILE=1 runs the wallet under cProfile and stops after the sends (slower: not a
figure), printing where its time went. BENCH_WALLET_PARTS (sends,balance,scan) picks the parts.

Environment: BENCH_DATABASE_SERVER_URL, BENCH_REDIS_URL, BENCH_WALLET_SECONDS (60),
BENCH_WALLET_WARMUP_SECONDS (10), BENCH_WALLET_ACCOUNTS (1000), BENCH_WALLET_COINS (1),
BENCH_WALLET_COIN_SATOSHIS (1000000), BENCH_WALLET_CLIENTS (64), BENCH_WALLET_MAX_IN_FLIGHT (1000),
BENCH_WALLET_BLOCK_INTERVAL_S (5), BENCH_WALLET_LATENCY_SECONDS (20), BENCH_WALLET_LATENCY_LOAD
(0.5), BENCH_WALLET_BALANCE_CALLS (2000), BENCH_WALLET_BALANCE_POSTINGS (1000,1000000),
BENCH_WALLET_SCAN_SCRIPTS (1000000), BENCH_WALLET_SCAN_BLOCKS (3), BENCH_WALLET_SCAN_TXS (5000),
BENCH_WALLET_SCAN_OUTPUTS (20), BENCH_WALLET_SCAN_MATCH_EVERY (1000), BENCH_WALLET_SCAN_SMALL_TXS
(10000: the in-process round's block of two-output transactions), BENCH_WALLET_BUDGET_S (540: the
whole run), BENCH_WALLET_PROFILE (0), BENCH_WALLET_PARTS (sends,balance,scan).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import cProfile
import hashlib
import os
import pstats
import random
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import httpx
import psycopg
from proofline.wallet.v1 import wallet_pb2, wallet_pb2_grpc

from bench.measure import (
    command_cpu_s,
    free_port,
    machine_busy_s,
    peak_rss_bytes,
    percentile,
    postgres_cpu_split,
    process_children,
)
from bench.publisher_bench import Proc, processes, wait_grpc, wait_http
from proofline_kit.chain import Broadcaster, open_chain_clients
from proofline_kit.chain.merkle import MerkleTree
from proofline_kit.database import create_pool
from proofline_kit.rpc.status import from_rpc_error
from proofline_kit.settings import EnvReader
from services.wallet.adapters.chain import ChainAdapter
from services.wallet.adapters.pool_client import PoolClient
from services.wallet.adapters.woc_deposit_source import WocDepositSource
from services.wallet.domain.deposit_feed import BlockContents, ChainBlock, SeenTransaction
from services.wallet.domain.deposits import DepositFollower
from services.wallet.domain.ports import ScannedDeposit
from services.wallet.settings import read_wallet_settings
from services.wallet.store import WalletStore, WalletUnitOfWork

ROOT = Path(__file__).resolve().parent.parent
SERVER_URL = os.environ.get("BENCH_DATABASE_SERVER_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SECONDS = float(os.environ.get("BENCH_WALLET_SECONDS", "60"))
WARMUP_S = float(os.environ.get("BENCH_WALLET_WARMUP_SECONDS", "10"))
ACCOUNTS = int(os.environ.get("BENCH_WALLET_ACCOUNTS", "1000"))
COINS = int(os.environ.get("BENCH_WALLET_COINS", "1"))
COIN_SATOSHIS = int(os.environ.get("BENCH_WALLET_COIN_SATOSHIS", "1000000"))
CLIENTS = int(os.environ.get("BENCH_WALLET_CLIENTS", "64"))
MAX_IN_FLIGHT = int(os.environ.get("BENCH_WALLET_MAX_IN_FLIGHT", "1000"))
BLOCK_INTERVAL_S = float(os.environ.get("BENCH_WALLET_BLOCK_INTERVAL_S", "5"))
LATENCY_SECONDS = float(os.environ.get("BENCH_WALLET_LATENCY_SECONDS", "20"))
LATENCY_LOAD = float(os.environ.get("BENCH_WALLET_LATENCY_LOAD", "0.5"))
BALANCE_CALLS = int(os.environ.get("BENCH_WALLET_BALANCE_CALLS", "2000"))
BALANCE_POSTINGS = [int(n) for n in os.environ.get("BENCH_WALLET_BALANCE_POSTINGS", "1000,1000000").split(",")]
SCAN_SCRIPTS = int(os.environ.get("BENCH_WALLET_SCAN_SCRIPTS", "1000000"))
SCAN_BLOCKS = int(os.environ.get("BENCH_WALLET_SCAN_BLOCKS", "3"))
SCAN_TXS = int(os.environ.get("BENCH_WALLET_SCAN_TXS", "5000"))
SCAN_OUTPUTS = int(os.environ.get("BENCH_WALLET_SCAN_OUTPUTS", "20"))
SCAN_MATCH_EVERY = int(os.environ.get("BENCH_WALLET_SCAN_MATCH_EVERY", "1000"))
# The in-process round also scans a block of this many two-output transactions (a common shape).
SMALL_TXS = int(os.environ.get("BENCH_WALLET_SCAN_SMALL_TXS", "10000"))
BUDGET_S = float(os.environ.get("BENCH_WALLET_BUDGET_S", "540"))
PROFILE = os.environ.get("BENCH_WALLET_PROFILE", "0") not in ("", "0")
PARTS = set(os.environ.get("BENCH_WALLET_PARTS", "sends,balance,scan").split(","))

TARGET_SENDS_PER_S = 1000
TARGET_SCAN_OUTPUTS_PER_S = 50_000
MEMORY_LIMIT = 300 << 20
# A testnet P2PKH address nobody in the suite holds: the recipient of every send.
RECIPIENT = "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn"
# Outputs that phase 3's transactions spend: OP_DROP OP_TRUE, unlocked by OP_TRUE (no signing).
ANYONE_SCRIPT = bytes.fromhex("7551")
SCAN_OUTPUT_SATOSHIS = 100
TOKENS = {"admin": "bench-admin-token", "frontend": "bench-frontend-token", "utxo": "bench-utxo-token"}
AUTH_TOKENS = f"admin:admin:{TOKENS['admin']},frontend:wallet:{TOKENS['frontend']},utxo:service:{TOKENS['utxo']}"
FRONTEND = (("authorization", f"Bearer {TOKENS['frontend']}"),)
T = TypeVar("T")


# --- figures ------------------------------------------------------------------------------------


@dataclass
class SendFigures:
    rate: float = 0.0
    accepted: int = 0
    send_p50_ms: float = float("nan")
    send_p99_ms: float = float("nan")
    unconfirmed_p50_ms: float = float("nan")
    unconfirmed_p99_ms: float = float("nan")
    coins: int = 0
    wallet_cpu_ms_per_send: float = float("nan")


@dataclass
class LatencyFigures:
    rate: float = 0.0
    send_p50_ms: float = float("nan")
    send_p99_ms: float = float("nan")
    unconfirmed_p50_ms: float = float("nan")
    unconfirmed_p99_ms: float = float("nan")


@dataclass
class ScanFigures:
    live_outputs_per_s: float = 0.0
    live_block_s: list[float] = field(default_factory=list)
    in_process_outputs_per_s: float = 0.0
    small_txs_outputs_per_s: float = 0.0
    outputs_per_block: int = 0


@dataclass
class Figures:
    sends: SendFigures = field(default_factory=SendFigures)
    latency: LatencyFigures = field(default_factory=LatencyFigures)
    balance_ms: dict[int, tuple[float, float]] = field(default_factory=dict)
    scan: ScanFigures = field(default_factory=ScanFigures)
    rss: dict[str, int] = field(default_factory=dict)


# --- helpers ------------------------------------------------------------------------------------


def spawn(running: dict[str, Proc], name: str, argv: list[str], env: dict[str, str]) -> Proc:
    log = tempfile.TemporaryFile()  # noqa: SIM115 - processes() closes it
    proc = subprocess.Popen(
        [sys.executable, *argv], cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
    )
    running[name] = Proc(name, proc, log)
    return running[name]


def stop(proc: Proc) -> None:
    """SIGTERM and wait (processes() skips a process that has exited)."""
    if proc.proc.poll() is None:
        proc.proc.terminate()
        try:
            proc.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.proc.kill()
            proc.proc.wait(timeout=10)


async def eventually(
    read: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout_s: float, what: str, pause_s: float = 0.2
) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: still not there after {timeout_s:.0f} s ({value})")
        await asyncio.sleep(pause_s)


_METRIC = re.compile(r"^grpc_server_handling_seconds_(sum|count)\{([^}]*)\} ([0-9.e+-]+)$")


def rpc_times(text: str) -> dict[str, tuple[float, float]]:
    """method -> (calls, seconds) from a Prometheus page's grpc_server_handling_seconds."""
    found: dict[str, list[float]] = {}
    for line in text.splitlines():
        match = _METRIC.match(line)
        if match is None:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
        method = labels.get("grpc_method", "?")
        slot = found.setdefault(method, [0.0, 0.0])
        slot[0 if match.group(1) == "count" else 1] += float(match.group(3))
    return {method: (calls, seconds) for method, (calls, seconds) in found.items()}


def ms(values: Sequence[float], fraction: float) -> float:
    return percentile(list(values), fraction) * 1000


def varint(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    return b"\xfe" + n.to_bytes(4, "little")


def txid_of(raw: bytes) -> str:
    return hashlib.sha256(hashlib.sha256(raw).digest()).digest()[::-1].hex()


def spend_anyone(outpoint: tuple[bytes, int], outputs: Sequence[tuple[int, bytes]]) -> bytes:
    """A version-1 transaction spending an ANYONE_SCRIPT output (unlocking script OP_TRUE)."""
    txid, vout = outpoint
    body = b"".join(value.to_bytes(8, "little") + varint(len(script)) + script for value, script in outputs)
    return (
        (1).to_bytes(4, "little")
        + b"\x01"
        + txid
        + vout.to_bytes(4, "little")
        + b"\x01\x51\xff\xff\xff\xff"
        + varint(len(outputs))
        + body
        + bytes(4)
    )


# --- the in-process follower, timed by stage -----------------------------------------------------


class TimedSource:
    """The wallet's WhatsOnChain deposit source, with the time of each call added up by stage."""

    def __init__(self, inner: WocDepositSource, times: defaultdict[str, float]) -> None:
        self._inner = inner
        self.times = times
        self.last_raws: dict[str, bytes] = {}

    async def _timed(self, stage: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            return await call
        finally:
            self.times[stage] += time.perf_counter() - started

    async def tip(self) -> ChainBlock:
        return await self._timed("fetch headers", self._inner.tip())

    async def block_at(self, height: int) -> ChainBlock | None:
        return await self._timed("fetch headers", self._inner.block_at(height))

    async def block_contents(self, block_hash: str) -> BlockContents:
        return await self._timed("fetch txids", self._inner.block_contents(block_hash))

    async def transactions(self, txids: Sequence[str]) -> dict[str, bytes]:
        self.last_raws = await self._timed("fetch raw txs", self._inner.transactions(txids))
        return self.last_raws

    async def mempool_txids(self) -> tuple[str, ...]:
        return await self._timed("fetch mempool", self._inner.mempool_txids())


TIMES: defaultdict[str, float] = defaultdict(float)


class TimedUnitOfWork(WalletUnitOfWork):
    async def match_scripts(self, scripts: Sequence[bytes]) -> dict[bytes, tuple[str, str, str]]:
        started = time.perf_counter()
        try:
            return await super().match_scripts(scripts)
        finally:
            TIMES["match query"] += time.perf_counter() - started


class TimedStore(WalletStore):
    def __init__(self, pool: asyncpg.Pool) -> None:
        super(WalletStore, self).__init__(pool, TimedUnitOfWork)


class TimedFollower(DepositFollower):
    async def _match(self, txs: Sequence[SeenTransaction]) -> tuple[dict[SeenTransaction, list[ScannedDeposit]], int]:
        started = time.perf_counter()
        try:
            return await super()._match(txs)
        finally:
            TIMES["parse + match"] += time.perf_counter() - started

    async def _scan_block(self, block_hash: str, height: int, previous: str, merkle_root: str) -> None:
        started = time.perf_counter()
        try:
            await super()._scan_block(block_hash, height, previous, merkle_root)
        finally:
            TIMES["scan"] += time.perf_counter() - started

    async def settle_round(self) -> int:
        started = time.perf_counter()
        try:
            return await super().settle_round()
        finally:
            TIMES["settle"] += time.perf_counter() - started


# --- the bench ----------------------------------------------------------------------------------


class Bench:
    def __init__(self, running: dict[str, Proc], database_url: str, ports: dict[str, int], wallet_env: dict[str, str]):
        self.running = running
        self.database_url = database_url
        self.database = urlsplit(database_url).path.lstrip("/")
        self.ports = ports
        self.wallet_env = wallet_env
        self.sim = f"http://127.0.0.1:{ports['sim']}"
        self.http = httpx.AsyncClient(trust_env=False, timeout=120)
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{ports['wallet']}")
        self.wallet = wallet_pb2_grpc.WalletServiceStub(self.channel)
        self.db: asyncpg.Pool | None = None
        self.figures = Figures()
        self.accounts: list[tuple[str, str]] = []  # (account_id, deposit address)
        self.rng = random.Random(13)
        self.turn = 0  # the next account to send from
        self.errors: Counter[str] = Counter()
        self.first_errors: list[str] = []
        self.blocks: list[tuple[float, int]] = []  # (time, transactions) of the miner's blocks

    @property
    def pg(self) -> asyncpg.Pool:
        assert self.db is not None
        return self.db

    async def close(self) -> None:
        await self.channel.close()
        await self.http.aclose()
        if self.db is not None:
            await self.db.close()

    async def cpu_times(self) -> dict[str, float]:
        def read() -> dict[str, float]:
            children = process_children()
            times = {name: p.stat_cpu_s(children) for name, p in self.running.items()}
            ours, background, others = postgres_cpu_split(self.database)
            times["postgres"] = ours
            times["pg server"] = background
            times["redis"] = command_cpu_s("redis-server")
            times["bench client"] = sum(os.times()[:2])
            times["pg others"] = others
            times["machine"] = machine_busy_s()
            return times

        return await asyncio.to_thread(read)

    async def rpc_times(self) -> dict[str, dict[str, tuple[float, float]]]:
        pages = {}
        for name in ("wallet", "utxo", "signer"):
            with contextlib.suppress(httpx.HTTPError):
                response = await self.http.get(f"http://127.0.0.1:{self.ports[name + '_metrics']}/metrics", timeout=5)
                pages[name] = rpc_times(response.text)
        return pages

    async def mine(self) -> tuple[int, int]:
        """One block of the whole mempool: (height, transactions besides the coinbase)."""
        response = await self.http.post(f"{self.sim}/_sim/mine", json={"blocks": 1})
        response.raise_for_status()
        block = response.json()[0]
        return int(block["height"]), len(block["txids"]) - 1

    async def count(self, sql: str, *args: object) -> int:
        return int(await self.pg.fetchval(sql, *args))

    # --- set-up ---------------------------------------------------------------------------------

    async def create_accounts(self) -> None:
        started = time.monotonic()
        gate = asyncio.Semaphore(16)

        async def one(index: int) -> tuple[str, str]:
            async with gate:
                account = await self.wallet.CreateAccount(
                    wallet_pb2.CreateAccountRequest(request_id=f"acct-{index}", external_id=f"bench-user-{index}"),
                    metadata=FRONTEND,
                    timeout=60,
                )
                address = await self.wallet.NewDepositAddress(
                    wallet_pb2.NewDepositAddressRequest(
                        request_id=f"addr-{index}", account_id=account.account.account_id
                    ),
                    metadata=FRONTEND,
                    timeout=60,
                )
                return account.account.account_id, address.deposit_address.address

        self.accounts = list(await asyncio.gather(*(one(i) for i in range(ACCOUNTS))))
        print(f"  {ACCOUNTS} accounts with a deposit address each in {time.monotonic() - started:.1f} s", flush=True)

    async def fund_accounts(self) -> None:
        """COINS deposits of COIN_SATOSHIS to every account's address (one funding transaction each),
        one block, then until the wallet has credited them all and the pool holds every coin."""
        started = time.monotonic()
        gate = asyncio.Semaphore(16)

        async def one(address: str) -> None:
            async with gate:
                response = await self.http.post(
                    f"{self.sim}/_sim/fund",
                    json={"address": address, "satoshis": COIN_SATOSHIS, "count": COINS, "confirm": False},
                )
                response.raise_for_status()

        await asyncio.gather(*(one(address) for _, address in self.accounts))
        height, txs = await self.mine()
        await eventually(
            lambda: self.count("SELECT count(*) FROM wallet.wallet_txs WHERE direction = 'incoming' AND credited"),
            lambda n: n >= ACCOUNTS,
            240,
            "deposits credited",
        )
        coins = await eventually(
            self.available_coins, lambda n: n >= ACCOUNTS * COINS, 120, "deposit coins AVAILABLE in the pool"
        )
        print(
            f"  {ACCOUNTS} x {COINS} deposits of {COIN_SATOSHIS:,} sat funded ({txs} transactions, block {height}),"
            f" credited and {coins:,} coins AVAILABLE in the pool in {time.monotonic() - started:.1f} s",
            flush=True,
        )

    async def available_coins(self) -> int:
        return await self.count("SELECT count(*) FROM utxo.utxos WHERE purpose = 'wallet' AND status = 'available'")

    async def in_flight(self) -> int:
        return await self.count(
            "SELECT count(*) FROM wallet.wallet_txs WHERE direction = 'outgoing' AND status IN ('pending', 'sending')"
        )

    # --- 1. sends -------------------------------------------------------------------------------

    async def send_one(self, request_id: str) -> float | str:
        """One Send from the next account: its latency in seconds, or the reason it was refused."""
        account_id, _ = self.accounts[self.turn % len(self.accounts)]
        self.turn += 1
        request = wallet_pb2.SendRequest(
            request_id=request_id,
            account_id=account_id,
            to_address=RECIPIENT,
            amount_satoshis=self.rng.randint(1000, 5000),
        )
        t0 = time.perf_counter()
        try:
            await self.wallet.Send(request, metadata=FRONTEND, timeout=30)
        except grpc.aio.AioRpcError as error:
            reason = from_rpc_error(error, "wallet", "WALLET_UNAVAILABLE").reason
            self.errors[reason] += 1
            if len(self.first_errors) < 3:
                self.first_errors.append(f"{reason}: {error.details()}")
            return reason
        return time.perf_counter() - t0

    async def miner(self) -> None:
        """A block every BLOCK_INTERVAL_S, so that the sends' change comes back to the pool."""
        while True:
            await asyncio.sleep(BLOCK_INTERVAL_S)
            _, txs = await self.mine()
            self.blocks.append((time.time(), txs))

    async def drain(self, timeout_s: float = 60) -> None:
        with contextlib.suppress(RuntimeError):
            await eventually(self.in_flight, lambda n: n == 0, timeout_s, "sends drained", pause_s=0.5)

    async def to_unconfirmed(self, where: str, *args: object) -> list[float]:
        rows = await self.pg.fetch(
            "SELECT extract(epoch FROM accepted_at - created_at)::float8 AS s FROM wallet.wallet_txs"
            f" WHERE direction = 'outgoing' AND accepted_at IS NOT NULL AND {where}",
            *args,
        )
        return [float(r["s"]) for r in rows]

    async def sends(self) -> None:
        """Closed loop: CLIENTS callers Send back to back, holding back at MAX_IN_FLIGHT."""
        figures = self.figures.sends
        figures.coins = await self.available_coins()
        stop = asyncio.Event()
        hold = asyncio.Event()  # set: the clients wait
        latencies: list[tuple[float, float]] = []  # (started, seconds)
        samples: list[tuple[float, int, int]] = []  # (time, in flight, AVAILABLE coins)

        async def client(number: int) -> None:
            sent = 0
            while not stop.is_set():
                if hold.is_set():
                    await asyncio.sleep(0.01)
                    continue
                sent += 1
                started = time.time()
                outcome = await self.send_one(f"send-{number}-{sent}")
                if isinstance(outcome, str):
                    await asyncio.sleep(0.05)
                else:
                    latencies.append((started, outcome))

        async def monitor() -> None:
            while not stop.is_set():
                flying, coins = await self.in_flight(), await self.available_coins()
                samples.append((time.time(), flying, coins))
                if flying >= MAX_IN_FLIGHT:
                    hold.set()
                else:
                    hold.clear()
                await asyncio.sleep(0.5)

        print(
            f"sustained sends: {CLIENTS} clients over {len(self.accounts)} accounts, wallet rounds of"
            f" {self.wallet_env['WALLET_SEND_BATCH']} sends and {self.wallet_env['WALLET_DB_POOL_SIZE']} database"
            f" connections, at most {MAX_IN_FLIGHT}"
            f" PENDING/SENDING, a block every {BLOCK_INTERVAL_S:g} s; coin supply {figures.coins:,} AVAILABLE"
            f" coins of {COIN_SATOSHIS:,} sat",
            flush=True,
        )
        monitoring = asyncio.create_task(monitor())
        clients = [asyncio.create_task(client(n)) for n in range(CLIENTS)]
        try:
            await asyncio.sleep(WARMUP_S)
            window_start = time.time()
            cpu_before, rpc_before = await self.cpu_times(), await self.rpc_times()
            await asyncio.sleep(SECONDS)
            window_end = time.time()
            cpu_after, rpc_after = await self.cpu_times(), await self.rpc_times()
            stop.set()
            await asyncio.gather(*clients, monitoring)
        finally:
            stop.set()
            for task in [*clients, monitoring]:
                task.cancel()
            await asyncio.gather(*clients, monitoring, return_exceptions=True)
        await self.drain()
        span = window_end - window_start
        to_unconfirmed = await self.to_unconfirmed(
            "accepted_at >= to_timestamp($1) AND accepted_at < to_timestamp($2)", window_start, window_end
        )
        in_window = [s for started, s in latencies if window_start <= started < window_end]
        figures.accepted = len(to_unconfirmed)
        figures.rate = figures.accepted / span
        figures.send_p50_ms, figures.send_p99_ms = ms(in_window, 0.5), ms(in_window, 0.99)
        figures.unconfirmed_p50_ms, figures.unconfirmed_p99_ms = ms(to_unconfirmed, 0.5), ms(to_unconfirmed, 0.99)
        wallet_cpu = cpu_after["wallet"] - cpu_before["wallet"]
        figures.wallet_cpu_ms_per_send = wallet_cpu / max(1, figures.accepted) * 1000
        window_samples = [s for s in samples if window_start <= s[0] < window_end] or samples
        window_blocks = [txs for at, txs in self.blocks if window_start <= at < window_end]
        print(
            f"  window {span:.0f} s after a {WARMUP_S:.0f} s warm-up: {len(in_window)} Sends answered,"
            f" {figures.accepted} sends reached UNCONFIRMED: {figures.rate:,.1f} sends/s"
        )
        print(
            f"  Send answered: p50 {figures.send_p50_ms:.1f} ms, p99 {figures.send_p99_ms:.1f} ms;"
            f" recorded -> UNCONFIRMED: p50 {figures.unconfirmed_p50_ms:.0f} ms,"
            f" p99 {figures.unconfirmed_p99_ms:.0f} ms (queueing behind the {MAX_IN_FLIGHT} in flight included)"
        )
        print(
            f"  PENDING+SENDING over the window: mean {sum(s[1] for s in window_samples) / len(window_samples):.0f},"
            f" max {max(s[1] for s in window_samples)}; AVAILABLE coins: start {figures.coins:,},"
            f" min {min(s[2] for s in window_samples):,}, end {window_samples[-1][2]:,};"
            f" {len(window_blocks)} blocks mined {sum(window_blocks)} transactions"
            f" ({', '.join(str(n) for n in window_blocks)})"
        )
        await self.print_pipeline(window_start, window_end)
        change = await self.count(
            """SELECT count(*) FROM utxo.utxos
               WHERE owner_key_id = $1 AND status IN ('unconfirmed', 'available', 'reserved')""",
            self.wallet_env.get("WALLET_CHANGE_KEY_ID", "wallet-change"),
        )
        print(
            f"  the change key holds {change:,} unspent outputs at the end of the window (every send's change goes to"
            " it; the follower's SyncFromChain of it after each block with our sends reads them all)"
        )
        if self.errors:
            print(f"  Send refused: {dict(self.errors)}; first: {self.first_errors}")
        print("  CPU over the window (cores busy; each service with its child processes):")
        busy = {name: (cpu_after[name] - cpu_before[name]) / span for name in cpu_after}
        machine = busy.pop("machine")
        pg_others = busy.pop("pg others")
        notes = {
            "postgres": "this database's backends",
            "pg server": "the server's own processes (checkpointer, WAL writer ...)",
            "redis": "the whole server",
        }
        for name, cores in busy.items():
            print(f"    {name:12s} {cores:5.2f}  {notes.get(name, '')}")
        print(
            f"    {'elsewhere':12s} {machine - sum(busy.values()):5.2f}  other processes on this machine (other"
            f" databases' backends {pg_others:.2f}); {os.cpu_count()} cores busy {machine:.2f} in all"
        )
        print(
            f"  wallet CPU: {wallet_cpu / max(1, len(in_window)) * 1000:.1f} ms per Send answered,"
            f" {figures.wallet_cpu_ms_per_send:.1f} ms per send reaching UNCONFIRMED"
        )
        print("  server time per RPC over the window (calls/s, mean ms, cores busy in handlers):")
        for service, after in rpc_after.items():
            before = rpc_before.get(service, {})
            for method, (calls, seconds) in sorted(after.items(), key=lambda kv: -kv[1][1]):
                calls -= before.get(method, (0.0, 0.0))[0]
                seconds -= before.get(method, (0.0, 0.0))[1]
                if calls >= 1:
                    print(
                        f"    {service:7s} {method:22s} {calls / span:7.1f}/s {seconds / calls * 1000:8.2f} ms"
                        f" {seconds / span:5.2f}"
                    )

    async def print_pipeline(self, window_start: float, window_end: float) -> None:
        """Where the sends of the window waited (recorded -> SIGNED -> UNCONFIRMED, from tx_audit), and
        how far apart a round's sends are signed and accepted (the rounds store one send at a time)."""
        stages = await self.pg.fetchrow(
            """SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY s.signed - t.created_at) AS to_signed,
                      percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY t.accepted_at - s.signed) AS to_accepted
               FROM wallet.wallet_txs t
               JOIN LATERAL (SELECT max(a.created_at) AS signed FROM wallet.tx_audit a
                             WHERE a.transaction_id = t.transaction_id AND a.reason = 'SIGNED') s ON true
               WHERE t.direction = 'outgoing' AND t.accepted_at >= to_timestamp($1)
                 AND t.accepted_at < to_timestamp($2)""",
            window_start,
            window_end,
        )
        reasons = await self.pg.fetch(
            """SELECT reason, count(*) AS n FROM wallet.tx_audit a JOIN wallet.wallet_txs t USING (transaction_id)
               WHERE t.direction = 'outgoing' AND a.created_at >= to_timestamp($1) AND a.created_at < to_timestamp($2)
               GROUP BY reason ORDER BY n DESC""",
            window_start,
            window_end,
        )
        if stages is not None and stages["to_signed"] is not None:
            signed, accepted = stages["to_signed"], stages["to_accepted"]
            print(
                f"  where a send waits: recorded -> SIGNED p50 {signed[0].total_seconds():.2f} s p99"
                f" {signed[1].total_seconds():.2f} s, SIGNED -> UNCONFIRMED p50 {accepted[0].total_seconds():.2f} s"
                f" p99 {accepted[1].total_seconds():.2f} s; audit rows in the window: "
                + ", ".join(f"{r['reason']} {r['n']}" for r in reasons)
            )
        gaps = {
            r["to_status"]: (float(r["p50"]), int(r["n"]))
            for r in await self.pg.fetch(
                """SELECT to_status, percentile_cont(0.5) WITHIN GROUP (ORDER BY gap) AS p50, count(*) AS n FROM (
                       SELECT to_status, extract(epoch FROM created_at - lag(created_at)
                                                 OVER (PARTITION BY to_status ORDER BY audit_id))::float8 AS gap
                       FROM wallet.tx_audit
                       WHERE reason IN ('SIGNED', 'ACCEPTED')
                         AND created_at >= to_timestamp($1) AND created_at < to_timestamp($2)
                   ) g
                   WHERE gap < 0.5 GROUP BY to_status""",
                window_start,
                window_end,
            )
        }
        if gaps:
            signed, accepted = gaps.get("sending", (float("nan"), 0)), gaps.get("unconfirmed", (float("nan"), 0))
            print(
                "  the pipeline moves one send at a time within a round (tx_audit): a SIGNED row every"
                f" {signed[0] * 1000:.1f} ms (the signed-tx transaction, CommitSpend, mark committed), an ACCEPTED"
                f" row every {accepted[0] * 1000:.1f} ms (medians of the {signed[1]} and {accepted[1]} gaps under"
                " 0.5 s)"
            )

    async def latency_at(self, rate: float) -> None:
        """Open loop: Sends at a fixed `rate` for LATENCY_SECONDS, well below what the wallet sustains,
        so that the latencies are the path's and not the queue's."""
        figures = self.figures.latency
        figures.rate = rate
        print(f"send latency at a fixed {rate:,.1f} Sends/s for {LATENCY_SECONDS:.0f} s:", flush=True)
        latencies: list[float] = []
        refused = 0

        async def one(index: int) -> None:
            nonlocal refused
            outcome = await self.send_one(f"lat-{index}")
            if isinstance(outcome, str):
                refused += 1
            else:
                latencies.append(outcome)

        tasks = []
        started = time.monotonic()
        for index in range(max(1, int(rate * LATENCY_SECONDS))):
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(index)))
        await asyncio.gather(*tasks)
        await self.drain()
        to_unconfirmed = await self.to_unconfirmed("request_id LIKE 'lat-%'")
        figures.send_p50_ms, figures.send_p99_ms = ms(latencies, 0.5), ms(latencies, 0.99)
        figures.unconfirmed_p50_ms, figures.unconfirmed_p99_ms = ms(to_unconfirmed, 0.5), ms(to_unconfirmed, 0.99)
        print(
            f"  {len(tasks)} Sends, {refused} refused, {len(to_unconfirmed)} reached UNCONFIRMED: Send p50"
            f" {figures.send_p50_ms:.1f} ms p99 {figures.send_p99_ms:.1f} ms; recorded -> UNCONFIRMED p50"
            f" {figures.unconfirmed_p50_ms:.0f} ms p99 {figures.unconfirmed_p99_ms:.0f} ms",
            flush=True,
        )

    async def send_statuses(self) -> None:
        statuses = await self.pg.fetch(
            """SELECT status, failure_reason, count(*) AS n FROM wallet.wallet_txs WHERE direction = 'outgoing'
               GROUP BY status, failure_reason ORDER BY n DESC"""
        )
        print(
            "  sends by status at the end: "
            + ", ".join(
                f"{r['status']}{'/' + r['failure_reason'] if r['failure_reason'] else ''} {r['n']}" for r in statuses
            )
        )

    # --- 2. GetBalance --------------------------------------------------------------------------

    async def seed_postings(self, account_id: str, postings: int) -> None:
        """`postings` postings on the account's available and locked books, as balanced pairs:
        reserve (available -1, locked +1) and release (locked -1, available +1) alternately, so
        every entry sums to 0 and the books end where they started."""
        entries = postings // 2
        chunk = 100_000
        async with self.pg.acquire() as conn:
            for start in range(0, entries, chunk):
                async with conn.transaction():
                    await conn.execute(
                        """WITH e AS (
                               INSERT INTO wallet.ledger_entries (kind, transaction_id, actor)
                               SELECT CASE WHEN g % 2 = 0 THEN 'reserve' ELSE 'release' END,
                                      'wtx_bench_seed_' || $1 || '_' || g, 'bench'
                               FROM generate_series($2::bigint, $3::bigint) AS g
                               RETURNING entry_id, kind
                           )
                           INSERT INTO wallet.postings (entry_id, book_id, amount)
                           SELECT e.entry_id, b.book_id, CASE WHEN (e.kind = 'reserve') = (b.kind = 'locked')
                                                            THEN 1 ELSE -1 END
                           FROM e CROSS JOIN wallet.books b
                           WHERE b.account_id = $1 AND b.kind IN ('available', 'locked')""",
                        account_id,
                        start,
                        min(entries, start + chunk) - 1,
                    )
            await conn.execute("ANALYZE wallet.postings")
            await conn.execute("ANALYZE wallet.ledger_entries")

    async def balance(self) -> None:
        print(f"GetBalance latency ({BALANCE_CALLS} calls one at a time over gRPC, the services idle):", flush=True)
        for postings in BALANCE_POSTINGS:
            created = await self.wallet.CreateAccount(
                wallet_pb2.CreateAccountRequest(request_id=f"bal-{postings}", external_id=f"bench-balance-{postings}"),
                metadata=FRONTEND,
                timeout=30,
            )
            account_id = created.account.account_id
            started = time.monotonic()
            await self.seed_postings(account_id, postings)
            seeded = time.monotonic() - started
            row = await self.pg.fetchrow(
                """SELECT (SELECT count(*) FROM wallet.postings p JOIN wallet.books b USING (book_id)
                           WHERE b.account_id = $1) AS postings,
                          (SELECT bool_and(b.balance = coalesce((SELECT sum(amount) FROM wallet.postings p
                                                                 WHERE p.book_id = b.book_id), 0))
                           FROM wallet.books b WHERE b.account_id = $1) AS consistent""",
                account_id,
            )
            assert row is not None
            request = wallet_pb2.GetBalanceRequest(account_id=account_id)
            for _ in range(100):
                await self.wallet.GetBalance(request, metadata=FRONTEND, timeout=10)
            latencies = []
            for _ in range(BALANCE_CALLS):
                t0 = time.perf_counter()
                await self.wallet.GetBalance(request, metadata=FRONTEND, timeout=10)
                latencies.append(time.perf_counter() - t0)
            p50, p99 = ms(latencies, 0.5), ms(latencies, 0.99)
            self.figures.balance_ms[postings] = (p50, p99)
            print(
                f"  {int(row['postings']):>9,} postings (seeded in {seeded:.1f} s, books = sum of postings:"
                f" {row['consistent']}): p50 {p50:.2f} ms, p99 {p99:.2f} ms",
                flush=True,
            )

    # --- 3. deposit scanning --------------------------------------------------------------------

    async def issue_scripts(self) -> None:
        """SCAN_SCRIPTS issued deposit scripts (unique pseudo-random P2PKH) for one account, by SQL."""
        created = await self.wallet.CreateAccount(
            wallet_pb2.CreateAccountRequest(request_id="scan-account", external_id="bench-scan"),
            metadata=FRONTEND,
            timeout=30,
        )
        started = time.monotonic()
        chunk = 250_000
        async with self.pg.acquire() as conn:
            for start in range(0, SCAN_SCRIPTS, chunk):
                await conn.execute(
                    """INSERT INTO wallet.deposit_addresses (account_id, address, locking_script, key_id, network)
                       SELECT $1, 'bench' || md5(g::text),
                              '\\x76a914'::bytea || substring(sha256(('bench-scan-' || g)::bytea) FROM 1 FOR 20)
                                  || '\\x88ac'::bytea,
                              'bench-scan-' || g, 'testnet'
                       FROM generate_series($2::bigint, $3::bigint) AS g""",
                    created.account.account_id,
                    start,
                    min(SCAN_SCRIPTS, start + chunk) - 1,
                )
            await conn.execute("VACUUM (ANALYZE) wallet.deposit_addresses")
            # Flush the insert's dirty pages now, not while blocks are being scanned.
            with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
                await conn.execute("CHECKPOINT")
        issued = await self.count("SELECT count(*) FROM wallet.deposit_addresses")
        print(
            f"  {SCAN_SCRIPTS:,} deposit scripts inserted by SQL in {time.monotonic() - started:.1f} s"
            f" ({issued:,} issued in all)",
            flush=True,
        )

    async def scan_inputs(self, count: int) -> list[tuple[bytes, int]]:
        """`count` confirmed ANYONE_SCRIPT outputs to spend, each paying for SCAN_OUTPUTS outputs."""
        response = await self.http.post(
            f"{self.sim}/_sim/fund",
            json={
                "script_hex": ANYONE_SCRIPT.hex(),
                "satoshis": SCAN_OUTPUTS * SCAN_OUTPUT_SATOSHIS + 10,
                "count": count,
                "confirm": True,
            },
        )
        response.raise_for_status()
        txid = bytes.fromhex(response.json()["txid"])[::-1]
        return [(txid, vout) for vout in range(count)]

    def block_txs(
        self, inputs: Sequence[tuple[bytes, int]], issued: Sequence[bytes], per_tx: int = SCAN_OUTPUTS
    ) -> list[bytes]:
        """One transaction per input, `per_tx` outputs each: every SCAN_MATCH_EVERY-th output pays an
        issued deposit script, the others random P2PKH scripts."""
        raws = []
        position = 0
        for outpoint in inputs:
            outputs = []
            for _ in range(per_tx):
                position += 1
                if position % SCAN_MATCH_EVERY == 0:
                    script = issued[self.rng.randrange(len(issued))]
                else:
                    script = b"\x76\xa9\x14" + self.rng.randbytes(20) + b"\x88\xac"
                outputs.append((SCAN_OUTPUT_SATOSHIS, script))
            raws.append(spend_anyone(outpoint, outputs))
        return raws

    async def submit(self, raws: Sequence[bytes]) -> None:
        for start in range(0, len(raws), 1000):
            body = "\n".join(raw.hex() for raw in raws[start : start + 1000])
            response = await self.http.post(f"{self.sim}/v1/txs", content=body, headers={"Content-Type": "text/plain"})
            response.raise_for_status()
            refused = [r for r in response.json() if r.get("txStatus") not in ("SEEN_ON_NETWORK", "STORED")]
            if refused:
                raise RuntimeError(f"chainsim refused {len(refused)} transactions, e.g. {refused[0]}")

    async def wait_idle(self, proc: Proc, timeout_s: float = 90) -> None:
        """Until `proc` has used under 5% of a core for a second (the wallet digested the mempool)."""
        deadline = time.monotonic() + timeout_s
        last = proc.stat_cpu_s()
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            now = proc.stat_cpu_s()
            if now - last < 0.05:
                return
            last = now

    async def scanned(self, heights: Sequence[int], timeout_s: float) -> dict[int, tuple[float, int, int]]:
        """When the follower's row of each block became visible: height -> (time, outputs, matched)."""
        seen: dict[int, tuple[float, int, int]] = {}
        deadline = time.monotonic() + timeout_s
        while len(seen) < len(heights):
            if time.monotonic() > deadline:
                raise RuntimeError(f"blocks {sorted(set(heights) - set(seen))} not scanned within {timeout_s:.0f} s")
            rows = await self.pg.fetch(
                "SELECT height, outputs, matched FROM wallet.scanned_blocks WHERE height = ANY($1::bigint[])",
                [h for h in heights if h not in seen],
            )
            now = time.time()
            for row in rows:
                seen[int(row["height"])] = (now, int(row["outputs"]), int(row["matched"]))
            await asyncio.sleep(0.02)
        return seen

    async def mine_txids(self, txids: Sequence[str]) -> tuple[int, int]:
        response = await self.http.post(f"{self.sim}/_sim/mine", json={"blocks": 1, "txids": list(txids)})
        response.raise_for_status()
        block = response.json()[0]
        return int(block["height"]), len(block["txids"]) - 1

    async def scan_live(self, inputs: list[tuple[bytes, int]], issued: list[bytes]) -> None:
        """SCAN_BLOCKS blocks mined back to back once the running wallet has read their transactions
        from the mempool: the first block's time includes the follower's poll interval, each later
        block's is from the previous block's row to its own (the follower scans them in one round)."""
        scan = self.figures.scan
        wallet = self.running["wallet"]
        print(
            f"deposit scanning, the running wallet: {SCAN_BLOCKS} blocks of {SCAN_TXS:,} txs x {SCAN_OUTPUTS}"
            f" outputs mined back to back, 1 output in {SCAN_MATCH_EVERY} paying an issued deposit address",
            flush=True,
        )
        blocks = [
            self.block_txs(inputs[number * SCAN_TXS : (number + 1) * SCAN_TXS], issued) for number in range(SCAN_BLOCKS)
        ]
        await self.submit([raw for raws in blocks for raw in raws])
        cpu_before = wallet.stat_cpu_s()
        await self.wait_idle(wallet)
        mempool_cpu = wallet.stat_cpu_s() - cpu_before
        cpu_before = wallet.stat_cpu_s()
        mined_at = time.time()
        heights = []
        for raws in blocks:
            height, _ = await self.mine_txids([txid_of(raw) for raw in raws])
            heights.append(height)
        seen = await self.scanned(heights, 300)
        cpu = wallet.stat_cpu_s() - cpu_before
        previous = mined_at
        for height in heights:
            at, outputs, matched = seen[height]
            took = at - previous
            scan.live_block_s.append(took)
            scan.outputs_per_block = outputs
            since = "mined, poll interval included" if previous == mined_at else "the previous block's row"
            print(
                f"  block {height}: {outputs:,} outputs, {matched} matched; {took:.2f} s since {since}"
                f" = {outputs / took:,.0f} outputs/s",
                flush=True,
            )
            previous = at
        later = heights[1:] or heights
        span = seen[later[-1]][0] - (seen[heights[0]][0] if heights[1:] else mined_at)
        scan.live_outputs_per_s = sum(seen[h][1] for h in later) / span
        print(
            f"  {scan.live_outputs_per_s:,.0f} outputs/s back to back; wallet CPU {cpu:.2f} s for the"
            f" {len(heights)} blocks (it had read their transactions from the mempool first: {mempool_cpu:.2f} s)",
            flush=True,
        )

    async def scan_in_process(self, inputs: list[tuple[bytes, int]], issued: list[bytes]) -> None:
        """The same round in this process, the wallet stopped: stages timed, then under cProfile."""
        settings = read_wallet_settings(EnvReader(self.wallet_env))
        clients = open_chain_clients(settings.chain, max_connections=32)
        assert clients.woc is not None
        providers = [p for p in (clients.arc, clients.woc) if p is not None]
        gateway = ChainAdapter(
            clients.arc,
            clients.woc,
            Broadcaster(providers),
            settings.fixed_fee_rate,
            settings.fee_ttl_s,
            settings.chain.timeout_s,
        )
        channel = grpc.aio.insecure_channel(settings.utxo_addr)
        pool = await create_pool(self.database_url, "wallet", 4)
        source = TimedSource(WocDepositSource(clients.woc), TIMES)
        follower = TimedFollower(
            TimedStore(pool),
            source,
            PoolClient(channel, settings.utxo_token, settings.rpc_timeout_s),
            gateway,
            settings.follow,
        )
        try:
            print("deposit scanning, one DepositFollower round in this process (the wallet stopped):", flush=True)
            start = SCAN_BLOCKS * SCAN_TXS
            rounds = [(SCAN_TXS, SCAN_OUTPUTS, False), (SCAN_TXS, SCAN_OUTPUTS, True), (SMALL_TXS, 2, False)]
            for txs_wanted, per_tx, profiled in rounds:
                raws = self.block_txs(inputs[start : start + txs_wanted], issued, per_tx)
                start += txs_wanted
                await self.submit(raws)
                height, txs = await self.mine()
                TIMES.clear()
                profiler = cProfile.Profile() if profiled else None
                started = time.perf_counter()
                if profiler is not None:
                    profiler.enable()
                await follower.follow_round()
                if profiler is not None:
                    profiler.disable()
                total = time.perf_counter() - started
                row = await self.pg.fetchrow(
                    "SELECT outputs, matched FROM wallet.scanned_blocks WHERE height = $1", height
                )
                assert row is not None, f"block {height} was not scanned"
                outputs = int(row["outputs"])
                scan_s = TIMES["scan"]
                if profiler is None:
                    if per_tx == SCAN_OUTPUTS:
                        self.figures.scan.in_process_outputs_per_s = outputs / scan_s
                    else:
                        self.figures.scan.small_txs_outputs_per_s = outputs / scan_s
                    self.print_stages(source, height, txs, outputs, int(row["matched"]), total)
                else:
                    print(
                        f"  under cProfile (block {height}, as the first): scan {scan_s:.2f} s"
                        f" = {outputs / scan_s:,.0f} outputs/s"
                    )
                    print_profile(pstats.Stats(profiler), 12, 18)
        finally:
            await pool.close()
            await channel.close()
            await clients.aclose()

    def print_stages(
        self, source: TimedSource, height: int, txs: int, outputs: int, matched: int, total: float
    ) -> None:
        contents = list(source.last_raws)
        started = time.perf_counter()
        tree = MerkleTree(contents)
        _ = tree.root
        merkle = time.perf_counter() - started
        scan_s = TIMES["scan"]
        parse = TIMES["parse + match"] - TIMES["match query"]
        writes = scan_s - TIMES["fetch txids"] - TIMES["fetch raw txs"] - TIMES["parse + match"] - merkle
        print(
            f"  block {height}: {txs + 1:,} txs, {outputs:,} outputs, {matched} matched; scanned in {scan_s:.2f} s"
            f" = {outputs / scan_s:,.0f} outputs/s (whole round with headers and settling {total:.2f} s)"
        )
        stages = [
            ("fetch txids (GET /block/hash/{hash})", TIMES["fetch txids"]),
            (f"fetch raw txs (POST /txs/hex, 20 a request: {-(-txs // 20)} requests)", TIMES["fetch raw txs"]),
            ("parse outputs (outputs_of)", parse),
            ("match query (= ANY of the distinct scripts)", TIMES["match query"]),
            ("merkle root (recomputed apart)", merkle),
            ("DB writes (deposits, mined, block row) and the rest", writes),
        ]
        for name, seconds in stages:
            print(f"    {name:62s} {seconds:6.2f} s {seconds / scan_s * 100:5.1f} %")
        print(
            f"    {'outside the scan: headers':62s} {TIMES['fetch headers']:6.2f} s;"
            f" settling the matched deposits {TIMES['settle']:.2f} s"
        )

    # --- 4. memory ------------------------------------------------------------------------------

    def peak_memory(self) -> None:
        children = process_children()
        for name, proc in self.running.items():
            self.figures.rss[name] = peak_rss_bytes(proc.tree(children))


def print_profile(stats: pstats.Stats, own: int, cumulative: int) -> None:
    """The functions with the most own time, then the project's (and its drivers') by cumulative time."""
    rows = [
        (f"{Path(file).name}:{line}({function})" if file != "~" else function, calls, tottime, cumtime, file)
        for (file, line, function), (_, calls, tottime, cumtime, _) in stats.stats.items()  # type: ignore[attr-defined]
    ]
    print(f"    {'own s':>7} {'cum s':>7} {'calls':>9}  function (by own time)")
    for name, calls, tottime, cumtime, _ in sorted(rows, key=lambda r: -r[2])[:own]:
        print(f"    {tottime:7.2f} {cumtime:7.2f} {calls:9d}  {name[:110]}")
    ours = re.compile(r"services/wallet|proofline_kit|asyncpg|httpx|grpc")
    print(f"    {'own s':>7} {'cum s':>7} {'calls':>9}  function (project and drivers, by cumulative time)")
    for name, calls, tottime, cumtime, _ in sorted((r for r in rows if ours.search(r[4])), key=lambda r: -r[3])[
        :cumulative
    ]:
        print(f"    {tottime:7.2f} {cumtime:7.2f} {calls:9d}  {name[:110]}")


# --- the run ------------------------------------------------------------------------------------


async def run(running: dict[str, Proc], database_url: str) -> Figures:
    names = ("sim", "signer", "signer_metrics", "utxo", "utxo_metrics", "wallet", "wallet_metrics")
    ports = {name: free_port() for name in names}
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
        ["-m", "services.chainsim"],
        {"CHAINSIM_PORT": str(ports["sim"]), "CHAINSIM_NETWORK": "test", "CHAINSIM_WOC_PAGE_SIZE": "10000"},
    )
    await wait_http(sim, f"{sim_url}/v1/health")
    signer = spawn(
        running,
        "signer",
        ["-m", "services.signer_gateway"],
        {
            **base,
            "SIGNER_METRICS_PORT": str(ports["signer_metrics"]),
            "SIGNER_MASTER_KEYS": "1:" + base64.b64encode(os.urandom(32)).decode(),
            "SIGNER_ACL": "utxo=wallet-*",
            "SIGNER_NETWORK": "testnet",
        },
    )
    await wait_grpc(signer, ports["signer"])
    utxo = spawn(
        running,
        "utxo",
        ["-m", "services.utxo"],
        {
            **base,
            "UTXO_METRICS_PORT": str(ports["utxo_metrics"]),
            "UTXO_MAINTENANCE_ENABLED": "0",
            "UTXO_NETWORK": "testnet",
            "UTXO_MIN_CONFIRMATIONS": "1",
            "UTXO_SIGNER_ADDR": f"127.0.0.1:{ports['signer']}",
            "UTXO_SIGNER_TOKEN": TOKENS["utxo"],
        },
    )
    await wait_grpc(utxo, ports["utxo"])
    wallet_env = {
        **base,
        "WALLET_GRPC_PORT": str(ports["wallet"]),
        "WALLET_METRICS_PORT": str(ports["wallet_metrics"]),
        "WALLET_NETWORK": "testnet",
        "WALLET_MIN_CONFIRMATIONS": "1",
        # The wallet creates keys (signer) and syncs its coins (utxo): admin calls, as in `make run`.
        "WALLET_UTXO_TOKEN": TOKENS["admin"],
        "WALLET_SIGNER_TOKEN": TOKENS["admin"],
        # Rounds of 500 sends and 16 database connections (the defaults are 100 and 8); the wallet's
        # own settings in this process's environment pass through and win.
        "WALLET_CALLBACK_PORT": "0",
        "WALLET_SEND_BATCH": "500",
        "WALLET_DB_POOL_SIZE": "16",
        **{k: v for k, v in os.environ.items() if k.startswith("WALLET_")},
    }
    profile_path = Path(tempfile.gettempdir()) / f"wallet-bench-{uuid.uuid4().hex[:8]}.prof"
    argv = ["-m", "services.wallet"]
    if PROFILE:
        argv = ["-m", "cProfile", "-o", str(profile_path), *argv]
    wallet = spawn(running, "wallet", argv, wallet_env)
    await wait_grpc(wallet, ports["wallet"])
    bench = Bench(running, database_url, ports, wallet_env)
    # search_path: the ledger's trigger functions name the wallet's tables unqualified.
    bench.db = await asyncpg.create_pool(
        database_url, min_size=1, max_size=4, server_settings={"search_path": "wallet"}
    )
    try:
        print("set-up:", flush=True)
        await bench.create_accounts()
        await bench.fund_accounts()
        if "sends" in PARTS:
            mining = asyncio.create_task(bench.miner())
            try:
                await bench.sends()
                if not PROFILE:
                    await bench.latency_at(max(1.0, round(bench.figures.sends.rate * LATENCY_LOAD, 1)))
            finally:
                mining.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await mining
            await bench.mine()  # the last sends' change, and the mempool out of the way of what follows
            await bench.send_statuses()
        if PROFILE:
            stop(wallet)
            print("wallet under cProfile (set-up included):")
            print_profile(pstats.Stats(str(profile_path)), 30, 40)
            return bench.figures
        if "balance" in PARTS:
            await bench.balance()
        if "scan" in PARTS:
            print("deposit scanning set-up:", flush=True)
            await bench.issue_scripts()
            inputs = await bench.scan_inputs(SCAN_TXS * (SCAN_BLOCKS + 2) + SMALL_TXS)
            issued = [
                bytes(r["locking_script"])
                for r in await bench.pg.fetch(
                    "SELECT locking_script FROM wallet.deposit_addresses WHERE address = ANY($1::text[])",
                    [address for _, address in bench.accounts],
                )
            ]
            await bench.scan_live(inputs, issued)
        bench.peak_memory()
        stop(wallet)
        if "scan" in PARTS:
            await bench.scan_in_process(inputs, issued)
        return bench.figures
    finally:
        await bench.close()
        with contextlib.suppress(FileNotFoundError):
            profile_path.unlink()


def report(figures: Figures) -> None:
    """One line per figure, then the summary line."""
    sends, latency, scan = figures.sends, figures.latency, figures.scan
    summary = []

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    if "sends" in PARTS:
        print(
            f"wallet sustained sends: {sends.rate:,.1f} sends/s Send -> UNCONFIRMED over {SECONDS:.0f} s from"
            f" {ACCOUNTS:,} accounts (coin supply {sends.coins:,} confirmed coins, a block every"
            f" {BLOCK_INTERVAL_S:g} s, at most {MAX_IN_FLIGHT} in flight): Send p50 {sends.send_p50_ms:.0f} ms"
            f" p99 {sends.send_p99_ms:.0f} ms,"
            f" UNCONFIRMED p50 {sends.unconfirmed_p50_ms / 1000:.1f} s p99 {sends.unconfirmed_p99_ms / 1000:.1f} s"
            f" [target >= {TARGET_SENDS_PER_S:,} sends/s: {verdict(sends.rate >= TARGET_SENDS_PER_S)}]"
        )
        summary.append(
            f"{sends.rate:,.1f} sends/s (target {TARGET_SENDS_PER_S:,}), Send p99 {sends.send_p99_ms:.0f} ms,"
            f" UNCONFIRMED p99 {sends.unconfirmed_p99_ms / 1000:.1f} s"
        )
    if latency.rate:
        print(
            f"wallet send latency at {latency.rate:,.1f} Sends/s: Send p50 {latency.send_p50_ms:.0f} ms p99"
            f" {latency.send_p99_ms:.0f} ms, recorded -> UNCONFIRMED p50 {latency.unconfirmed_p50_ms:.0f} ms p99"
            f" {latency.unconfirmed_p99_ms:.0f} ms"
        )
        summary.append(f"at {latency.rate:,.1f}/s UNCONFIRMED p99 {latency.unconfirmed_p99_ms:.0f} ms")
    if PROFILE:
        print("wallet: profile run (BENCH_WALLET_PROFILE=1, the wallet under cProfile): not a figure")
        return
    if scan.live_block_s:
        print(
            f"wallet deposit scanning: {scan.live_outputs_per_s:,.0f} outputs/s block to block (running wallet,"
            f" {scan.outputs_per_block:,}-output blocks of {SCAN_OUTPUTS}-output txs, {SCAN_SCRIPTS:,} issued"
            f" scripts; the follower alone {scan.in_process_outputs_per_s:,.0f} outputs/s, on two-output txs"
            f" {scan.small_txs_outputs_per_s:,.0f}) [target >= {TARGET_SCAN_OUTPUTS_PER_S:,} outputs/s:"
            f" {verdict(scan.live_outputs_per_s >= TARGET_SCAN_OUTPUTS_PER_S)} on {SCAN_OUTPUTS}-output txs,"
            f" {verdict(scan.small_txs_outputs_per_s >= TARGET_SCAN_OUTPUTS_PER_S)} on two-output txs]"
        )
        summary.append(
            f"scan {scan.live_outputs_per_s:,.0f} outputs/s (target {TARGET_SCAN_OUTPUTS_PER_S:,}; two-output txs"
            f" {scan.small_txs_outputs_per_s:,.0f})"
        )
    if len(figures.balance_ms) >= 2:
        (small, (s50, s99)), *_, (large, (l50, l99)) = sorted(figures.balance_ms.items())
        flat = l99 <= 1.5 * s99 + 0.5
        print(
            f"wallet GetBalance: p99 {s99:.2f} ms with {small:,} postings, {l99:.2f} ms with {large:,}"
            f" (p50 {s50:.2f} / {l50:.2f} ms) [target flat: {verdict(flat)}]"
        )
        summary.append(f"GetBalance p99 {s99:.2f} ms @{small:,} / {l99:.2f} ms @{large:,} postings")
    services = {n: b for n, b in figures.rss.items() if n != "chainsim"}
    if services:
        worst = max(services, key=lambda n: services[n])
        print(
            "wallet peak RSS (VmHWM): "
            + ", ".join(f"{n} {b / 2**20:,.0f} MiB" for n, b in figures.rss.items())
            + f" [target <= 300 MiB per service, chainsim apart: {verdict(services[worst] <= MEMORY_LIMIT)}]"
        )
        summary.append(f"peak RSS {services[worst] / 2**20:,.0f} MiB ({worst})")
    print("wallet: " + "; ".join(summary))


async def bounded(running: dict[str, Proc], database_url: str) -> Figures:
    async with asyncio.timeout(BUDGET_S):
        return await run(running, database_url)


def main() -> None:
    database = f"proofline_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')  # type: ignore[arg-type]
    parts = urlsplit(SERVER_URL)
    database_url = urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))
    try:
        with processes() as running:
            try:
                figures = asyncio.run(bounded(running, database_url))
            except BaseException as error:
                for proc in running.values():
                    if proc.proc.poll() is not None and proc.proc.returncode not in (0, -15):
                        print(f"{proc.name} exited with {proc.proc.returncode}:\n{proc.tail()}", file=sys.stderr)
                if isinstance(error, TimeoutError):
                    message = f"wallet bench: over its budget of {BUDGET_S:.0f} s (BENCH_WALLET_BUDGET_S)"
                    raise SystemExit(message) from None
                raise
        report(figures)
    finally:
        with psycopg.connect(SERVER_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
