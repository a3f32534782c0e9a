"""CommitSpend, ReportConflict and AddOutputs: effects, idempotency and refusals."""

from __future__ import annotations

import asyncpg
import grpc
import pytest
from proofline.common.v1 import common_pb2
from proofline.utxo.v1 import utxo_pb2

from tests.harness.grpc_errors import expect_rpc_error
from tests.utxo.conftest import (
    OWNER,
    P2PKH,
    PUBLISH,
    PUBLISHER,
    WALLET,
    UtxoUnderTest,
    lease_request,
    random_txid,
    seed,
    status_of,
)

CHANGE = utxo_pb2.SpendOutput(vout=1, satoshis=90, locking_script=P2PKH, owner_key_id=OWNER, purpose=PUBLISH)


async def leased(utxo: UtxoUnderTest, db: asyncpg.Connection, values: list[int]) -> utxo_pb2.Lease:
    await seed(db, values)
    response = await utxo.stub.LeaseUtxos(lease_request(random_txid()[:16], count=len(values)), metadata=PUBLISHER)
    return response.lease


def commit(
    request_id: str, lease: utxo_pb2.Lease, spends: list[utxo_pb2.Spend], **fields: object
) -> utxo_pb2.CommitSpendRequest:
    return utxo_pb2.CommitSpendRequest(
        request_id=request_id,
        lease_id=lease.lease_id,
        fencing_token=lease.fencing_token,
        spends=spends,
        **fields,  # type: ignore[arg-type]
    )


