"""Many concurrent leasers: no outpoint is ever in two live leases, checked from the database.

The check replays the database's own history (`utxo_events`, written by the same statement as each
change) and its final rows; it never trusts what the service told the clients.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from proofline.utxo.v1 import utxo_pb2

from proofline_kit.rpc.status import error_reason
from tests.utxo.conftest import PUBLISHER, WALLET, UtxoUnderTest, lease_request, random_txid, seed

WORKERS = 16
POOL_SIZE = 400
RUN_SECONDS = 5.0
# A stalled holder whose outpoint was taken and spent by another lease sees ALREADY_SPENT (spent checks
# come before fencing).
EXPECTED_REFUSALS = {"POOL_EXHAUSTED", "FENCING_TOKEN_STALE", "LEASE_CLOSED", "ALREADY_SPENT"}


@dataclass
class Tally:
    leases: int = 0
    commits: int = 0
    releases: int = 0
    renewals: int = 0
    refusals: int = 0


async def worker(utxo: UtxoUnderTest, index: int, stop_at: float, tally: Tally) -> None:
    rng = random.Random(index)
    metadata = PUBLISHER if index % 2 else WALLET
    loop = asyncio.get_running_loop()
    n = 0
    while loop.time() < stop_at:
        n += 1
        duration = Duration(seconds=1)
        try:
            lease = (
                await utxo.stub.LeaseUtxos(
                    lease_request(
                        f"w{index}-{n}", count=rng.randint(1, 4), lease_duration=duration, allow_partial=True
                    ),
                    metadata=metadata,
                    timeout=10,
                )
            ).lease
            tally.leases += 1
            action = rng.random()
            if action < 0.15:
                # Stall past the expiry: others may take the outpoints; then try to carry on.
                await asyncio.sleep(1.05 + rng.random() * 0.3)
            elif action < 0.25:
                await utxo.stub.RenewLease(
                    utxo_pb2.RenewLeaseRequest(
                        request_id=f"w{index}-{n}-renew",
                        lease_id=lease.lease_id,
                        fencing_token=lease.fencing_token,
                        lease_duration=duration,
                    ),
                    metadata=metadata,
                    timeout=10,
                )
                tally.renewals += 1
            if rng.random() < 0.3:
                await utxo.stub.ReleaseLease(
                    utxo_pb2.ReleaseLeaseRequest(request_id=f"w{index}-{n}-release", lease_id=lease.lease_id),
                    metadata=metadata,
                    timeout=10,
                )
                tally.releases += 1
                continue
            inputs = [u.outpoint for u in lease.utxos]
            await utxo.stub.CommitSpend(
                utxo_pb2.CommitSpendRequest(
                    request_id=f"w{index}-{n}-commit",
                    lease_id=lease.lease_id,
                    fencing_token=lease.fencing_token,
                    spends=[utxo_pb2.Spend(txid=random_txid(), inputs=inputs)],
                    release_unspent=True,
                ),
                metadata=metadata,
                timeout=10,
            )
            tally.commits += 1
        except grpc.aio.AioRpcError as error:
            reason = error_reason(error)
            if reason not in EXPECTED_REFUSALS:
                raise
            tally.refusals += 1
            if reason == "POOL_EXHAUSTED":
                await asyncio.sleep(0.05)


async def reaper(utxo: UtxoUnderTest, stop_at: float) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < stop_at:
        await utxo.running.pool.reap_expired(batch=7)
        await asyncio.sleep(0.1)


@dataclass
class Holder:
    token: int
    expires_at: datetime
    reserved: bool


def replay(events: Sequence[Mapping[str, Any]]) -> dict[int, Holder | None]:
    """Walk each outpoint's history in commit order and assert the lease rules held at every step."""
    holders: dict[int, Holder | None] = defaultdict(lambda: None)
    spent: set[int] = set()
    for event in events:
        utxo_id, kind, token, at = event["utxo_id"], event["kind"], event["fencing_token"], event["at"]
        holder = holders[utxo_id]
        assert utxo_id not in spent, f"event {kind} after the outpoint was spent: {event}"
        if kind == "lease":
            if holder is not None:
                assert holder.expires_at <= at, f"outpoint {utxo_id} leased to {token} while {holder.token} was live"
                assert token > holder.token
            holders[utxo_id] = Holder(token, event["lease_expires_at"], True)
        elif kind == "renew":
            assert holder is not None and holder.token == token, f"renew by a lease that lost it: {event}"
            holders[utxo_id] = Holder(token, event["lease_expires_at"], True)
        elif kind == "reap":
            assert holder is not None and holder.reserved and holder.expires_at <= at, f"early reap: {event}"
            holders[utxo_id] = Holder(holder.token, holder.expires_at, False)
        elif kind in ("release", "commit"):
            assert holder is not None and holder.token == token, f"{kind} by a lease that lost it: {event}"
            holders[utxo_id] = None
            if kind == "commit":
                spent.add(utxo_id)
        else:
            raise AssertionError(f"unexpected event {kind}")
    return holders


