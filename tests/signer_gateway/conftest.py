"""An in-process signing gateway on 127.0.0.1:0 with a real channel, per test."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from proofline.signer.v1 import signer_pb2, signer_pb2_grpc

from proofline_kit.settings import EnvReader
from services.signer_gateway.app import RunningSigner, start_signer
from services.signer_gateway.settings import read_signer_settings
from tests.harness.fake_kms import FakeKms

ADMIN = (("authorization", "Bearer admin-token-0001"),)
PUBLISHER = (("authorization", "Bearer publisher-token-01"),)
# Testnet P2PKH addresses of no key of the gateway: destinations a policy may allow or refuse.
OUTSIDE = "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn"
ELSEWHERE = "n3GNqMveyvaPvUbH469vDRadqpJMPc84JA"
STRANGER = (("authorization", "Bearer stranger-token-01"),)
AUTH_TOKENS = "admin:admin:admin-token-0001,publisher:service:publisher-token-01,stranger:service:stranger-token-01"
SIGNER_ACL = "publisher=publish-*|shared"


@dataclass
class SignerUnderTest:
    running: RunningSigner
    stub: signer_pb2_grpc.SignerServiceAsyncStub
    channel: grpc.aio.Channel
    env: dict[str, str]


def signer_env(database_url: str, **overrides: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url,
        "PROOFLINE_ENV": "test",
        "SIGNER_GRPC_PORT": "0",
        "SIGNER_METRICS_PORT": "0",
        "SIGNER_MASTER_KEYS": "1:" + base64.b64encode(os.urandom(32)).decode(),
        "AUTH_TOKENS": AUTH_TOKENS,
        "SIGNER_ACL": SIGNER_ACL,
        "SIGNER_NETWORK": "testnet",
        "LOG_LEVEL": "warning",
    }
    env.update(overrides)
    return env


async def start_signer_under_test(env: dict[str, str]) -> SignerUnderTest:
    running = await start_signer(read_signer_settings(EnvReader(env)), configure_logs=False)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    return SignerUnderTest(running, signer_pb2_grpc.SignerServiceStub(channel), channel, env)


async def stop_signer_under_test(signer: SignerUnderTest) -> None:
    await signer.channel.close()
    await signer.running.stop()


@pytest.fixture
async def fake_kms() -> AsyncIterator[FakeKms]:
    kms = FakeKms()
    await kms.start()
    try:
        yield kms
    finally:
        await kms.stop()


@pytest.fixture
async def signer(database_url: str, fake_kms: FakeKms) -> AsyncIterator[SignerUnderTest]:
    under_test = await start_signer_under_test(
        signer_env(database_url, KMS_SIGN_URL=fake_kms.url, KMS_MAX_ATTEMPTS="3", KMS_TIMEOUT_MS="2000")
    )
    try:
        yield under_test
    finally:
        await stop_signer_under_test(under_test)


async def create_key(
    signer: SignerUnderTest,
    key_id: str,
    policy: signer_pb2.KeyPolicy | None = None,
    backend: signer_pb2.KeyBackend.ValueType = signer_pb2.KEY_BACKEND_LOCAL,
) -> signer_pb2.Key:
    response = await signer.stub.CreateKey(
        signer_pb2.CreateKeyRequest(request_id=f"create-{key_id}", key_id=key_id, backend=backend, policy=policy),
        metadata=ADMIN,
        timeout=10,
    )
    return response.key
