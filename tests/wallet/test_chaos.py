"""A bounded chaos run of the wallet (issue 13: the reconciliation report is 0 after a chaos run
with kill -9).

Two wallet replicas run as child processes (`python -m services.wallet`) over the real signer_gateway,
utxo pool and chainsim of `WalletSuite`. While 200 Sends arrive from four funded accounts (fresh
request_ids; some sent again once answered; some fired at both replicas at once, as a client that
did not wait for its first answer), the replicas are killed with SIGKILL and restarted at random
moments, blocks are mined, deposits arrive, ARC and WhatsOnChain misbehave for a few seconds at a
time (hangs, 503s, dropped connections, WoC 5xx, slow answers, rejections) and the chain
reorganises twice (depth 1 and 2). A client retries a Send that got no answer with the same
request_id, as the contract asks.

Then, faults cleared, both replicas killed one last time and one wallet running, blocks are mined
until nothing is left to do, and the run must show:

- every send final: UNCONFIRMED/CONFIRMED, or FAILED with a failure_reason; none PENDING/SENDING;
- one wallet transaction per request_id, and every answer to a request_id named it;
- of the txids a send ever signed, at most one reached the chain (exactly its final one, unless
  FAILED: none);
- no pool outpoint committed to two live txids (`utxo_events` kind `commit`: a second commit only
  after the first transaction was proven dead), and the pool's spender of every SPENT wallet coin
  is the chain's;
- the ledger entries of each send tell its story once (one `finalize` and `signed` = `unsigned` + 1,
  or for a FAILED send one `release` and every `signed` undone);
- every account's balance is its deposits minus Σ(amount + fee) of its non-FAILED sends, exactly;
- GetReconciliation balanced, difference 0, no differences.

Three wallet bugs the runs found are fixed and pinned at the end of this module, each with a
deterministic reproduction.

The schedule comes from a seed (`CHAOS_SEED=<n>` replays it; the interleaving is the machine's).
Loopback only, bounded: about 40 s on two cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
import grpc
from proofline.wallet.v1 import wallet_pb2, wallet_pb2_grpc

from proofline_kit.rpc.status import error_reason
from tests.harness.service_process import ServiceProcess, service_process
from tests.wallet.conftest import FRONTEND, WalletSuite, eventually
from tests.wallet.test_sends import send_request

ACCOUNTS = 4
COINS_PER_ACCOUNT = 55
COIN_SATOSHIS = 12_000
# Each account also gets a deposit of LATE_COINS coins during the chaos.
LATE_COINS = 5
SENDS = 200
# Sends are fired over the first SEND_WINDOW_S seconds; kills, faults, deposits and reorgs happen
# within CHAOS_WINDOW_S (the replicas keep running after it until every Send has its answer).
SEND_WINDOW_S = 24.0
CHAOS_WINDOW_S = 28.0
KILLS = {"replica-a": 3, "replica-b": 2}
SPAWN_ATTEMPTS = 5
# A Send without an answer is retried (same request_id) until this long after it was first fired.
SEND_GIVE_UP_S = 60.0
SETTLE_TIMEOUT_S = 45.0
# The settings of the chaos replicas and of the wallet that finishes the run: a fixed fee rate (no
# policy lookups while ARC misbehaves) and short work leases, so a dead replica's sends are taken
# over within seconds.
WALLET_OVERRIDES = {
    "WALLET_FEE_RATE_SAT_PER_KB": "1000",
    "WALLET_WORK_LEASE_MS": "2000",
    "WALLET_CHAIN_TIMEOUT_MS": "3000",
}
# gRPC codes after which a client retries a Send with the same request_id: no answer (the replica
# died, or the call was cut) or ABORTED (the contract's "retry": REQUEST_IN_PROGRESS).
_NO_ANSWER = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.ABORTED,
}
# Request-level faults act before chainsim handles the request (nothing is accepted behind a hang
# or a dropped connection). The last episodes give verdicts: two sends rejected (FAILED,
# BROADCAST_REJECTED), and false double-spend verdicts (the send is built again, from the same
# coin once the pool finds it unspent: the same bytes, finding 3).
_FAULT_MENU: tuple[dict[str, Any], ...] = (
    {"rules": [{"face": "arc", "action": "hang", "times": 4}]},
    {"rules": [{"face": "arc", "action": "http:503", "rate": 0.6}]},
    {"rules": [{"face": "arc", "action": "drop", "times": 6}]},
    {"woc": {"error_rate": 0.3, "error_statuses": [500, 502]}},
    {"arc": {"latency_ms": 300, "jitter_ms": 400}},
    {"rules": [{"face": "arc", "action": "reject:non-final", "times": 2}]},
    {"rules": [{"face": "arc", "action": "double_spend:" + "ab" * 32, "times": 3}]},
)
FAULT_EPISODES = 4


# --- the plan ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlannedSend:
    request_id: str
    account_id: str
    amount: int
    at_s: float
    # Fired at both replicas at the same moment.
    twin: bool
    # Sent again with the same request_id this long after its answer (None: once).
    replay_after_s: float | None


@dataclass(frozen=True, slots=True)
class ChaosEvent:
    at_s: float
    kind: str  # mine | faults | clear | reorg | deposit
    faults: dict[str, Any] | None = None
    depth: int = 0
    address: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    sends: tuple[PlannedSend, ...]
    events: tuple[ChaosEvent, ...]
    kills: dict[str, tuple[float, ...]]


def make_plan(rng: random.Random, accounts: list[str], late_addresses: list[str]) -> Plan:
    sends = []
    for i in range(SENDS):
        roll = rng.random()
        sends.append(
            PlannedSend(
                request_id=f"chaos-{i:03d}-{rng.getrandbits(32):08x}",
                account_id=accounts[i % len(accounts)],
                amount=rng.randint(1_000, 8_000),
                at_s=rng.uniform(0.0, SEND_WINDOW_S),
                twin=roll < 0.08,
                replay_after_s=rng.uniform(0.0, 4.0) if 0.08 <= roll < 0.2 else None,
            )
        )
    events: list[ChaosEvent] = []
    at = rng.uniform(1.0, 2.0)
    while at < CHAOS_WINDOW_S:
        events.append(ChaosEvent(at, "mine"))
        at += rng.uniform(1.5, 3.0)
    # Fault episodes of 2-4 s each, one per slice of the window (never overlapping).
    width = CHAOS_WINDOW_S / FAULT_EPISODES
    for k, faults in enumerate(rng.sample(_FAULT_MENU, FAULT_EPISODES)):
        start = k * width + rng.uniform(0.3, width - 4.3)
        seeded = {**faults, "seed": rng.randrange(1 << 30)} if ("woc" in faults or "arc" in faults) else faults
        events.append(ChaosEvent(start, "faults", faults=seeded))
        events.append(ChaosEvent(start + rng.uniform(2.0, 4.0), "clear"))
    # Two reorgs in the second half, once a few blocks are on top of the deposits.
    half = CHAOS_WINDOW_S / 2
    for depth in (1, 2):
        events.append(ChaosEvent(half + rng.uniform(0.0, half - 1.0), "reorg", depth=depth))
    for address in late_addresses:
        events.append(ChaosEvent(rng.uniform(1.0, CHAOS_WINDOW_S - 3.0), "deposit", address=address))
    kills = {}
    for name, count in KILLS.items():
        slot = (CHAOS_WINDOW_S - 2.0) / count
        kills[name] = tuple(2.0 + k * slot + rng.uniform(0.5, slot - 0.5) for k in range(count))
    return Plan(tuple(sorted(sends, key=lambda s: s.at_s)), tuple(sorted(events, key=lambda e: e.at_s)), kills)


# --- the run -----------------------------------------------------------------------------------------


@dataclass
class Journal:
    """What happened, for the report and for any assertion message."""

    started: float = field(default_factory=time.monotonic)
    # Set once both replicas serve: the plan's clock starts then.
    armed: bool = False
    lines: list[str] = field(default_factory=list)
    answers: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    refusals: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    no_answer: Counter[str] = field(default_factory=Counter)
    # (request_id, the server's request id, details) of every INTERNAL answer.
    internal: list[tuple[str, str, str]] = field(default_factory=list)

    def now(self) -> float:
        return time.monotonic() - self.started

    def note(self, line: str) -> None:
        self.lines.append(f"{self.now():6.2f}s {line}")

    def tail(self, n: int = 80) -> str:
        return "\n".join(self.lines[-n:])


@dataclass
class Replica:
    name: str
    env: dict[str, str]
    stub: wallet_pb2_grpc.WalletServiceAsyncStub | None = None
    lives: int = 0
    kills: int = 0
    # The log of every life (the service's JSON lines), read after its kill.
    logs: list[str] = field(default_factory=list)
    spawn_crashes: int = 0


async def run_replica(replica: Replica, kill_at: tuple[float, ...], stop: asyncio.Event, journal: Journal) -> None:
    """Lives of one replica: serve until the next planned kill (or until told to stop), then SIGKILL
    with calls in flight; restart after a short pause. The last life ends with a kill -9 too."""
    pending = list(kill_at)
    rng = random.Random(replica.name)
    # A dead life's channel stays open until the end: calls in flight when the process died fail as
    # a client sees them (UNAVAILABLE), not cancelled by the test closing the channel.
    channels: list[grpc.aio.Channel] = []
    try:
        while True:
            async with _spawned(replica, journal) as process:
                channel = grpc.aio.insecure_channel(f"127.0.0.1:{process.port}")
                channels.append(channel)
                replica.stub = wallet_pb2_grpc.WalletServiceStub(channel)  # type: ignore[assignment]
                replica.lives += 1
                journal.note(f"{replica.name} life {replica.lives} serving (pid {process.proc.pid})")
                while not stop.is_set() and (not journal.armed or not pending or journal.now() < pending[0]):
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.1)
                if pending and not stop.is_set():
                    pending.pop(0)
                process.kill9()
                process.log.seek(0)
                replica.logs.append(process.log.read().decode(errors="replace"))
                replica.stub = None
                replica.kills += 1
                journal.note(f"{replica.name} kill -9 (pid {process.proc.pid})")
            if stop.is_set():
                return
            await asyncio.sleep(rng.uniform(0.0, 0.5))
    finally:
        for channel in channels:
            await channel.close()


@contextlib.asynccontextmanager
async def _spawned(replica: Replica, journal: Journal) -> AsyncIterator[ServiceProcess]:
    """`service_process` for the replica, started again (up to SPAWN_ATTEMPTS times) when the child
    died of a signal before the service wrote a line. The harness forks this test process, full of
    gRPC threads, with a `preexec_fn` (`_die_with_parent`), so CPython runs its Python at-fork hooks
    in the child before exec; now and then one dies there: SIGSEGV in logging's
    `_after_at_fork_child_reinit_locks` (faulthandler's trace), or SIGABRT after gRPC's "epoll_wait
    error: Bad file descriptor". Not the wallet's doing, and not what this test is about. The child
    runs with PYTHONFAULTHANDLER=1, so an interpreter that crashed after exec says so and fails the
    test, as does any other start failure."""
    for attempt in range(1, SPAWN_ATTEMPTS + 1):
        started = service_process("wallet", "WALLET_GRPC_PORT", replica.env)
        try:
            process = await started.__aenter__()
        except AssertionError as error:
            if attempt < SPAWN_ATTEMPTS and _died_before_exec(str(error)):
                replica.spawn_crashes += 1
                journal.note(f"{replica.name} spawn died before exec ({str(error)[:160]!r}); starting it again")
                await asyncio.sleep(0.2)
                continue
            raise
        try:
            yield process
        finally:
            await started.__aexit__(None, None, None)
        return


def _died_before_exec(failure: str) -> bool:
    """`wallet exited with -<signal>:` and nothing the service or Python wrote (gRPC's own C++ log
    lines only)."""
    head, _, output = failure.partition("\n")
    if not re.fullmatch(r"wallet exited with -\d+:", head):
        return False
    return all(re.match(r"[EIWF]\d{4} ", line) for line in output.splitlines() if line.strip())


def _alive(replicas: list[Replica], rng: random.Random) -> wallet_pb2_grpc.WalletServiceAsyncStub | None:
    stubs = [r.stub for r in replicas if r.stub is not None]
    return rng.choice(stubs) if stubs else None


async def send_until_answered(
    replicas: list[Replica], planned: PlannedSend, journal: Journal, rng: random.Random, prefer: int | None = None
) -> str | None:
    """A client's Send: retried with the same request_id until it gets an answer. Returns the
    transaction_id, or None for a refusal (recorded in the journal)."""
    request = send_request(planned.account_id, planned.amount, request_id=planned.request_id)
    give_up = time.monotonic() + SEND_GIVE_UP_S
    while time.monotonic() < give_up:
        stub = replicas[prefer].stub if prefer is not None else None
        stub = stub or _alive(replicas, rng)
        prefer = None
        if stub is None:
            await asyncio.sleep(0.05)
            continue
        try:
            response = await stub.Send(request, metadata=FRONTEND, timeout=5)
        except grpc.aio.AioRpcError as error:
            code, reason = error.code(), error_reason(error)
            if code in _NO_ANSWER:
                journal.no_answer[f"{code.name} {reason or ''}".strip()] += 1
            elif code == grpc.StatusCode.INTERNAL:
                server_id = re.search(r"request id ([0-9a-f]+)", error.details() or "")
                journal.internal.append((planned.request_id, server_id[1] if server_id else "", error.details() or ""))
                journal.note(f"Send {planned.request_id}: INTERNAL {error.details()}")
            else:
                journal.refusals[planned.request_id].append(f"{code.name} {reason}")
                journal.note(f"Send {planned.request_id} refused: {code.name} {reason} {error.details()}")
                return None
            await asyncio.sleep(rng.uniform(0.05, 0.25))
            continue
        transaction_id = response.transaction.transaction_id
        journal.answers[planned.request_id].append(transaction_id)
        return transaction_id
    raise AssertionError(f"Send {planned.request_id} got no answer in {SEND_GIVE_UP_S} s\n{journal.tail()}")


async def client(replicas: list[Replica], planned: PlannedSend, journal: Journal) -> None:
    rng = random.Random(planned.request_id)
    await asyncio.sleep(max(0.0, planned.at_s - journal.now()))
    if planned.twin:
        await asyncio.gather(
            send_until_answered(replicas, planned, journal, rng, prefer=0),
            send_until_answered(replicas, planned, journal, random.Random(rng.random()), prefer=1),
        )
    else:
        answered = await send_until_answered(replicas, planned, journal, rng)
        if answered is not None and planned.replay_after_s is not None:
            await asyncio.sleep(planned.replay_after_s)
            await send_until_answered(replicas, planned, journal, rng)


async def chaos(suite: WalletSuite, events: tuple[ChaosEvent, ...], journal: Journal) -> None:
    for event in events:
        await asyncio.sleep(max(0.0, event.at_s - journal.now()))
        if event.kind == "mine":
            [block] = await suite.sim.mine(1)
            journal.note(f"mined block {block['height']} ({len(block['txids']) - 1} txs)")
        elif event.kind == "faults":
            assert event.faults is not None
            await suite.sim.faults(event.faults)
            journal.note(f"faults {event.faults}")
        elif event.kind == "clear":
            await suite.sim.clear_faults()
            journal.note("faults cleared")
        elif event.kind == "deposit":
            # In the mempool first (pending), mined by the next block.
            await suite.fund(event.address, COIN_SATOSHIS, LATE_COINS)
            journal.note(f"deposit of {LATE_COINS} coins to {event.address}")
        else:
            await suite.sim.reorg(event.depth)
            journal.note(f"reorg depth {event.depth}")


# --- what the chain and the logs say -----------------------------------------------------------------


async def _woc(suite: WalletSuite, path: str) -> Any:
    response = await suite.sim.http.get(f"{suite.sim.base_url}/v1/bsv/test/{path}")
    assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
    return response.json()


async def chain_blocks(suite: WalletSuite) -> tuple[dict[str, tuple[int, str]], set[str]]:
    """(txid -> (height, hash) of its main-chain block, txids in the mempool or orphan pool)."""
    state = (await suite.sim.http.get(f"{suite.sim.base_url}/_sim/state")).json()
    mined: dict[str, tuple[int, str]] = {}
    for height in range(int(state["height"]) + 1):
        block = await _woc(suite, f"block/height/{height}")
        assert "pages" not in block, "a block too big for the test's reading"
        for txid in block["tx"]:
            assert txid not in mined, f"{txid} twice on the main chain"
            mined[txid] = (height, block["hash"])
    return mined, set(state["mempool_txids"]) | set(state["orphan_txids"])


async def chain_spenders(suite: WalletSuite, outpoints: list[tuple[str, int]]) -> dict[tuple[str, int], str]:
    """The chain's spending txid of each outpoint ('' when unspent)."""
    spenders = {}
    for start in range(0, len(outpoints), 20):
        chunk = outpoints[start : start + 20]
        response = await suite.sim.http.post(
            f"{suite.sim.base_url}/v1/bsv/test/utxos/spent", json={"utxos": [{"txid": t, "vout": v} for t, v in chunk]}
        )
        assert response.status_code == 200, response.text
        for item in response.json():
            spent = item["spentIn"]
            spenders[(item["utxo"]["txid"], item["utxo"]["vout"])] = spent["txid"] if spent else ""
    return spenders


def _log_lines(replicas: list[Replica]) -> list[dict[str, Any]]:
    lines = []
    for replica in replicas:
        for log in replica.logs:
            for line in log.splitlines():
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if isinstance(record, dict):
                        lines.append(record)
    return lines


def _crashes(replicas: list[Replica]) -> dict[str, str]:
    """The server's request id -> the traceback its `rpc.crashed` log line carries."""
    return {
        str(r.get("request_id")): str(r.get("exception", ""))
        for r in _log_lines(replicas)
        if r.get("event") == "rpc.crashed"
    }


def _failed_rounds(replicas: list[Replica]) -> Counter[str]:
    """Background rounds that raised, by loop and the exception's last line (for the report)."""
    failed: Counter[str] = Counter()
    for r in _log_lines(replicas):
        if r.get("event") == "loop.round_failed":
            last = str(r.get("exception", "")).strip().splitlines()[-1:] or [""]
            failed[f"{r.get('loop')}: {last[0][:120]}"] += 1
    return failed


# --- the test ----------------------------------------------------------------------------------------


async def _fund_accounts(suite: WalletSuite) -> tuple[list[str], list[str]]:
    """The accounts, each with COINS_PER_ACCOUNT coins credited, and one more deposit address each
    (funded during the chaos)."""
    accounts = [(await suite.account(f"chaos-{k}-{uuid.uuid4().hex[:6]}")).account_id for k in range(ACCOUNTS)]
    for account_id in accounts:
        address = await suite.deposit_address(account_id)
        await suite.fund(address.address, COIN_SATOSHIS, COINS_PER_ACCOUNT)
    await suite.sim.mine(1)
    for account_id in accounts:
        await eventually(
            lambda account_id=account_id: suite.balance(account_id),  # type: ignore[misc]
            lambda b: b.available_satoshis == COIN_SATOSHIS * COINS_PER_ACCOUNT,
            timeout_s=30,
        )
    await eventually(suite.pool_available, lambda coins: len(coins) == ACCOUNTS * COINS_PER_ACCOUNT, timeout_s=30)
    late = [(await suite.deposit_address(account_id)).address for account_id in accounts]
    return accounts, late


async def _settle(suite: WalletSuite, db: asyncpg.Connection, journal: Journal) -> None:
    """Mine until no wallet transaction has work left and the mempool is empty (bounded)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        [block] = await suite.sim.mine(1)
        await asyncio.sleep(0.8)
        busy = await db.fetch(
            """SELECT direction, status, count(*) AS n FROM wallet_txs
               WHERE (direction = 'outgoing' AND status IN ('pending', 'sending', 'reorging'))
                  OR (direction = 'incoming' AND status IN ('unconfirmed', 'reorging'))
               GROUP BY 1, 2"""
        )
        state = (await suite.sim.http.get(f"{suite.sim.base_url}/_sim/state")).json()
        if not busy and not state["mempool"] and not state["orphans"]:
            journal.note(f"settled at block {block['height']}")
            return
        if time.monotonic() > deadline:
            stuck = await db.fetch(
                """SELECT transaction_id, direction, status, txid, failure_reason, failure_detail, builds,
                          broadcast_attempts, lease_owner, next_attempt_at FROM wallet_txs
                   WHERE status IN ('pending', 'sending', 'reorging')
                      OR (direction = 'incoming' AND status = 'unconfirmed')"""
            )
            moves = await db.fetch(
                """SELECT transaction_id, from_status, to_status, reason, txid, actor FROM tx_audit
                   WHERE transaction_id = ANY($1::text[]) ORDER BY audit_id""",
                [r["transaction_id"] for r in stuck],
            )
            raise AssertionError(
                f"not settled after {SETTLE_TIMEOUT_S} s: {[dict(r) for r in stuck]}\naudit: "
                f"{[dict(m) for m in moves]}\nchain {state}\n{journal.tail()}"
            )


async def _unconfirmed_though_mined(db: asyncpg.Connection, mined: dict[str, tuple[int, str]]) -> list[dict[str, Any]]:
    """Sends still UNCONFIRMED (after a wait) although their transaction is in a main-chain block,
    each with the evidence: when the follower scanned that block, and when the send was accepted."""

    async def unconfirmed() -> list[asyncpg.Record]:
        rows = await db.fetch(
            """SELECT transaction_id, txid, block_hash FROM wallet_txs
               WHERE direction = 'outgoing' AND status = 'unconfirmed'"""
        )
        return [r for r in rows if r["txid"] in mined]

    with contextlib.suppress(AssertionError):
        await eventually(unconfirmed, lambda rows: not rows, timeout_s=10)
    found = []
    for row in await unconfirmed():
        height, block_hash = mined[row["txid"]]
        scanned = await db.fetchrow("SELECT block_hash, scanned_at FROM scanned_blocks WHERE height = $1", height)
        moves = await db.fetch(
            """SELECT from_status, to_status, reason, actor, created_at FROM tx_audit
               WHERE transaction_id = $1 ORDER BY audit_id""",
            row["transaction_id"],
        )
        accepted = max((m["created_at"] for m in moves if m["from_status"] == "sending"), default=None)
        found.append(
            {
                **dict(row),
                "mined_in": (height, block_hash),
                "scanned": dict(scanned) if scanned else None,
                "accepted_at": accepted,
                # The follower scanned the very block holding it, and did so before the send's move
                # out of SENDING began (or while that short transaction ran).
                "block_scanned_while_sending": bool(
                    scanned
                    and scanned["block_hash"] == block_hash
                    and accepted
                    and scanned["scanned_at"] < accepted + timedelta(seconds=1)
                ),
                "moves": [
                    (m["from_status"], m["to_status"], m["reason"], m["actor"], str(m["created_at"])) for m in moves
                ],
            }
        )
    return found


async def test_chaos_with_kill9_ends_with_the_books_reconciled(
    suite: WalletSuite, wallet_db: asyncpg.Connection
) -> None:
    seed = int(os.environ.get("CHAOS_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    accounts, late_addresses = await _fund_accounts(suite)
    await suite.stop_wallet()
    plan = make_plan(rng, accounts, late_addresses)
    env = suite.env(**WALLET_OVERRIDES)
    replicas = [Replica(name, {**env, "WALLET_WORKER_ID": name, "PYTHONFAULTHANDLER": "1"}) for name in KILLS]
    journal = Journal()
    journal.note(f"seed {seed}: {len(plan.sends)} sends, kills at {plan.kills}")
    stop = asyncio.Event()
    lives = [asyncio.create_task(run_replica(r, plan.kills[r.name], stop, journal)) for r in replicas]
    try:
        await eventually(lambda: _ready(replicas, lives), lambda ready: ready, timeout_s=30)
        journal.started, journal.armed = time.monotonic(), True
        clients = [asyncio.create_task(client(replicas, planned, journal)) for planned in plan.sends]
        await asyncio.gather(chaos(suite, plan.events, journal), *clients)
        journal.note("every Send answered")
    finally:
        stop.set()
        await asyncio.gather(*lives, return_exceptions=True)
        await suite.sim.clear_faults()
    for life in lives:
        life.result()  # a replica that failed to start fails the test here
    chaos_s = journal.now()

    # The end: the faults are gone, both replicas died by SIGKILL; one wallet takes over the queue.
    await suite.start_wallet(**WALLET_OVERRIDES)
    await _settle(suite, wallet_db, journal)
    mined, mempool = await chain_blocks(suite)
    unconfirmed_though_mined = await _unconfirmed_though_mined(wallet_db, mined)
    context = f"seed {seed}\n{journal.tail()}"

    # The client's view: every Send answered with a transaction, every answer to one request_id
    # names the same one, and nobody was refused.
    assert not journal.refusals, f"refused: {dict(journal.refusals)}\n{context}"
    answered = {rid: set(ids) for rid, ids in journal.answers.items()}
    assert set(answered) == {p.request_id for p in plan.sends}, context
    assert all(len(ids) == 1 for ids in answered.values()), {r: i for r, i in answered.items() if len(i) > 1}

    sends = await wallet_db.fetch(
        """SELECT transaction_id, account_id, request_id, status, txid, amount_satoshis, fee_satoshis,
                  failure_reason, failure_detail, builds
           FROM wallet_txs WHERE direction = 'outgoing'"""
    )
    by_request: dict[str, list[str]] = defaultdict(list)
    for row in sends:
        by_request[row["request_id"]].append(row["transaction_id"])
    # One wallet transaction per request_id, the one the client was told.
    assert dict(by_request) == {rid: sorted(ids) for rid, ids in answered.items()}, context

    # Every send final; a FAILED one says why, and the API shows what the database holds.
    statuses = Counter(row["status"] for row in sends)
    assert set(statuses) <= {"unconfirmed", "confirmed", "failed"}, statuses
    assert all(row["failure_reason"] for row in sends if row["status"] == "failed")
    listed = {}
    for account_id in accounts:
        page = await suite.stub.ListTransactions(
            wallet_pb2.ListTransactionsRequest(
                account_id=account_id, direction=wallet_pb2.TRANSACTION_DIRECTION_OUTGOING, page_size=1000
            ),
            metadata=FRONTEND,
        )
        listed.update({t.transaction_id: t for t in page.transactions})
    assert set(listed) == {row["transaction_id"] for row in sends}
    for row in sends:
        shown = listed[row["transaction_id"]]
        assert wallet_pb2.TransactionStatus.Name(shown.status) == f"TRANSACTION_STATUS_{row['status'].upper()}"
        assert bool(shown.failure_reason) == (row["status"] == "failed"), shown

    # The chain: of the txids a send ever signed, at most one is on chain (its final one), none for
    # a FAILED send; the mempool is empty.
    signed: dict[str, set[str]] = defaultdict(set)
    for r in await wallet_db.fetch("SELECT transaction_id, txid FROM tx_audit WHERE txid IS NOT NULL"):
        signed[r["transaction_id"]].add(r["txid"])
    assert not mempool, mempool
    live_txids = {row["txid"] for row in sends if row["status"] != "failed"}
    for row in sends:
        ours = signed[row["transaction_id"]] | ({row["txid"]} if row["txid"] else set())
        on_chain = sorted(ours & set(mined))
        expected = [] if row["status"] == "failed" else [row["txid"]]
        assert on_chain == expected, (dict(row), sorted(ours), context)

    # The pool: an outpoint committed to two txids only after the first was proven dead (never on
    # chain, no send's live transaction); its spender of every SPENT wallet coin is the chain's.
    pool_db = await asyncpg.connect(suite.database_url, server_settings={"search_path": "utxo"})
    try:
        recommitted = await pool_db.fetch(
            """SELECT u.txid, u.vout, array_agg(DISTINCT e.txid) AS txids
               FROM utxo_events e JOIN utxos u ON u.id = e.utxo_id
               WHERE e.kind = 'commit' GROUP BY u.txid, u.vout HAVING count(DISTINCT e.txid) > 1"""
        )
        pool_spent = await pool_db.fetch(
            "SELECT txid, vout, spent_by_txid FROM utxos WHERE purpose = 'wallet' AND status = 'spent'"
        )
        reserved_leases = await pool_db.fetch(
            """SELECT l.lease_id, l.holder FROM utxos u JOIN leases l ON l.fencing_token = u.fencing_token
               WHERE u.purpose = 'wallet' AND u.status = 'reserved'"""
        )
        pool_statuses = {
            r["status"]: r["n"]
            for r in await pool_db.fetch("SELECT status, count(*) AS n FROM utxos WHERE purpose = 'wallet' GROUP BY 1")
        }
    finally:
        await pool_db.close()
    for r in recommitted:
        live = [t for t in r["txids"] if t in mined or t in live_txids]
        assert len(live) <= 1, (dict(r), live, context)
    chain_says = await chain_spenders(suite, [(r["txid"], r["vout"]) for r in pool_spent])
    wrong = [dict(r) for r in pool_spent if chain_says[(r["txid"], r["vout"])] != r["spent_by_txid"]]
    assert wrong == [], context

    # The ledger tells each send's story once.
    entries: dict[str, Counter[str]] = defaultdict(Counter)
    for r in await wallet_db.fetch("SELECT transaction_id, kind FROM ledger_entries"):
        entries[r["transaction_id"]][r["kind"]] += 1
    for row in sends:
        kinds = entries[row["transaction_id"]]
        story = (kinds["finalize"], kinds["release"], kinds["signed"] - kinds["unsigned"])
        assert story == ((0, 1, 0) if row["status"] == "failed" else (1, 0, 1)), (dict(row), kinds)

    # Every account: its deposits minus what its sends cost, exactly.
    for account_id in accounts:
        cost = sum(
            r["amount_satoshis"] + r["fee_satoshis"]
            for r in sends
            if r["account_id"] == account_id and r["status"] != "failed"
        )
        balance = await suite.balance(account_id)
        assert (balance.available_satoshis, balance.locked_satoshis, balance.pending_satoshis) == (
            COIN_SATOSHIS * (COINS_PER_ACCOUNT + LATE_COINS) - cost,
            0,
            0,
        ), account_id

    # No pool SyncFromChain is needed first: the wallet's follower syncs the change key whenever it
    # scans a block holding our change, the audit round syncs the keys of suspect coins, and the
    # report counts UNCONFIRMED, RESERVED and DIRTY coins as held (a coin left DIRTY by a rejected
    # send, or RESERVED by a lease its dead worker never used, is still the wallet's).
    report = await eventually(suite.reconciliation, lambda r: r.balanced, timeout_s=15)
    assert report.difference_satoshis == 0 and not report.differences and report.written_off_satoshis == 0

    crashes = _crashes(replicas)
    # RESERVED coins under a lease no send holds: builds whose signed transaction was never stored
    # (a kill between LeaseUtxos and SENDING, or a build round that raised half way through its
    # batch); they stay leased for WALLET_COIN_LEASE_MS (10 min). Still the wallet's: the report
    # counts them.
    send_leases = {r["pool_lease_id"] for r in await wallet_db.fetch("SELECT pool_lease_id FROM wallet_txs")}
    orphaned = [r["holder"] for r in reserved_leases if r["lease_id"] not in send_leases]
    summary = {
        "sends": dict(statuses),
        "re-signed": sum(1 for r in sends if len(signed[r["transaction_id"]]) > 1),
        "chaos phase s": round(chaos_s, 1),
        "kills": sum(r.kills for r in replicas),
        "spawn crashes": sum(r.spawn_crashes for r in replicas),
        "no-answer retries": dict(journal.no_answer),
        "INTERNAL": len(journal.internal),
        "unconfirmed though mined": len(unconfirmed_though_mined),
        "pool coins": pool_statuses,
        "reserved under no send's lease": len(orphaned),
        "pool sat": report.pool_satoshis,
        "fees sat": report.fees_paid_satoshis,
        "failed rounds": dict(_failed_rounds(replicas)),
    }
    print(f"\nchaos seed {seed}: {summary}")
    # Findings 1 and 2 (pinned below): never an INTERNAL answer, never a mined send left UNCONFIRMED.
    internal = [(rid, crashes.get(server_id, "no rpc.crashed line")) for rid, server_id, _ in journal.internal]
    assert internal == [], f"INTERNAL answers: {internal}\n{context}"
    assert unconfirmed_though_mined == [], (
        f"{len(unconfirmed_though_mined)} sends: {unconfirmed_though_mined}\n{context}"
    )


async def _ready(replicas: list[Replica], lives: list[asyncio.Task[None]]) -> bool:
    for life in lives:
        if life.done():
            life.result()  # a replica that could not start
    return all(r.stub is not None for r in replicas)


# --- findings of the chaos run, pinned ---------------------------------------------------------------


async def test_two_attempts_of_one_send_at_once_never_answer_internal(
    suite: WalletSuite, wallet_db: asyncpg.Connection
) -> None:
    account, _ = await suite.funded_account(50_000)
    request = send_request(account.account_id, 5_000, request_id=f"twin-{uuid.uuid4().hex[:12]}")
    # Hold the account's book rows, so the attempts wait on the lock the intake takes: what the chaos
    # run hits by timing. (One wallet puts both in one group and decides the second after the
    # first, so one of them waits on the database; the other waits in the group.)
    holder = await asyncpg.connect(suite.database_url, server_settings={"search_path": "wallet"})
    try:
        hold = holder.transaction()
        await hold.start()
        await holder.execute(
            "SELECT 1 FROM books WHERE account_id = $1 AND kind IN ('available', 'deficit') FOR UPDATE",
            account.account_id,
        )
        attempts = [asyncio.ensure_future(suite.stub.Send(request, metadata=FRONTEND, timeout=20)) for _ in range(2)]
        await eventually(
            lambda: wallet_db.fetchval(
                """SELECT count(*) FROM pg_stat_activity
                   WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FOR UPDATE%'"""
            ),
            lambda waiting: waiting >= 1,
        )
        await hold.rollback()
        outcomes = await asyncio.gather(*attempts, return_exceptions=True)
    finally:
        await holder.close()
    recorded = await wallet_db.fetch("SELECT transaction_id FROM wallet_txs WHERE request_id = $1", request.request_id)
    assert len(recorded) == 1  # holds today: the unique index keeps the send single
    answers = []
    for outcome in outcomes:
        if isinstance(outcome, grpc.aio.AioRpcError):
            answers.append(f"{outcome.code().name} {error_reason(outcome)}")
        else:
            assert isinstance(outcome, wallet_pb2.SendResponse), outcome
            assert outcome.transaction.transaction_id == recorded[0]["transaction_id"]
            answers.append("OK")
    await suite.assert_reconciled()
    # The contract: the recorded answer, or ABORTED REQUEST_IN_PROGRESS (retry to get it); never INTERNAL.
    assert all(a in ("OK", "ABORTED REQUEST_IN_PROGRESS") for a in answers), answers


