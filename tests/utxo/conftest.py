"""An in-process utxo service on 127.0.0.1:0 with a real channel, and direct access to its schema."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg
import grpc
import pytest
from proofline.common.v1 import common_pb2
from proofline.utxo.v1 import utxo_pb2, utxo_pb2_grpc

from proofline_kit.settings import EnvReader
from services.utxo.app import RunningUtxo, start_utxo
from services.utxo.settings import read_utxo_settings

ADMIN = (("authorization", "Bearer admin-token-0001"),)
PUBLISHER = (("authorization", "Bearer publisher-token-01"),)
WALLET = (("authorization", "Bearer wallet-token-00001"),)
STRANGER = (("authorization", "Bearer stranger-token-01"),)
AUTH_TOKENS = (
    "admin:admin:admin-token-0001,publisher:pool:publisher-token-01,"
    "wallet:pool:wallet-token-00001,stranger:service:stranger-token-01"
)
OWNER = "publish-key-1"
PUBLISH = utxo_pb2.UTXO_PURPOSE_PUBLISH
P2PKH = bytes.fromhex("76a914" + "11" * 20 + "88ac")


@dataclass
class UtxoUnderTest:
    running: RunningUtxo
    stub: utxo_pb2_grpc.UtxoServiceAsyncStub
    channel: grpc.aio.Channel
    env: dict[str, str]


def utxo_env(database_url: str, redis_url: str, **overrides: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": f"t{os.urandom(4).hex()}",
        "PROOFLINE_ENV": "test",
        "UTXO_GRPC_PORT": "0",
        "UTXO_METRICS_PORT": "0",
        "AUTH_TOKENS": AUTH_TOKENS,
        "UTXO_NETWORK": "testnet",
        "UTXO_DB_POOL_SIZE": "4",
        "UTXO_MAINTENANCE_ENABLED": "0",
        "LOG_LEVEL": "warning",
    }
    env.update(overrides)
    return env


async def start_utxo_under_test(env: dict[str, str]) -> UtxoUnderTest:
    running = await start_utxo(read_utxo_settings(EnvReader(env)), configure_logs=False)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    return UtxoUnderTest(running, utxo_pb2_grpc.UtxoServiceStub(channel), channel, env)  # type: ignore[arg-type]


async def stop_utxo_under_test(under_test: UtxoUnderTest) -> None:
    await under_test.channel.close()
    await under_test.running.stop()


@pytest.fixture
async def utxo(database_url: str, redis_url: str) -> AsyncIterator[UtxoUnderTest]:
    under_test = await start_utxo_under_test(utxo_env(database_url, redis_url))
    try:
        yield under_test
    finally:
        await stop_utxo_under_test(under_test)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test's database that sees the utxo schema (for seeding and checks)."""
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "utxo"})
    try:
        yield conn
    finally:
        await conn.close()


def random_txid() -> str:
    return os.urandom(32).hex()


async def seed(
    db: asyncpg.Connection,
    satoshis: Sequence[int],
    *,
    purpose: str = "publish",
    owner: str = OWNER,
    status: str = "available",
    block_height: int | None = 100,
) -> list[common_pb2.Outpoint]:
    """Insert outpoints straight into the pool (as if a sync had found them), one per value."""
    txid = random_txid()
    await db.executemany(
        """INSERT INTO utxos (txid, vout, satoshis, locking_script, owner_key_id, purpose, status, block_height)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        [(txid, vout, sats, P2PKH, owner, purpose, status, block_height) for vout, sats in enumerate(satoshis)],
    )
    return [common_pb2.Outpoint(txid=txid, vout=vout) for vout in range(len(satoshis))]


async def status_of(db: asyncpg.Connection, outpoint: common_pb2.Outpoint) -> str:
    value: str = await db.fetchval(
        "SELECT status FROM utxos WHERE txid = $1 AND vout = $2", outpoint.txid, outpoint.vout
    )
    return value


def lease_request(request_id: str, **fields: object) -> utxo_pb2.LeaseUtxosRequest:
    values: dict[str, object] = {"request_id": request_id, "purpose": PUBLISH}
    values.update(fields)
    return utxo_pb2.LeaseUtxosRequest(**values)  # type: ignore[arg-type]


def outpoints_of(lease: utxo_pb2.Lease) -> list[tuple[str, int]]:
    return [(u.outpoint.txid, u.outpoint.vout) for u in lease.utxos]
