"""kill -9 of the publisher between SIGNED and SENT: after a restart the stored bytes are broadcast
again (same txid) and no second transaction is ever built for the job."""

from __future__ import annotations

import asyncio

from proofline.publisher.v1 import publisher_pb2
from proofline.utxo.v1 import utxo_pb2

from services.publisher.domain.models import Actor
from tests.publisher_e2e.conftest import Suite, publisher_process, record_pushes

SIGNED = publisher_pb2.JOB_STATUS_SIGNED
SENT = publisher_pb2.JOB_STATUS_SENT
CONFIRMED = publisher_pb2.JOB_STATUS_CONFIRMED


async def test_kill9_between_signed_and_sent_then_restart_sends_the_same_transaction(suite: Suite) -> None:
    first_utxo, spare_utxo = await suite.fund_pool(5_000, 6_000)
    env = suite.env_for_publisher(
        PUBLISHER_WORKERS="1",
        # No policy lookups (ARC will hang), no WhatsOnChain fallback (it would send the tx).
        PUBLISHER_FEE_RATE_SAT_PER_KB="1",
        PUBLISHER_WOC_BROADCAST_FALLBACK="0",
        PUBLISHER_CHAIN_TIMEOUT_MS="30000",
        PUBLISHER_JOB_LEASE_MS="2000",
    )
    record = {"doc": "sha256:crash-test"}
    # ARC takes the broadcast and never answers: the worker sits between SIGNED and SENT.
    await suite.sim.faults({"rules": [{"face": "arc", "action": "hang"}]})
    async with publisher_process(env) as doomed:
        await suite.attach_publisher(doomed.port)
        key = await suite.register()
        job = await suite.publish(key.intent(key.payload(record)))
        signed = await suite.wait_status(job.job_id, SIGNED, timeout_s=20)
        for _ in range(100):
            if any(rule["used"] for rule in await suite.sim.fault_rules()):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"the broadcast never reached ARC: {doomed.output()}")
        doomed.kill9()
    assert signed.raw_tx and len(signed.txid) == 64
    await suite.sim.clear_faults()
    stored = await suite.stored_job(job.job_id)
    assert (stored["status"], stored["txid"], bytes(stored["raw_tx"])) == ("signed", signed.txid, signed.raw_tx)
    assert stored["lease_owner"] is not None  # held by the dead worker until its lease runs out
    # The spend was committed before the broadcast: the pool will not hand the UTXO out again.
    assert (await suite.pool_utxo(first_utxo)).spent_by_txid == signed.txid

    async with publisher_process(env) as restarted:
        await suite.attach_publisher(restarted.port)
        sent = await suite.wait_status(job.job_id, SENT, timeout_s=30)
        assert sent.txid == signed.txid and sent.raw_tx == signed.raw_tx
        blocks = await suite.mine()
        confirmed = await suite.wait_status(job.job_id, CONFIRMED, timeout_s=20)
        assert confirmed.txid == signed.txid
        events = await suite.events(job.job_id)
        assert [e["txid"] for e in events if e["to_status"] == "signed" and e["from_status"] == "processing"] == [
            signed.txid
        ]
        assert any(e["reason"] == "LEASE_EXPIRED" for e in events), [dict(e) for e in events]
        restarted_log = restarted.output()

    # Exactly one transaction on chain carries the record: the stored one.
    mined = [txid for block in blocks for txid in block["txids"][1:]]
    carrying = [txid for txid in mined if await suite.data_of_or_none(txid) == record_pushes(record)]
    assert carrying == [signed.txid], restarted_log
    state = await suite.state()
    assert state["mempool_txids"] == [] and state["orphan_txids"] == [] and state["competitor_txids"] == []
    spare = await suite.pool_utxo(spare_utxo)
    assert spare.status == utxo_pb2.UTXO_STATUS_AVAILABLE and not spare.spent_by_txid


async def test_a_job_stuck_in_processing_is_taken_over_and_published(suite: Suite) -> None:
    """A worker claimed the job and died before signing: once its lease is over, another worker
    (here: of another process) takes the job and publishes it."""
    await suite.fund_pool(5_000)
    await suite.start_publisher(PUBLISHER_WORKERS="0")
    key = await suite.register()
    job = await suite.publish(key.intent())
    assert suite.publisher is not None
    async with suite.publisher.store.unit_of_work() as uow:
        [claimed] = await uow.claim_queued("dead-host/1/w0", 10, 0.5, "b-dead", Actor("dead-host/1/w0", "b-dead"))
    assert claimed.job.job_id == job.job_id
    await suite.stop_publisher()

    await suite.start_publisher(PUBLISHER_STUCK_CHECK_MS="200")
    sent = await suite.wait_status(job.job_id, SENT, timeout_s=20)
    events = await suite.events(job.job_id)
    takeover = [e for e in events if e["reason"] == "LEASE_EXPIRED"]
    assert len(takeover) == 1 and takeover[0]["from_status"] == takeover[0]["to_status"] == "processing"
    assert "dead-host/1/w0" in takeover[0]["detail"]
    assert [e["txid"] for e in events if (e["from_status"], e["to_status"]) == ("processing", "signed")] == [sent.txid]
