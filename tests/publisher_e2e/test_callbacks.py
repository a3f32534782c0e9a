"""The ARC callback endpoint: it needs the token, and it believes chain news only with evidence."""

from __future__ import annotations

import asyncio

import httpx
from proofline.publisher.v1 import publisher_pb2

from tests.publisher_e2e.conftest import Suite

SENT = publisher_pb2.JOB_STATUS_SENT
TOKEN = "callback-token-0123456789"


async def test_callbacks_need_the_token_and_unproven_news_changes_nothing(suite: Suite) -> None:
    await suite.fund_pool(5_000)
    await suite.start_publisher(
        PUBLISHER_CALLBACK_TOKEN=TOKEN, PUBLISHER_CONFIRM_POLL_MS="3600000", PUBLISHER_REORG_CHECK_MS="3600000"
    )
    key = await suite.register()
    job = await suite.publish(key.intent(), wait_for=SENT)
    assert job.status == SENT
    assert suite.publisher is not None and suite.publisher.pipeline is not None
    url = suite.publisher.pipeline.callback_url
    assert url is not None
    rejected = {"txid": job.txid, "txStatus": "REJECTED", "extraInfo": "double spend attempted", "timestamp": "x"}
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        assert (await http.post(url, json=rejected)).status_code == 401
        wrong = {"Authorization": "Bearer not-the-token"}
        assert (await http.post(url, json=rejected, headers=wrong)).status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert (await http.post(url, json={"hello": 1}, headers=auth)).status_code == 400
        # A rejection ARC does not confirm when asked builds no second transaction.
        answer = await http.post(url, json={"count": 1, "callbacks": [rejected]}, headers=auth)
        assert answer.status_code == 200 and answer.json() == {"received": 1, "changed": 0}
        # A MINED claim whose merkle path does not verify confirms nothing.
        mined = {**rejected, "txStatus": "MINED", "blockHash": "00" * 32, "blockHeight": 1, "merklePath": "fd0001"}
        assert (await http.post(url, json=mined, headers=auth)).status_code == 200
    await asyncio.sleep(0.3)
    after = await suite.job(job.job_id)
    assert (after.status, after.txid, after.block_hash) == (SENT, job.txid, "")
    assert [e["to_status"] for e in await suite.events(job.job_id)][-1] == "sent"
