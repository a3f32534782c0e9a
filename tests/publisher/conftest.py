"""An in-process publisher on 127.0.0.1:0 with a real channel, real PostgreSQL and Redis, per test;
and identity keys that sign intents the way a client does."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
import pytest
import redis.asyncio as aioredis
import rfc8785
from bsv import PrivateKey
from bsv.native import NATIVE_MODULE
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from proofline.publisher.v1 import publisher_pb2, publisher_pb2_grpc

from proofline_kit.intents.signatures import CURVE_ORDER, parse_der
from proofline_kit.settings import EnvReader
from services.publisher.app import RunningPublisher, start_publisher
from services.publisher.settings import read_publisher_settings

ADMIN = (("authorization", "Bearer admin-token-0001"),)
WALLET = (("authorization", "Bearer wallet-token-0001"),)
CLIENT = (("authorization", "Bearer client-token-0001"),)
STRANGER = (("authorization", "Bearer stranger-token-01"),)
AUTH_TOKENS = (
    "admin:admin:admin-token-0001,wallet:registrar:wallet-token-0001,"
    "client:publish:client-token-0001,stranger:service:stranger-token-01"
)


@dataclass
class PublisherUnderTest:
    running: RunningPublisher
    stub: publisher_pb2_grpc.PublisherServiceAsyncStub
    channel: grpc.aio.Channel
    env: dict[str, str]
    database_url: str
    redis_url: str

    async def stored(self) -> tuple[int, int, int]:
        """(jobs, job audit rows, recorded Publish/PublishBatch answers) in the database."""
        conn = await asyncpg.connect(self.database_url, server_settings={"search_path": "publisher"})
        try:
            row = await conn.fetchrow(
                """SELECT (SELECT count(*) FROM jobs) AS jobs, (SELECT count(*) FROM job_events) AS events,
                          (SELECT count(*) FROM idempotency_keys WHERE method LIKE 'Publish%') AS answers"""
            )
            assert row is not None
            return int(row["jobs"]), int(row["events"]), int(row["answers"])
        finally:
            await conn.close()

    async def redis_keys(self) -> list[bytes]:
        client = aioredis.from_url(self.redis_url)
        try:
            return [k async for k in client.scan_iter(match=f"{self.env['REDIS_KEY_PREFIX']}:*")]
        finally:
            await client.aclose()

    async def forget_nonces(self) -> None:
        """Empties the Redis fast path: PostgreSQL alone must still refuse replays."""
        client = aioredis.from_url(self.redis_url)
        try:
            async for key in client.scan_iter(match=f"{self.env['REDIS_KEY_PREFIX']}:publisher:nonce:*"):
                await client.delete(key)
        finally:
            await client.aclose()


def publisher_env(database_url: str, redis_url: str, **overrides: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": f"test-{uuid.uuid4().hex[:12]}",
        "PROOFLINE_ENV": "test",
        "PUBLISHER_GRPC_PORT": "0",
        "PUBLISHER_METRICS_PORT": "0",
        "AUTH_TOKENS": AUTH_TOKENS,
        "PUBLISHER_AUDIENCE": "proofline-test",
        "PUBLISHER_WATCH_POLL_MS": "2000",
        "LOG_LEVEL": "warning",
        "SHUTDOWN_GRACE_MS": "2000",
        # Intake only: these tests move jobs through the store themselves.
        "PUBLISHER_WORKERS": "0",
    }
    env.update(overrides)
    return env


async def start_publisher_under_test(env: dict[str, str], redis_url: str) -> PublisherUnderTest:
    running = await start_publisher(read_publisher_settings(EnvReader(env)), configure_logs=False)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    stub = publisher_pb2_grpc.PublisherServiceStub(channel)
    return PublisherUnderTest(running, stub, channel, env, env["DATABASE_URL"], redis_url)


async def stop_publisher_under_test(publisher: PublisherUnderTest) -> None:
    await publisher.channel.close()
    await publisher.running.stop()


@pytest.fixture
async def publisher(database_url: str, redis_url: str) -> AsyncIterator[PublisherUnderTest]:
    under_test = await start_publisher_under_test(publisher_env(database_url, redis_url), redis_url)
    try:
        yield under_test
    finally:
        await stop_publisher_under_test(under_test)


def error_metadata(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """The ErrorInfo metadata of a failed call."""
    status = rpc_status.from_call(error)
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return dict(info.metadata)
    raise AssertionError("no ErrorInfo")


def retry_after_ms(error: grpc.aio.AioRpcError) -> int | None:
    status = rpc_status.from_call(error)
    assert status is not None
    for detail in status.details:
        retry = error_details_pb2.RetryInfo()
        if detail.Unpack(retry):
            return int(retry.retry_delay.ToMilliseconds())
    return None


def canonical(value: Any) -> bytes:
    return rfc8785.dumps(value)


def high_s(signature: bytes) -> bytes:
    """The same signature with S replaced by n - S (valid ECDSA, but not low-S)."""
    r, s = parse_der(signature)

    def integer(value: int) -> bytes:
        body = value.to_bytes(32, "big").lstrip(b"\x00")
        if body[0] & 0x80:
            body = b"\x00" + body
        return b"\x02" + bytes([len(body)]) + body

    content = integer(r) + integer(CURVE_ORDER - s)
    return b"\x30" + bytes([len(content)]) + content


def new_nonce() -> str:
    return uuid.uuid4().hex


@dataclass
class IdentityKey:
    secret: bytes
    pubkey: bytes

    @classmethod
    def generate(cls) -> IdentityKey:
        key = PrivateKey()
        return cls(bytes(key.serialize()), bytes(key.public_key().serialize(compressed=True)))

    def sign(self, payload: bytes) -> bytes:
        return bytes(NATIVE_MODULE.ecdsa_sign(hashlib.sha256(payload).digest(), self.secret))

    def payload(
        self,
        record: dict[str, Any] | None = None,
        *,
        nonce: str | None = None,
        iat: int | None = None,
        exp: int | None = None,
        aud: str | None = "proofline-test",
        **extra: Any,
    ) -> dict[str, Any]:
        now = int(time.time())
        body: dict[str, Any] = {
            "nonce": nonce or new_nonce(),
            "iat": now if iat is None else iat,
            "exp": (now if iat is None else iat) + 600 if exp is None else exp,
            "record": {"doc": "sha256:" + os.urandom(8).hex()} if record is None else record,
        }
        if aud is not None:
            body["aud"] = aud
        body.update(extra)
        return body

    def intent(self, payload: dict[str, Any] | bytes | None = None, **fields: Any) -> publisher_pb2.SignedIntent:
        """A signed intent over the canonical bytes of `payload` (or of a fresh payload), or over
        the given raw bytes as they are."""
        if payload is None:
            payload = self.payload(**fields)
        data = payload if isinstance(payload, bytes) else canonical(payload)
        return publisher_pb2.SignedIntent(signed_payload=data, signature=self.sign(data), pubkey=self.pubkey)


async def register(
    publisher: PublisherUnderTest, key: IdentityKey | None = None, label: str = "test key", owner_ref: str = ""
) -> IdentityKey:
    key = key or IdentityKey.generate()
    await publisher.stub.RegisterIdentity(
        publisher_pb2.RegisterIdentityRequest(
            request_id=f"reg-{key.pubkey.hex()[:40]}", pubkey=key.pubkey, label=label, owner_ref=owner_ref
        ),
        metadata=WALLET,
        timeout=10,
    )
    return key


async def publish(
    publisher: PublisherUnderTest, intent: publisher_pb2.SignedIntent, request_id: str | None = None, **fields: Any
) -> publisher_pb2.PublishResponse:
    response: publisher_pb2.PublishResponse = await publisher.stub.Publish(
        publisher_pb2.PublishRequest(request_id=request_id or f"pub-{uuid.uuid4().hex}", intent=intent, **fields),
        metadata=CLIENT,
        timeout=10,
    )
    return response