async def test_a_send_mined_while_its_worker_was_dead_is_confirmed(
    suite: WalletSuite, wallet_db: asyncpg.Connection
) -> None:
    account, _ = await suite.funded_account(70_000)
    await suite.stop_wallet()
    # The doomed worker signs and broadcasts into an ARC that never answers (no WoC fallback), holding
    # the send for 8 s: long enough for the next wallet's follower to scan a block first.
    env = suite.env(
        WALLET_FEE_RATE_SAT_PER_KB="1000",
        WALLET_WOC_BROADCAST_FALLBACK="0",
        WALLET_CHAIN_TIMEOUT_MS="30000",
        WALLET_WORK_LEASE_MS="8000",
    )
    await suite.sim.faults({"rules": [{"face": "arc", "action": "hang"}]})
    async with service_process("wallet", "WALLET_GRPC_PORT", env) as doomed:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{doomed.port}") as channel:
            stub: wallet_pb2_grpc.WalletServiceAsyncStub = wallet_pb2_grpc.WalletServiceStub(channel)  # type: ignore[assignment]
            sent = await stub.Send(send_request(account.account_id, 25_000), metadata=FRONTEND, timeout=10)
        transaction_id = sent.transaction.transaction_id
        await eventually(lambda: _fault_used(suite), lambda used: used, timeout_s=10)
        doomed.kill9()
    await suite.sim.clear_faults()
    row = await wallet_db.fetchrow(
        "SELECT status, txid, raw_tx FROM wallet_txs WHERE transaction_id = $1", transaction_id
    )
    assert row is not None and row["status"] == "sending"
    # What the dead worker's broadcast would have done had ARC taken it: the transaction is on chain.
    posted = await suite.sim.http.post(f"{suite.sim.base_url}/v1/tx", json={"rawTx": bytes(row["raw_tx"]).hex()})
    assert posted.json()["txStatus"] == "SEEN_ON_NETWORK", posted.text
    [block] = await suite.sim.mine(1)
    assert row["txid"] in block["txids"]
    await suite.start_wallet(WALLET_FEE_RATE_SAT_PER_KB="1000", WALLET_WORK_LEASE_MS="2000")
    await eventually(
        lambda: wallet_db.fetchval("SELECT block_hash FROM scanned_blocks WHERE height = $1", block["height"]),
        lambda scanned: scanned == block["hash"],
    )
    status = await wallet_db.fetchval("SELECT status FROM wallet_txs WHERE transaction_id = $1", transaction_id)
    assert status == "sending"  # the block was scanned while the send was still held by the dead worker
    # Taken over once the dead worker's hold ends: broadcast again (ARC: already mined), UNCONFIRMED.
    await eventually(
        lambda: wallet_db.fetchval("SELECT status FROM wallet_txs WHERE transaction_id = $1", transaction_id),
        lambda s: s != "sending",
        timeout_s=20,
    )
    await suite.sim.mine(2)
    await suite.assert_reconciled()
    settled = await eventually(
        lambda: wallet_db.fetchrow(
            "SELECT status, block_hash FROM wallet_txs WHERE transaction_id = $1", transaction_id
        ),
        lambda r: r is not None and r["status"] == "confirmed",
        timeout_s=5,
    )
    assert settled is not None and settled["block_hash"] == block["hash"]


