"""The pipeline's pure parts: publish transactions as bytes, and what an outcome means for a job."""

from __future__ import annotations

import hashlib

import pytest

from proofline_kit.chain import ArcStatus, BroadcastOutcome, FeeRate, OutcomeKind, PreparedTx, Provider
from proofline_kit.wire import Outpoint, TxInput, TxOutput, parse, txid_of
from services.publisher.domain.models import BuiltTx, InFlightJob, JobStatus, LeaseChange
from services.publisher.domain.outcomes import RetryPolicy, Verdict, conflict_report, judge, moves_for
from services.publisher.domain.ports import ConflictKind
from services.publisher.domain.txbuild import (
    P2PKH_UNLOCK_MAX_BYTES,
    DataFormat,
    DataMode,
    FundingTooSmall,
    build_publish,
    check_signed,
    data_pushes,
    data_script,
    extended_format,
    push,
    read_data_script,
    serialize,
    sighash,
    signed_size,
)

P2PKH = bytes.fromhex("76a914" + "11" * 20 + "88ac")
FUNDING = Outpoint("ab" * 32, 3)
RATE = FeeRate(1, 1000)


@pytest.mark.parametrize(
    ("size", "prefix"),
    [
        (0, b"\x00"),
        (75, b"\x4b"),
        (76, b"\x4c\x4c"),
        (255, b"\x4c\xff"),
        (256, b"\x4d\x00\x01"),
        (65535, b"\x4d\xff\xff"),
        (65536, b"\x4e\x00\x00\x01\x00"),
    ],
)
def test_pushes_are_minimal_and_read_back(size: int, prefix: bytes) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    assert push(data) == prefix + data
    assert read_data_script(data_script([b"proofline", data])) == [b"proofline", data]


def test_data_formats() -> None:
    record = b'{"doc":"x"}'
    assert data_pushes(record, "job_1", DataFormat()) == [b"proofline", record]
    assert data_pushes(record, "job_1", DataFormat(DataMode.HASH, b"")) == [hashlib.sha256(record).digest(), b"job_1"]
    assert read_data_script(P2PKH) is None
    assert read_data_script(b"\x00\x6a\x4d\x05\x00ab") is None  # push runs past the end


def test_publish_with_change_pays_its_fee_and_returns_the_rest() -> None:
    data = data_script([b"proofline", b"x" * 300])
    built = build_publish(FUNDING, TxOutput(5_000, P2PKH), data, P2PKH, FeeRate(500, 1000), 1)
    assert built.outputs == (TxOutput(0, data), TxOutput(5_000 - built.fee_satoshis, P2PKH))
    assert built.change == built.outputs[1]
    # The fee covers the largest signed size at the rate, which the real signed size never exceeds.
    largest = len(serialize(FUNDING, b"\x00" * P2PKH_UNLOCK_MAX_BYTES, built.outputs))
    assert largest == signed_size(built.outputs)
    assert built.fee_satoshis == (largest * 500 + 999) // 1000
    tx = parse(built.raw)
    assert tx.inputs == (TxInput(FUNDING, b"", 0xFFFFFFFF),) and tx.version == 1 and tx.locktime == 0


def test_change_below_dust_goes_to_the_fee_and_too_little_is_refused() -> None:
    data = data_script([b"proofline", b"{}"])
    no_change_fee = RATE.fee_for(signed_size([TxOutput(0, data)]))
    with_change_fee = RATE.fee_for(signed_size([TxOutput(0, data), TxOutput(0, P2PKH)]))
    built = build_publish(FUNDING, TxOutput(with_change_fee + 5, P2PKH), data, P2PKH, RATE, 10)
    assert built.change is None and built.fee_satoshis == with_change_fee + 5
    exact = build_publish(FUNDING, TxOutput(with_change_fee + 10, P2PKH), data, P2PKH, RATE, 10)
    assert exact.change == TxOutput(10, P2PKH)
    with pytest.raises(FundingTooSmall):
        build_publish(FUNDING, TxOutput(no_change_fee - 1, P2PKH), data, P2PKH, FeeRate(1000, 1000), 1)


def test_signed_bytes_are_checked_and_sent_as_extended_format() -> None:
    data = data_script([b"proofline", b"{}"])
    built = build_publish(FUNDING, TxOutput(5_000, P2PKH), data, P2PKH, RATE, 1)
    unlocking = b"\x48" + b"\x30" * 72 + b"\x21" + b"\x02" * 33
    signed = serialize(FUNDING, unlocking, built.outputs)
    check_signed(built, signed, txid_of(signed))
    with pytest.raises(ValueError, match="txid"):
        check_signed(built, signed, "00" * 32)
    tampered = serialize(FUNDING, unlocking, [built.outputs[0], TxOutput(built.outputs[1].satoshis - 1, P2PKH)])
    with pytest.raises(ValueError, match="outputs"):
        check_signed(built, tampered, txid_of(tampered))
    with pytest.raises(ValueError, match="not signed"):
        check_signed(built, built.raw, txid_of(built.raw))
    prepared = PreparedTx.from_bytes(extended_format(signed, TxOutput(5_000, P2PKH)))
    assert (prepared.txid, prepared.raw) == (txid_of(signed), signed) and prepared.ef is not None


def _job(status: JobStatus = JobStatus.SIGNED, *, builds: int = 1, attempts: int = 0, reason: str = "") -> InFlightJob:
    tx = BuiltTx("cd" * 32, b"raw", 20, FUNDING.txid, FUNDING.vout, 5_000, P2PKH, "k", "lease-1", 7)
    return InFlightJob("job_1", status, 42, tx, attempts, builds, reason, (), False, "", 0)