async def test_commit_spends_inputs_and_tracks_change(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    lease = await leased(utxo, db, [100, 200])
    txid = random_txid()
    spend = utxo_pb2.Spend(txid=txid, inputs=[lease.utxos[0].outpoint], outputs=[CHANGE])
    response = await utxo.stub.CommitSpend(commit("c1", lease, [spend]), metadata=PUBLISHER)
    assert [(u.outpoint, u.status, u.spent_by_txid) for u in response.spent] == [
        (lease.utxos[0].outpoint, utxo_pb2.UTXO_STATUS_SPENT, txid)
    ]
    assert [(u.outpoint.txid, u.outpoint.vout, u.satoshis, u.status) for u in response.added] == [
        (txid, 1, 90, utxo_pb2.UTXO_STATUS_UNCONFIRMED)
    ]
    assert response.lease.state == utxo_pb2.LEASE_STATE_LIVE
    assert [u.satoshis for u in response.lease.utxos] == [200]
    assert [(u.status, u.lease_id) for u in response.lease.utxos] == [(utxo_pb2.UTXO_STATUS_RESERVED, lease.lease_id)]
    # The change is not leasable before the chain confirms it.
    assert await db.fetchval("SELECT status FROM utxos WHERE txid = $1", txid) == "unconfirmed"
    kinds = await db.fetch("SELECT kind FROM utxo_events WHERE txid = $1 ORDER BY id", txid)
    assert [r["kind"] for r in kinds] == ["commit", "added"]


async def test_commit_is_idempotent_on_request_id_and_on_its_data(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    lease = await leased(utxo, db, [100])
    spend = utxo_pb2.Spend(txid=random_txid(), inputs=[lease.utxos[0].outpoint], outputs=[CHANGE])
    first = await utxo.stub.CommitSpend(commit("c1", lease, [spend]), metadata=PUBLISHER)
    again = await utxo.stub.CommitSpend(commit("c1", lease, [spend]), metadata=PUBLISHER)
    assert again == first
    other_id = await utxo.stub.CommitSpend(commit("c2", lease, [spend]), metadata=PUBLISHER)
    assert [u.outpoint for u in other_id.spent] == [u.outpoint for u in first.spent]
    assert [u.outpoint for u in other_id.added] == [u.outpoint for u in first.added]
    assert await db.fetchval("SELECT count(*) FROM utxo_events WHERE kind = 'commit'") == 1
    await expect_rpc_error(
        utxo.stub.CommitSpend(commit("c1", lease, [spend], release_unspent=True), metadata=PUBLISHER),
        grpc.StatusCode.FAILED_PRECONDITION,
        "REQUEST_ID_REUSED",
    )


async def test_double_commit_with_a_different_txid_is_refused(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    lease = await leased(utxo, db, [100])
    first_txid = random_txid()
    await utxo.stub.CommitSpend(
        commit("c1", lease, [utxo_pb2.Spend(txid=first_txid, inputs=[lease.utxos[0].outpoint])]), metadata=PUBLISHER
    )
    error = await expect_rpc_error(
        utxo.stub.CommitSpend(
            commit("c2", lease, [utxo_pb2.Spend(txid=random_txid(), inputs=[lease.utxos[0].outpoint])]),
            metadata=PUBLISHER,
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "ALREADY_SPENT",
    )
    assert first_txid in (error.details() or "")


async def test_commit_refusals_change_nothing(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    lease = await leased(utxo, db, [100, 200])
    stranger = (await seed(db, [300]))[0]
    good = utxo_pb2.Spend(txid=random_txid(), inputs=[lease.utxos[0].outpoint], outputs=[CHANGE])
    outside = utxo_pb2.Spend(txid=random_txid(), inputs=[stranger])
    await expect_rpc_error(
        utxo.stub.CommitSpend(commit("c1", lease, [good, outside]), metadata=PUBLISHER),
        grpc.StatusCode.FAILED_PRECONDITION,
        "UTXO_NOT_IN_LEASE",
    )
    unknown = utxo_pb2.Spend(txid=random_txid(), inputs=[common_pb2.Outpoint(txid=random_txid(), vout=0)])
    await expect_rpc_error(
        utxo.stub.CommitSpend(commit("c2", lease, [good, unknown]), metadata=PUBLISHER),
        grpc.StatusCode.FAILED_PRECONDITION,
        "UTXO_NOT_IN_LEASE",
    )
    await expect_rpc_error(
        utxo.stub.CommitSpend(
            utxo_pb2.CommitSpendRequest(
                request_id="c3", lease_id=lease.lease_id, fencing_token=lease.fencing_token - 1, spends=[good]
            ),
            metadata=PUBLISHER,
        ),
        grpc.StatusCode.ABORTED,
        "FENCING_TOKEN_STALE",
    )
    await expect_rpc_error(
        utxo.stub.CommitSpend(commit("c4", lease, [good]), metadata=WALLET),
        grpc.StatusCode.PERMISSION_DENIED,
        "LEASE_NOT_OWNED",
    )
    await expect_rpc_error(
        utxo.stub.CommitSpend(
            utxo_pb2.CommitSpendRequest(request_id="c5", lease_id="missing", fencing_token=1, spends=[good]),
            metadata=PUBLISHER,
        ),
        grpc.StatusCode.NOT_FOUND,
        "LEASE_NOT_FOUND",
    )
    assert {await status_of(db, u.outpoint) for u in lease.utxos} == {"reserved"}
    assert await db.fetchval("SELECT count(*) FROM utxos WHERE status = 'unconfirmed'") == 0


@pytest.mark.parametrize(
    ("spends", "reason"),
    [
        ([], "SPENDS_INVALID"),
        ([utxo_pb2.Spend(txid="XYZ", inputs=[common_pb2.Outpoint(txid="ab" * 32)])], "TXID_INVALID"),
        ([utxo_pb2.Spend(txid="ab" * 32)], "INPUTS_INVALID"),
        ([utxo_pb2.Spend(txid="ab" * 32, inputs=[common_pb2.Outpoint(txid="zz")])], "OUTPOINT_INVALID"),
        (
            [
                utxo_pb2.Spend(txid="ab" * 32, inputs=[common_pb2.Outpoint(txid="cd" * 32)]),
                utxo_pb2.Spend(txid="ef" * 32, inputs=[common_pb2.Outpoint(txid="cd" * 32)]),
            ],
            "INPUTS_INVALID",
        ),
        (
            [
                utxo_pb2.Spend(
                    txid="ab" * 32,
                    inputs=[common_pb2.Outpoint(txid="cd" * 32)],
                    outputs=[utxo_pb2.SpendOutput(vout=0, satoshis=0, locking_script=P2PKH, owner_key_id=OWNER)],
                )
            ],
            "SATOSHIS_INVALID",
        ),
        (
            [
                utxo_pb2.Spend(
                    txid="ab" * 32,
                    inputs=[common_pb2.Outpoint(txid="cd" * 32)],
                    outputs=[utxo_pb2.SpendOutput(vout=0, satoshis=5, locking_script=P2PKH, owner_key_id=OWNER)],
                )
            ],
            "PURPOSE_INVALID",
        ),
        (
            [
                utxo_pb2.Spend(
                    txid="ab" * 32,
                    inputs=[common_pb2.Outpoint(txid="cd" * 32)],
                    outputs=[utxo_pb2.SpendOutput(vout=0, satoshis=5, owner_key_id=OWNER, purpose=PUBLISH)],
                )
            ],
            "LOCKING_SCRIPT_INVALID",
        ),
        (
            [
                utxo_pb2.Spend(
                    txid="ab" * 32,
                    inputs=[common_pb2.Outpoint(txid="cd" * 32)],
                    outputs=[
                        utxo_pb2.SpendOutput(vout=0, satoshis=5, locking_script=P2PKH, owner_key_id="", purpose=PUBLISH)
                    ],
                )
            ],
            "OWNER_KEY_ID_INVALID",
        ),
    ],
)
async def test_malformed_commits_are_invalid_arguments(
    utxo: UtxoUnderTest, db: asyncpg.Connection, spends: list[utxo_pb2.Spend], reason: str
) -> None:
    lease = await leased(utxo, db, [100])
    await expect_rpc_error(
        utxo.stub.CommitSpend(commit("c1", lease, spends), metadata=PUBLISHER),
        grpc.StatusCode.INVALID_ARGUMENT,
        reason,
    )


async def test_commit_many_transactions_atomically_and_release_the_rest(
    utxo: UtxoUnderTest, db: asyncpg.Connection
) -> None:
    lease = await leased(utxo, db, [100, 200, 300, 400])
    spends = [
        utxo_pb2.Spend(txid=random_txid(), inputs=[lease.utxos[0].outpoint]),
        utxo_pb2.Spend(txid=random_txid(), inputs=[lease.utxos[1].outpoint, lease.utxos[2].outpoint]),
    ]
    response = await utxo.stub.CommitSpend(commit("c1", lease, spends, release_unspent=True), metadata=PUBLISHER)
    assert len(response.spent) == 3
    assert list(response.released) == [lease.utxos[3].outpoint]
    assert response.lease.state == utxo_pb2.LEASE_STATE_CLOSED
    assert await status_of(db, lease.utxos[3].outpoint) == "available"


async def test_conflict_on_a_reserved_outpoint_makes_it_dirty(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    lease = await leased(utxo, db, [100, 200])
    competing = random_txid()
    response = await utxo.stub.ReportConflict(
        utxo_pb2.ReportConflictRequest(
            request_id="d1",
            lease_id=lease.lease_id,
            fencing_token=lease.fencing_token,
            outpoints=[lease.utxos[0].outpoint],
            kind=utxo_pb2.CONFLICT_KIND_DOUBLE_SPEND,
            competing_txids=[competing],
            detail="ARC 409 DOUBLE_SPEND_ATTEMPTED",
        ),
        metadata=PUBLISHER,
    )
    dirty = response.dirty[0]
    assert dirty.status == utxo_pb2.UTXO_STATUS_DIRTY
    assert list(dirty.competing_txids) == [competing]
    assert dirty.status_reason == "DOUBLE_SPEND"
    # DIRTY is not leasable, and the lease no longer holds it.
    await seed(db, [])
    listed = await utxo.stub.ListUtxos(utxo_pb2.ListUtxosRequest(lease_id=lease.lease_id), metadata=PUBLISHER)
    assert [u.satoshis for u in listed.utxos] == [200]
    await expect_rpc_error(
        utxo.stub.LeaseUtxos(lease_request("r9", count=2), metadata=WALLET),
        grpc.StatusCode.FAILED_PRECONDITION,
        "POOL_EXHAUSTED",
    )
    # Reporting again adds evidence.
    more = random_txid()
    again = await utxo.stub.ReportConflict(
        utxo_pb2.ReportConflictRequest(
            request_id="d2",
            outpoints=[lease.utxos[0].outpoint],
            kind=utxo_pb2.CONFLICT_KIND_DOUBLE_SPEND,
            competing_txids=[more, competing],
        ),
        metadata=WALLET,
    )
    assert sorted(again.dirty[0].competing_txids) == sorted([competing, more])


async def test_conflict_on_a_committed_spend_invalidates_its_change(
    utxo: UtxoUnderTest, db: asyncpg.Connection
) -> None:
    lease = await leased(utxo, db, [100])
    txid = random_txid()
    await utxo.stub.CommitSpend(
        commit("c1", lease, [utxo_pb2.Spend(txid=txid, inputs=[lease.utxos[0].outpoint], outputs=[CHANGE])]),
        metadata=PUBLISHER,
    )
    report = utxo_pb2.ReportConflictRequest(
        request_id="d1", outpoints=[lease.utxos[0].outpoint], kind=utxo_pb2.CONFLICT_KIND_MISSING_INPUTS
    )
    await expect_rpc_error(
        utxo.stub.ReportConflict(report, metadata=PUBLISHER), grpc.StatusCode.FAILED_PRECONDITION, "ALREADY_SPENT"
    )
    report.spending_txid = random_txid()
    report.request_id = "d2"
    await expect_rpc_error(
        utxo.stub.ReportConflict(report, metadata=PUBLISHER), grpc.StatusCode.FAILED_PRECONDITION, "ALREADY_SPENT"
    )
    report.spending_txid = txid
    report.request_id = "d3"
    response = await utxo.stub.ReportConflict(report, metadata=PUBLISHER)
    assert response.dirty[0].status == utxo_pb2.UTXO_STATUS_DIRTY
    assert response.dirty[0].spent_by_txid == txid
    assert [(u.outpoint.txid, u.status, u.status_reason) for u in response.invalidated] == [
        (txid, utxo_pb2.UTXO_STATUS_INVALID, "PARENT_DEAD")
    ]


async def test_conflict_refusals(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    lease = await leased(utxo, db, [100])
    free = (await seed(db, [500]))[0]
    unconfirmed = (await seed(db, [500], status="unconfirmed"))[0]

    def report(request_id: str, outpoint: common_pb2.Outpoint, **fields: object) -> utxo_pb2.ReportConflictRequest:
        return utxo_pb2.ReportConflictRequest(
            request_id=request_id,
            outpoints=[outpoint],
            kind=utxo_pb2.CONFLICT_KIND_REJECTED,
            **fields,  # type: ignore[arg-type]
        )

    await expect_rpc_error(
        utxo.stub.ReportConflict(report("d1", lease.utxos[0].outpoint), metadata=WALLET),
        grpc.StatusCode.ABORTED,
        "FENCING_TOKEN_STALE",
    )
    await expect_rpc_error(
        utxo.stub.ReportConflict(report("d2", common_pb2.Outpoint(txid=random_txid())), metadata=WALLET),
        grpc.StatusCode.NOT_FOUND,
        "UTXO_NOT_FOUND",
    )
    await expect_rpc_error(
        utxo.stub.ReportConflict(report("d3", unconfirmed), metadata=WALLET),
        grpc.StatusCode.FAILED_PRECONDITION,
        "UTXO_NOT_SPENDABLE",
    )
    await expect_rpc_error(
        utxo.stub.ReportConflict(utxo_pb2.ReportConflictRequest(request_id="d4", outpoints=[free]), metadata=WALLET),
        grpc.StatusCode.INVALID_ARGUMENT,
        "KIND_INVALID",
    )
    await expect_rpc_error(
        utxo.stub.ReportConflict(report("d5", free, competing_txids=["nope"]), metadata=WALLET),
        grpc.StatusCode.INVALID_ARGUMENT,
        "COMPETING_TXIDS_INVALID",
    )
    # Both outpoints in one call: one refused means neither changes.
    await expect_rpc_error(
        utxo.stub.ReportConflict(
            utxo_pb2.ReportConflictRequest(
                request_id="d6", outpoints=[free, lease.utxos[0].outpoint], kind=utxo_pb2.CONFLICT_KIND_REJECTED
            ),
            metadata=WALLET,
        ),
        grpc.StatusCode.ABORTED,
        "FENCING_TOKEN_STALE",
    )
    assert await status_of(db, free) == "available"
    response = await utxo.stub.ReportConflict(report("d7", free), metadata=WALLET)
    assert response.dirty[0].status_reason == "REJECTED"


async def test_add_outputs_tracks_unconfirmed_and_is_idempotent(utxo: UtxoUnderTest, db: asyncpg.Connection) -> None:
    txid = random_txid()
    output = utxo_pb2.NewOutput(
        outpoint=common_pb2.Outpoint(txid=txid, vout=3),
        satoshis=50_000,
        locking_script=P2PKH,
        owner_key_id="funding-key",
        purpose=utxo_pb2.UTXO_PURPOSE_FUNDING,
    )
    first = await utxo.stub.AddOutputs(utxo_pb2.AddOutputsRequest(request_id="a1", outputs=[output]), metadata=WALLET)
    assert [(u.status, u.satoshis) for u in first.utxos] == [(utxo_pb2.UTXO_STATUS_UNCONFIRMED, 50_000)]
    same = await utxo.stub.AddOutputs(utxo_pb2.AddOutputsRequest(request_id="a2", outputs=[output]), metadata=WALLET)
    assert [u.outpoint for u in same.utxos] == [u.outpoint for u in first.utxos]
    assert await db.fetchval("SELECT count(*) FROM utxos") == 1
    changed = utxo_pb2.NewOutput()
    changed.CopyFrom(output)
    changed.satoshis = 49_999
    await expect_rpc_error(
        utxo.stub.AddOutputs(utxo_pb2.AddOutputsRequest(request_id="a3", outputs=[changed]), metadata=WALLET),
        grpc.StatusCode.ALREADY_EXISTS,
        "UTXO_ALREADY_EXISTS",
    )
    fresh = utxo_pb2.NewOutput()
    fresh.CopyFrom(output)
    fresh.outpoint.vout = 4
    await expect_rpc_error(
        utxo.stub.AddOutputs(utxo_pb2.AddOutputsRequest(request_id="a4", outputs=[fresh, changed]), metadata=WALLET),
        grpc.StatusCode.ALREADY_EXISTS,
        "UTXO_ALREADY_EXISTS",
    )
    assert await db.fetchval("SELECT count(*) FROM utxos") == 1, "all or nothing"
    await expect_rpc_error(
        utxo.stub.AddOutputs(utxo_pb2.AddOutputsRequest(request_id="a5", outputs=[]), metadata=WALLET),
        grpc.StatusCode.INVALID_ARGUMENT,
        "OUTPUTS_INVALID",
    )
    await expect_rpc_error(
        utxo.stub.AddOutputs(utxo_pb2.AddOutputsRequest(request_id="a6", outputs=[fresh, fresh]), metadata=WALLET),
        grpc.StatusCode.INVALID_ARGUMENT,
        "OUTPUTS_INVALID",
    )
    negative = utxo_pb2.NewOutput()
    negative.CopyFrom(fresh)
    negative.satoshis = -1
    await expect_rpc_error(
        utxo.stub.AddOutputs(utxo_pb2.AddOutputsRequest(request_id="a7", outputs=[negative]), metadata=WALLET),
        grpc.StatusCode.INVALID_ARGUMENT,
        "SATOSHIS_INVALID",
    )