@pytest.mark.timeout(90)
async def test_no_outpoint_is_ever_in_two_live_leases(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    await seed(db, [1_000 + i for i in range(POOL_SIZE)])
    tally = Tally()
    stop_at = asyncio.get_running_loop().time() + RUN_SECONDS
    await asyncio.gather(*(worker(utxo, i, stop_at, tally) for i in range(WORKERS)), reaper(utxo, stop_at))
    assert tally.leases > 60 and tally.commits > 20 and tally.releases > 5 and tally.renewals > 5, tally
    assert tally.refusals > 0, "stalled holders must have been fenced at least once"

    events = await db.fetch(
        "SELECT id, at, utxo_id, kind, fencing_token, lease_expires_at FROM utxo_events ORDER BY id"
    )
    holders = replay([dict(e) for e in events])
    takeovers = sum(
        1
        for _, group in _by_utxo(events).items()
        for a, b in itertools.pairwise(group)
        if b["kind"] == "lease" and a["kind"] in ("lease", "renew", "reap")
    )
    assert takeovers > 0, "the run must have exercised takeovers of expired leases"

    rows = await db.fetch("SELECT id, status, fencing_token, spent_by_txid FROM utxos")
    spent_events = await db.fetch("SELECT utxo_id, count(*) AS n FROM utxo_events WHERE kind = 'commit' GROUP BY 1")
    assert all(r["n"] == 1 for r in spent_events), "an outpoint was committed twice"
    committed = {r["utxo_id"] for r in spent_events}
    for row in rows:
        holder = holders.get(row["id"])
        if row["status"] == "spent":
            assert row["id"] in committed
        elif row["status"] == "reserved":
            assert holder is not None and holder.reserved and holder.token == row["fencing_token"]
        else:
            assert row["status"] == "available"
            assert (holder.token if holder else None) == row["fencing_token"]
    # No two live reservations share an outpoint right now, and every reservation's lease exists.
    orphans = await db.fetchval(
        "SELECT count(*) FROM utxos u LEFT JOIN leases l USING (fencing_token) "
        "WHERE u.status = 'reserved' AND l.lease_id IS NULL"
    )
    assert orphans == 0


def _by_utxo(events: list[asyncpg.Record]) -> dict[int, list[asyncpg.Record]]:
    grouped: dict[int, list[asyncpg.Record]] = defaultdict(list)
    for event in events:
        grouped[event["utxo_id"]].append(event)
    return grouped


async def test_the_database_refuses_to_hand_a_live_reservation_to_another_lease(
    utxo: UtxoUnderTest, db: asyncpg.Connection
) -> None:
    """By construction: even SQL that bypasses the service cannot double-lease."""
    outpoint = (await seed(db, [100]))[0]
    first = (await utxo.stub.LeaseUtxos(lease_request("r1", count=1), metadata=PUBLISHER)).lease
    other = await db.fetchval(
        "INSERT INTO leases (lease_id, caller_id, purpose, strategy, expires_at) "
        "VALUES ('intruder', 'x', 'publish', 'smallest_first', now() + interval '1 minute') RETURNING fencing_token"
    )
    where = f"WHERE txid = '{outpoint.txid}' AND vout = 0"
    with pytest.raises(asyncpg.CheckViolationError, match="live lease"):
        await db.execute(f"UPDATE utxos SET fencing_token = {other} {where}")
    with pytest.raises(asyncpg.CheckViolationError, match="live lease"):
        await db.execute(f"UPDATE utxos SET status = 'available', lease_expires_at = NULL {where}")
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute(f"UPDATE utxos SET status = 'available', lease_expires_at = NULL, fencing_token = 0 {where}")
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute(f"UPDATE utxos SET status = 'reserved', lease_expires_at = NULL {where}")
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute(f"UPDATE utxos SET status = 'available', fencing_token = NULL {where}")
    assert await db.fetchval(f"SELECT fencing_token FROM utxos {where}") == first.fencing_token


def test_the_history_check_catches_a_double_lease() -> None:
    """The replay is not vacuous: a lease of an outpoint under another live lease fails it."""
    start = datetime(2026, 1, 1, tzinfo=UTC)

    def event(kind: str, token: int, at_s: float, expires_s: float | None = None) -> dict[str, Any]:
        expires = start + timedelta(seconds=expires_s) if expires_s is not None else None
        return {
            "utxo_id": 1,
            "kind": kind,
            "fencing_token": token,
            "at": start + timedelta(seconds=at_s),
            "lease_expires_at": expires,
        }

    replay([event("lease", 1, 0, 5), event("lease", 2, 6, 11), event("commit", 2, 7)])
    with pytest.raises(AssertionError, match="while 1 was live"):
        replay([event("lease", 1, 0, 5), event("lease", 2, 4, 9)])
    with pytest.raises(AssertionError, match="lost it"):
        replay([event("lease", 1, 0, 5), event("lease", 2, 6, 11), event("commit", 1, 7)])
    with pytest.raises(AssertionError, match="early reap"):
        replay([event("lease", 1, 0, 5), event("reap", 1, 3)])
