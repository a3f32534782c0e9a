"""`make run` for real: the whole Container A side, a demo pool funded and split on chainsim, a demo
identity, and the two Publish commands the banner prints, run as a person would (real grpcurl,
real `proofline-intent`), to SENT and then CONFIRMED; then the wallet's lines (create an account,
fund its deposit address, mine, read the balance, send) to an UNCONFIRMED send; then the sign-up
lines (start, read the code from the mail the stack's SMTP server kept, complete) to an account."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import tempfile
import uuid
from pathlib import Path

import httpx

from proofline_tools.devstack.config import SERVICES
from tests.harness.devstack import Devstack, free_port, supervisor_env

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PUBLISH = "proofline.publisher.v1.PublisherService/Publish"


async def run_shell(command: str, timeout_s: float = 60) -> dict[str, object]:
    """One banner line through bash, with the venv's commands first on PATH; its JSON answer."""
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-o",
        "pipefail",
        "-c",
        command.replace(".venv/bin/", f"{BIN}/"),
        env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout_s)
    assert process.returncode == 0, f"{command[:200]}… failed: {err.decode()}"
    answer: dict[str, object] = json.loads(out)
    return answer


async def job_status(address: str, job_id: str) -> str:
    answer = await run_shell(
        f"grpcurl -plaintext -H 'authorization: Bearer dev-admin-token' -d '{{\"job_id\":\"{job_id}\"}}' "
        f"{address} proofline.publisher.v1.PublisherService/GetJob"
    )
    job = answer["job"]
    assert isinstance(job, dict)
    return str(job["status"])


async def run_wallet_lines(banner: str) -> None:
    """The wallet's banner lines, in order, as a person would run them: create the account (a replay
    of the demo's), fund its deposit address, mine, read the balance until the deposit is available,
    send."""
    lines = banner.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("wallet (demo account"))
    create, fund, mine, balance, send = (line.strip() for line in lines[start + 1 : start + 6])
    account = await run_shell(create)
    assert isinstance(account["account"], dict) and account["account"]["external_id"] == "make-run-demo"
    assert "txid" in await run_shell(fund)
    assert isinstance(await run_shell(mine.split("   #")[0]), list)
    for _ in range(100):
        answer = await run_shell(balance)
        assert isinstance(answer["balance"], dict)
        if answer["balance"].get("available_satoshis") == "100000":
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(f"the demo deposit never became available: {answer}")
    sent = await run_shell(send)
    transaction = sent["transaction"]
    assert isinstance(transaction, dict)
    assert transaction["status"] == "TRANSACTION_STATUS_UNCONFIRMED", sent
    assert transaction["amount_satoshis"] == "10000" and re.fullmatch(r"[0-9a-f]{64}", str(transaction["txid"]))


async def run_sign_up_lines(banner: str) -> None:
    """The sign-up lines: start (the stack's own SMTP server receives the mail), read the code from
    the mail it kept, complete with the two answers filled in."""
    lines = banner.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("sign-up by email"))
    begin, read_code, complete = (line.strip() for line in lines[start + 1 : start + 4])
    started = await run_shell(begin)
    signup_id = str(started["signup_id"])
    process = await asyncio.create_subprocess_exec(
        "bash", "-c", read_code.split("   #")[0], stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    code = out.decode().strip()
    assert re.fullmatch(r"[0-9]{6}", code), out
    done = await run_shell(complete.replace("<signup_id>", signup_id).replace("<code>", code))
    account = done["account"]
    assert isinstance(account, dict) and account["external_id"] == "newcomer@example.com"
    assert done["created"] is True


async def test_the_printed_publish_commands_reach_sent_then_confirmed(database_url: str, redis_url: str) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="demo-"))
    ports = {env: str(free_port()) for spec in SERVICES for env in (spec.grpc_port_env, spec.metrics_port_env)}
    ports["CHAINSIM_PORT"] = str(free_port())
    env = supervisor_env(
        workdir / "data",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX=f"demo-{uuid.uuid4().hex[:8]}",
        PUBLISHER_CALLBACK_PORT=str(free_port()),
        WALLET_CALLBACK_PORT=str(free_port()),
        **ports,
    )
    devstack = await Devstack.start(REPO_ROOT, env)
    try:
        await devstack.wait_ready()
        banner = devstack.output
        assert re.search(r"pool: (\d+) publish UTXOs", banner) and "pool: 0 " not in banner
        commands = [line.strip() for line in banner.splitlines() if line.strip().endswith(PUBLISH)]
        assert len(commands) == 2, banner
        ready, fresh = commands
        assert ready.startswith("grpcurl ") and "proofline-intent" in fresh
        publisher = f"127.0.0.1:{ports['PUBLISHER_GRPC_PORT']}"

        sent = [await run_shell(ready), await run_shell(fresh)]
        jobs = []
        for answer in sent:
            job = answer["job"]
            assert isinstance(job, dict)
            assert job["status"] == "JOB_STATUS_SENT", answer
            assert re.fullmatch(r"[0-9a-f]{64}", str(job["txid"]))
            jobs.append(str(job["job_id"]))
        # The same intent again (another request id) is the same job, not a second publication.
        replay = await run_shell(ready.replace('"request_id":"demo-', '"request_id":"again-'))
        assert replay["deduplicated"] is True
        assert isinstance(replay["job"], dict) and replay["job"]["job_id"] == jobs[0]

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['CHAINSIM_PORT']}", trust_env=False) as sim:
            (await sim.post("/_sim/mine", json={})).raise_for_status()
        for job_id in jobs:
            for _ in range(100):
                if await job_status(publisher, job_id) == "JOB_STATUS_CONFIRMED":
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError(f"{job_id} not CONFIRMED after mining:\n{devstack.output[-4000:]}")
        await run_wallet_lines(banner)
        await run_sign_up_lines(banner)
        assert await devstack.stop(signal.SIGTERM) == 0
    finally:
        await devstack.kill()
