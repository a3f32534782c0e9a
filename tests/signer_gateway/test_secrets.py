"""No key material in logs or in the database in plaintext; master key rotation; settings."""

from __future__ import annotations

import base64
import io
import os
import subprocess

import asyncpg
import grpc
import pytest
from bsv import PrivateKey
from proofline.signer.v1 import signer_pb2

from proofline_kit.logging import configure_logging
from proofline_kit.settings import EnvReader, SettingsError
from services.signer_gateway.domain.keystore import MasterKeyring, SealedSecret
from services.signer_gateway.settings import read_signer_settings
from tests.harness.grpc_errors import expect_rpc_error
from tests.signer_gateway.conftest import (
    ADMIN,
    PUBLISHER,
    create_key,
    signer_env,
    start_signer_under_test,
    stop_signer_under_test,
)


async def _sealed_secrets(database_url: str) -> dict[str, SealedSecret]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT key_id, sealed_secret, sealed_nonce, master_key_version FROM signer.keys WHERE backend = 'local'"
        )
    finally:
        await conn.close()
    return {
        r["key_id"]: SealedSecret(bytes(r["sealed_secret"]), bytes(r["sealed_nonce"]), r["master_key_version"])
        for r in rows
    }


def _dump_database(database_url: str) -> bytes:
    return subprocess.run(
        ["pg_dump", "--data-only", "--schema=signer", database_url],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout


async def test_no_key_material_in_logs_or_database(database_url: str) -> None:
    log_stream = io.BytesIO()
    configure_logging("signer_gateway", "debug", stream=log_stream)
    master_key = os.urandom(32)
    env = signer_env(database_url, SIGNER_MASTER_KEYS="1:" + base64.b64encode(master_key).decode(), LOG_LEVEL="debug")
    signer = await start_signer_under_test(env)
    try:
        await create_key(signer, "publish-1")
        await signer.stub.Sign(
            signer_pb2.SignRequest(
                request_id="s1", items=[signer_pb2.SignItem(key_id="publish-1", digest=os.urandom(32))]
            ),
            metadata=PUBLISHER,
        )
        await expect_rpc_error(
            signer.stub.Sign(
                signer_pb2.SignRequest(request_id="s2", items=[signer_pb2.SignItem(key_id="publish-1", digest=b"x")]),
                metadata=PUBLISHER,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
    finally:
        await stop_signer_under_test(signer)
    secret = MasterKeyring({1: master_key}).open("publish-1", (await _sealed_secrets(database_url))["publish-1"])
    key = PrivateKey(secret)
    forbidden = [
        secret,
        secret.hex().encode(),
        key.wif().encode(),
        key.wif(compressed=False).encode(),
        base64.b64encode(secret),
        master_key,
        master_key.hex().encode(),
        base64.b64encode(master_key),
        b"admin-token-0001",
        b"publisher-token-01",
    ]
    logs = log_stream.getvalue()
    dump = _dump_database(database_url)
    assert b"signer.started" in logs and b"rpc.finished" in logs  # the capture really saw the logs
    assert b"publish-1" in dump  # the dump really holds the keys table
    for needle in forbidden:
        assert needle not in logs
        assert needle not in dump
    # The row cannot be opened without the master key.
    with pytest.raises(Exception):  # noqa: B017, PT011 - cryptography raises InvalidTag
        MasterKeyring({1: os.urandom(32)}).open("publish-1", (await _sealed_secrets(database_url))["publish-1"])


async def test_master_key_rotation_reseals_keys_and_they_still_sign(database_url: str) -> None:
    old, new = base64.b64encode(os.urandom(32)).decode(), base64.b64encode(os.urandom(32)).decode()
    signer = await start_signer_under_test(signer_env(database_url, SIGNER_MASTER_KEYS=f"1:{old}"))
    try:
        before = await create_key(signer, "publish-1")
    finally:
        await stop_signer_under_test(signer)
    assert {s.master_key_version for s in (await _sealed_secrets(database_url)).values()} == {1}
    signer = await start_signer_under_test(signer_env(database_url, SIGNER_MASTER_KEYS=f"1:{old},2:{new}"))
    await stop_signer_under_test(signer)
    assert {s.master_key_version for s in (await _sealed_secrets(database_url)).values()} == {2}
    signer = await start_signer_under_test(signer_env(database_url, SIGNER_MASTER_KEYS=f"2:{new}"))
    try:
        response = await signer.stub.Sign(
            signer_pb2.SignRequest(
                request_id="s1", items=[signer_pb2.SignItem(key_id="publish-1", digest=b"\x07" * 32)]
            ),
            metadata=ADMIN,
        )
        assert response.signatures[0].public_key == before.public_key
    finally:
        await stop_signer_under_test(signer)


async def test_signing_audit_is_append_only(database_url: str) -> None:
    signer = await start_signer_under_test(signer_env(database_url))
    try:
        await create_key(signer, "publish-1")
        await signer.stub.Sign(
            signer_pb2.SignRequest(
                request_id="s1", items=[signer_pb2.SignItem(key_id="publish-1", digest=b"\x01" * 32)]
            ),
            metadata=PUBLISHER,
        )
    finally:
        await stop_signer_under_test(signer)
    conn = await asyncpg.connect(database_url)
    try:
        for statement in [
            "UPDATE signer.signing_audit SET outcome = 'denied'",
            "DELETE FROM signer.signing_audit",
            "TRUNCATE signer.signing_audit",
        ]:
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await conn.execute(statement)
        assert await conn.fetchval("SELECT count(*) FROM signer.signing_audit") == 1
    finally:
        await conn.close()


def test_settings_refuse_production_without_secrets() -> None:
    base = {"DATABASE_URL": "postgresql://x@127.0.0.1/db", "PROOFLINE_ENV": "production"}
    with pytest.raises(SettingsError, match="AUTH_TOKENS"):
        read_signer_settings(EnvReader({**base, "SIGNER_MASTER_KEYS": "1:" + base64.b64encode(b"k" * 32).decode()}))
    with pytest.raises(SettingsError, match="SIGNER_MASTER_KEYS"):
        read_signer_settings(EnvReader({**base, "AUTH_TOKENS": "a:admin:long-enough-token"}))
    with pytest.raises(SettingsError, match="32 bytes"):
        read_signer_settings(
            EnvReader({**base, "AUTH_TOKENS": "a:admin:long-enough-token", "SIGNER_MASTER_KEYS": "1:c2hvcnQ="})
        )
    with pytest.raises(SettingsError, match="KMS_SIGN_URL"):
        read_signer_settings(
            EnvReader(
                {
                    **base,
                    "AUTH_TOKENS": "a:admin:long-enough-token",
                    "SIGNER_MASTER_KEYS": "1:" + base64.b64encode(b"k" * 32).decode(),
                    "SIGNER_BACKEND": "external_kms",
                }
            )
        )
    settings = read_signer_settings(
        EnvReader(
            {
                **base,
                "AUTH_TOKENS": "a:admin:long-enough-token",
                "SIGNER_MASTER_KEYS": "1:" + base64.b64encode(b"k" * 32).decode(),
            }
        )
    )
    assert "long-enough-token" not in repr(settings)
    assert base64.b64encode(b"k" * 32).decode() not in repr(settings)