async def _fault_used(suite: WalletSuite) -> bool:
    return any(rule["used"] for rule in await suite.sim.fault_rules())


async def test_a_send_built_again_after_a_double_spend_verdict_ends_and_the_books_reconcile(
    suite: WalletSuite, wallet_db: asyncpg.Connection
) -> None:
    account, _ = await suite.funded_account(40_000)
    # ARC says the first broadcast is a double spend (of a transaction that never shows up): the send is
    # proven dead, its coin suspect; the audit round's sync finds the coin unspent, so it is the only coin
    # the send can be built from again.
    await suite.sim.faults({"rules": [{"face": "arc", "action": "double_spend:" + "ab" * 32, "times": 1}]})
    sent = await suite.stub.Send(send_request(account.account_id, 10_000), metadata=FRONTEND)
    transaction_id = sent.transaction.transaction_id
    moves = await eventually(
        lambda: wallet_db.fetch(
            "SELECT to_status, reason, txid FROM tx_audit WHERE transaction_id = $1 ORDER BY audit_id", transaction_id
        ),
        lambda rows: [r["reason"] for r in rows].count("SIGNED") == 2,
    )
    signed = [r["txid"] for r in moves if r["reason"] == "SIGNED"]
    assert signed[0] == signed[1]  # today: the same coin, the same bytes, the same txid
    final = await eventually(
        lambda: wallet_db.fetchrow(
            "SELECT status, failure_reason FROM wallet_txs WHERE transaction_id = $1", transaction_id
        ),
        lambda r: r is not None and r["status"] in ("unconfirmed", "confirmed", "failed"),
        timeout_s=15,
    )
    assert final is not None and (final["status"] != "failed" or final["failure_reason"])
    await suite.assert_reconciled()
