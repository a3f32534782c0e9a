"""Signer throughput: signatures/s through the batched Sign RPC vs in-process libsecp256k1, and
transactions/s through SignTransactions (policy mode, batches of 500 publisher-shaped transactions).

Starts a real signer_gateway process (PostgreSQL from DATABASE_URL's server or this machine's),
drives it from this process with 1 and 8 concurrent clients at batch sizes 1 and 256, and prints
the ratio to signing the same digests in-process.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

import grpc
import psycopg
from bsv import PrivateKey
from proofline.common.v1 import common_pb2
from proofline.signer.v1 import signer_pb2, signer_pb2_grpc

from bench.measure import free_port
from services.signer_gateway.domain import ecdsa

SERVER_URL = os.environ.get("BENCH_DATABASE_SERVER_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TOKEN = "bench-admin-token"
DURATION_S = float(os.environ.get("BENCH_SIGNER_SECONDS", "5"))


@dataclass
class Result:
    clients: int
    batch: int
    signatures_per_s: float
    p50_ms: float
    p99_ms: float


def in_process_rate(count: int = 20_000) -> tuple[float, float]:
    """(sign only, sign + verify) per second on one core of this process, with the same native calls
    the gateway makes; best of three to damp the noise of a shared machine."""
    secret = PrivateKey().serialize()
    public = ecdsa.public_key_of(secret)
    digests = [os.urandom(32) for _ in range(count)]
    best_sign, best_both = 0.0, 0.0
    for _ in range(3):
        start = time.perf_counter()
        signatures = [ecdsa.sign_digest(secret, d) for d in digests]
        sign_s = time.perf_counter() - start
        start = time.perf_counter()
        for d, s in zip(digests, signatures, strict=True):
            ecdsa.verify_digest(public, s, d)
        verify_s = time.perf_counter() - start
        best_sign = max(best_sign, count / sign_s)
        best_both = max(best_both, count / (sign_s + verify_s))
    return best_sign, best_both


def _result(clients: int, batch: int, rate: float, latencies: list[float]) -> Result:
    ordered = sorted(latencies)
    p50 = ordered[len(ordered) // 2] * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    return Result(clients, batch, rate, p50, p99)


async def drive(port: int, clients: int, batch: int) -> Result:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = signer_pb2_grpc.SignerServiceStub(channel)
    metadata = (("authorization", f"Bearer {TOKEN}"),)
    latencies: list[float] = []
    signed = 0
    stop_at = time.perf_counter() + DURATION_S
    # Requests are built before the clock starts so the client spends its CPU on calls only.
    templates = [
        [signer_pb2.SignItem(key_id="bench-key", digest=os.urandom(32)) for _ in range(batch)] for _ in range(16)
    ]

    async def client() -> None:
        nonlocal signed
        turn = 0
        while time.perf_counter() < stop_at:
            turn += 1
            request = signer_pb2.SignRequest(request_id=uuid.uuid4().hex, items=templates[turn % len(templates)])
            start = time.perf_counter()
            response = await stub.Sign(request, metadata=metadata, timeout=30)
            latencies.append(time.perf_counter() - start)
            signed += len(response.signatures)

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - began
    await channel.close()
    return _result(clients, batch, signed / elapsed, latencies)


def _transactions(public_key: bytes, count: int) -> list[signer_pb2.TransactionToSign]:
    """Publisher-shaped transactions: one P2PKH input, an OP_RETURN record and change."""
    lock = b"\x76\xa9\x14" + ecdsa.pubkey_hash(public_key) + b"\x88\xac"
    transactions = []
    for _ in range(count):
        record = b"\x00\x6a\x09proofline\x40" + os.urandom(64)
        raw = b"".join(
            [
                (1).to_bytes(4, "little"),
                b"\x01",
                os.urandom(32),
                (0).to_bytes(4, "little"),
                b"\x00",
                b"\xff\xff\xff\xff",
                b"\x02",
                (0).to_bytes(8, "little"),
                bytes([len(record)]),
                record,
                (900).to_bytes(8, "little"),
                bytes([len(lock)]),
                lock,
                (0).to_bytes(4, "little"),
            ]
        )
        transactions.append(
            signer_pb2.TransactionToSign(
                unsigned_tx=raw,
                spent_outputs=[common_pb2.SpentOutput(satoshis=1_000, locking_script=lock)],
                input_keys=[signer_pb2.InputKey(input_index=0, key_id="bench-key")],
            )
        )
    return transactions


async def drive_transactions(port: int, clients: int, batch: int) -> Result:
    """SignTransactions (policy mode) with publisher-shaped transactions: transactions/s."""
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = signer_pb2_grpc.SignerServiceStub(channel)
    metadata = (("authorization", f"Bearer {TOKEN}"),)
    key = await stub.GetPublicKey(signer_pb2.GetPublicKeyRequest(key_id="bench-key"), metadata=metadata)
    templates = [_transactions(key.key.public_key, batch) for _ in range(4)]
    latencies: list[float] = []
    signed = 0
    stop_at = time.perf_counter() + DURATION_S

    async def client() -> None:
        nonlocal signed
        turn = 0
        while time.perf_counter() < stop_at:
            turn += 1
            request = signer_pb2.SignTransactionsRequest(
                request_id=uuid.uuid4().hex, transactions=templates[turn % len(templates)]
            )
            start = time.perf_counter()
            response = await stub.SignTransactions(request, metadata=metadata, timeout=60)
            latencies.append(time.perf_counter() - start)
            signed += sum(1 for r in response.results if r.HasField("signed"))

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - began
    await channel.close()
    return _result(clients, batch, signed / elapsed, latencies)


async def wait_ready(port: int) -> None:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = signer_pb2_grpc.SignerServiceStub(channel)
    for _ in range(100):
        try:
            await stub.CreateKey(
                signer_pb2.CreateKeyRequest(request_id="bench-create", key_id="bench-key"),
                metadata=(("authorization", f"Bearer {TOKEN}"),),
                timeout=2,
            )
            break
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            await asyncio.sleep(0.2)
    await channel.close()


def main() -> None:
    database = f"proofline_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')  # type: ignore[arg-type]
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": SERVER_URL.rsplit("/", 1)[0] + f"/{database}",
        "SIGNER_GRPC_PORT": str(port),
        "SIGNER_METRICS_PORT": "0",
        "SIGNER_MASTER_KEYS": "1:" + base64.b64encode(os.urandom(32)).decode(),
        "AUTH_TOKENS": f"bench:admin:{TOKEN}",
        "LOG_LEVEL": "warning",
    }
    server = subprocess.Popen([sys.executable, "-m", "services.signer_gateway"], env=env)
    try:
        asyncio.run(wait_ready(port))
        print("signer_gateway: Sign RPC throughput (server in its own process, client in this one)")
        print("  baseline: in-process libsecp256k1 on one core, measured right before each row (best of 3)")
        print(
            f"  {'clients':>7} {'batch':>5} {'sigs/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'base sign/s':>11} {'vs sign':>8} {'vs sign+verify':>14}"
        )
        for clients, batch in [(1, 1), (8, 1), (1, 256), (8, 256)]:
            sign_only, sign_verify = in_process_rate()
            result = asyncio.run(drive(port, clients, batch))
            print(
                f"  {result.clients:>7} {result.batch:>5} {result.signatures_per_s:>10,.0f} {result.p50_ms:>8.1f} "
                f"{result.p99_ms:>8.1f} {sign_only:>11,.0f} {result.signatures_per_s / sign_only:>8.2f} "
                f"{result.signatures_per_s / sign_verify:>14.2f}"
            )
        print("signer_gateway: SignTransactions throughput (1-input 2-output transactions, policy mode)")
        print(f"  {'clients':>7} {'batch':>5} {'tx/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
        for clients, batch in [(1, 500), (4, 500)]:
            result = asyncio.run(drive_transactions(port, clients, batch))
            print(
                f"  {result.clients:>7} {result.batch:>5} {result.signatures_per_s:>10,.0f} "
                f"{result.p50_ms:>8.1f} {result.p99_ms:>8.1f}"
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
        with psycopg.connect(SERVER_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