def _outcome(kind: OutcomeKind, status: ArcStatus | None = None, **fields: object) -> BroadcastOutcome:
    return BroadcastOutcome(kind, "cd" * 32, Provider.ARC, status=status, **fields)  # type: ignore[arg-type]


def test_judgements() -> None:
    assert judge(_outcome(OutcomeKind.ACCEPTED, ArcStatus.SEEN_ON_NETWORK)).verdict is Verdict.SENT
    assert judge(_outcome(OutcomeKind.ACCEPTED, ArcStatus.MINED)).mined
    waiting = judge(_outcome(OutcomeKind.DOUBLE_SPEND, ArcStatus.DOUBLE_SPEND_ATTEMPTED, competing_txids=("ee" * 32,)))
    assert (waiting.verdict, waiting.reason, waiting.competing) == (Verdict.WAIT, "DOUBLE_SPEND", ("ee" * 32,))
    assert judge(_outcome(OutcomeKind.DOUBLE_SPEND, ArcStatus.REJECTED)).verdict is Verdict.DEAD
    assert judge(_outcome(OutcomeKind.MISSING_INPUTS, ArcStatus.SEEN_IN_ORPHAN_MEMPOOL)).verdict is Verdict.WAIT
    fee = judge(_outcome(OutcomeKind.FEE_TOO_LOW, arc_code=465))
    assert (fee.verdict, fee.conflict) == (Verdict.DEAD, ConflictKind.REJECTED)
    assert judge(_outcome(OutcomeKind.INVALID, ArcStatus.REJECTED, reason="bad")).verdict is Verdict.REJECTED
    assert judge(_outcome(OutcomeKind.UNAVAILABLE)).verdict is Verdict.UNAVAILABLE


def test_moves_for_each_verdict() -> None:
    policy = RetryPolicy(max_builds=2, max_attempts=3, base_s=1.0, max_s=4.0, confirm_poll_s=60.0)
    sent = moves_for(
        _job(), judge(_outcome(OutcomeKind.ACCEPTED, ArcStatus.SEEN_ON_NETWORK)), policy, guard=42, attempted=True
    )
    [move] = sent.first
    assert (move.target, move.lease, move.delay_s, move.attempts_increment) == (
        JobStatus.SENT,
        LeaseChange.CLEAR,
        60.0,
        1,
    )

    dead = judge(_outcome(OutcomeKind.DOUBLE_SPEND, ArcStatus.REJECTED))
    rebuild = moves_for(_job(builds=1), dead, policy, guard=42, attempted=True)
    assert [(m.source, m.target, m.lease) for m in rebuild.first] == [
        (JobStatus.SIGNED, JobStatus.PROCESSING, LeaseChange.CLAIM)
    ]
    assert [(m.target, m.clear_tx) for m in rebuild.then] == [(JobStatus.QUEUED, True)]
    [exhausted] = moves_for(_job(builds=2), dead, policy, guard=42, attempted=True).first
    assert (exhausted.target, exhausted.error_reason) == (JobStatus.FAILED, "RETRIES_EXHAUSTED")

    wait = judge(_outcome(OutcomeKind.UNAVAILABLE))
    [later] = moves_for(_job(attempts=1), wait, policy, guard=42, attempted=True).first
    assert (later.target, later.delay_s, later.lease) == (JobStatus.SIGNED, 2.0, LeaseChange.CLEAR)
    [given_up] = moves_for(_job(attempts=2), wait, policy, guard=42, attempted=True).first
    assert (given_up.target, given_up.error_reason) == (JobStatus.FAILED, "RETRIES_EXHAUSTED")
    # A SENT job told "no verdict" by a poll just stays SENT.
    assert moves_for(_job(JobStatus.SENT), wait, policy, guard=None, attempted=False).first == ()
    assert [policy.backoff(n) for n in (1, 2, 3, 4, 9)] == [1.0, 2.0, 4.0, 4.0, 4.0]


def test_each_conflict_is_reported_once() -> None:
    ds = judge(_outcome(OutcomeKind.DOUBLE_SPEND, ArcStatus.DOUBLE_SPEND_ATTEMPTED))
    report = conflict_report(_job(), ds)
    assert report is not None and report.kind is ConflictKind.DOUBLE_SPEND
    assert (report.lease_id, report.fencing_token) == ("lease-1", 7)  # never committed: under the lease
    assert conflict_report(_job(reason="DOUBLE_SPEND"), ds) is None
    unavailable = judge(_outcome(OutcomeKind.UNAVAILABLE))
    assert conflict_report(_job(), unavailable) is None
    failing = conflict_report(_job(), unavailable, failing=True)
    assert failing is not None and failing.kind is ConflictKind.REJECTED


def test_sighash_matches_bsv_sdk() -> None:
    from bsv import Script, Transaction
    from bsv.hash import hash256
    from bsv.transaction_preimage import tx_preimages

    data = data_script([b"proofline", b'{"doc":"x"}'])
    built = build_publish(FUNDING, TxOutput(5_000, P2PKH), data, P2PKH, RATE, 1)
    tx = Transaction.from_hex(built.raw)
    assert tx is not None
    tx.inputs[0].satoshis = 5_000
    tx.inputs[0].locking_script = Script(P2PKH)
    tx.inputs[0].sighash = 0x41
    [preimage] = tx_preimages(tx.inputs, tx.outputs, tx.version, tx.locktime)
    assert sighash(built) == bytes(hash256(preimage))
