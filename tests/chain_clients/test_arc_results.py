"""ARC answer mapping from recorded bodies (shapes from arc-woc.md §2.5-§2.7)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from proofline_kit.chain import ArcStatus, FeeRate, OutcomeKind, Provider
from proofline_kit.chain.arc_results import (
    outcome_from_response,
    outcomes_from_batch,
    parse_health,
    parse_policy,
    parse_tx_status,
)
from proofline_kit.chain.jsonshape import ShapeError

A, B, C = "aa" * 32, "bb" * 32, "cc" * 32


def status_body(txid: str, status: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "txid": txid,
        "txStatus": status,
        "status": 200,
        "title": "OK",
        "blockHash": "",
        "blockHeight": 0,
        "merklePath": "",
        "extraInfo": "",
        "competingTxs": None,
        "timestamp": "2026-01-01T00:00:00.000000000Z",
    }
    body.update(extra)
    return body


def error_body(code: int, extra_info: str, txid: str | None = None) -> dict[str, Any]:
    return {
        "type": f"https://bitcoin-sv.github.io/arc/#/errors?id=_{code}",
        "title": "title",
        "status": code,
        "detail": "detail",
        "instance": None,
        "txid": txid,
        "extraInfo": extra_info,
    }


def response(status: int, body: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.Response(status, content=content)


@pytest.mark.parametrize(
    "status",
    [
        "QUEUED",
        "RECEIVED",
        "STORED",
        "ANNOUNCED_TO_NETWORK",
        "REQUESTED_BY_NETWORK",
        "SENT_TO_NETWORK",
        "ACCEPTED_BY_NETWORK",
        "SEEN_ON_NETWORK",
        "MINED_IN_STALE_BLOCK",
        "MINED",
    ],
)
def test_progress_statuses_are_accepted(status: str) -> None:
    outcome = outcome_from_response(response(200, status_body(A, status)), A)
    assert outcome.kind is OutcomeKind.ACCEPTED
    assert outcome.status is ArcStatus[status]
    assert outcome.provider is Provider.ARC


def test_mined_carries_block_data() -> None:
    body = status_body(
        A, "MINED", blockHash=B, blockHeight=812, merklePath="fe2c6500", extraInfo="previously double spend attempted"
    )
    outcome = outcome_from_response(response(200, body), A)
    assert outcome.kind is OutcomeKind.ACCEPTED
    assert outcome.mined
    assert (outcome.block_hash, outcome.block_height, outcome.merkle_path) == (B, 812, "fe2c6500")


def test_http_200_rejected_is_a_rejection() -> None:
    body = status_body(A, "REJECTED", extraInfo="invalid transaction: mandatory-script-verify-flag-failed")
    outcome = outcome_from_response(response(200, body), A)
    assert outcome.kind is OutcomeKind.INVALID
    assert outcome.status is ArcStatus.REJECTED
    assert outcome.http_status == 200
    assert "mandatory-script-verify" in outcome.reason


@pytest.mark.parametrize(
    ("extra", "kind"),
    [
        ("double spend attempted", OutcomeKind.DOUBLE_SPEND),
        (f"double spend tx rejected, competing tx {B} mined", OutcomeKind.DOUBLE_SPEND),
        ("discarded from mempool: double spend attempted", OutcomeKind.DOUBLE_SPEND),
        ("discarded from mempool: orphan expired", OutcomeKind.MISSING_INPUTS),
        ("invalid transaction: missing inputs", OutcomeKind.MISSING_INPUTS),
        ("invalid transaction: mempool min fee not met", OutcomeKind.FEE_TOO_LOW),
        ("invalid transaction: bad-txns-in-belowout", OutcomeKind.INVALID),
        ("transaction rejected as not existing in node mempool", OutcomeKind.INVALID),
        ("invalid transaction: txn-already-known", OutcomeKind.INVALID),  # REJECTED never reads as accepted
        ("", OutcomeKind.INVALID),
    ],
)
def test_rejected_reasons(extra: str, kind: OutcomeKind) -> None:
    assert outcome_from_response(response(200, status_body(A, "REJECTED", extraInfo=extra)), A).kind is kind


def test_orphan_means_missing_inputs() -> None:
    outcome = outcome_from_response(response(200, status_body(A, "SEEN_IN_ORPHAN_MEMPOOL")), A)
    assert outcome.kind is OutcomeKind.MISSING_INPUTS


def test_double_spend_lists_competitors() -> None:
    body = status_body(A, "DOUBLE_SPEND_ATTEMPTED", competingTxs=[B.upper(), C])
    outcome = outcome_from_response(response(200, body), A)
    assert outcome.kind is OutcomeKind.DOUBLE_SPEND
    assert outcome.competing_txids == (B, C)


@pytest.mark.parametrize("status", ["UNKNOWN", "SOMETHING_NEW"])
def test_unknown_statuses_are_no_verdict(status: str) -> None:
    assert outcome_from_response(response(200, status_body(A, status)), A).kind is OutcomeKind.UNAVAILABLE


@pytest.mark.parametrize(
    ("code", "extra", "kind"),
    [
        (
            465,
            "arc error 465: transaction fee is too low\nminimum expected fee: 1, actual fee: 0",
            OutcomeKind.FEE_TOO_LOW,
        ),
        (473, "arc error 473: cumulative fee too low", OutcomeKind.FEE_TOO_LOW),
        (461, "arc error 461: script failed", OutcomeKind.INVALID),
        (462, "arc error 462: no inputs", OutcomeKind.INVALID),
        (463, "arc error 463: tx too small", OutcomeKind.INVALID),
        (464, "arc error 464: op_return with value", OutcomeKind.INVALID),
        (474, "arc error 474: too big", OutcomeKind.INVALID),
        (466, "conflicting tx", OutcomeKind.DOUBLE_SPEND),
        (460, "arc error 460: parent transaction not found", OutcomeKind.MISSING_INPUTS),
        (460, "arc error 460: transaction is not in extended format", OutcomeKind.INVALID),
        (469, "arc error 469: merkle roots could not be verified", OutcomeKind.UNAVAILABLE),
        (409, "block height not yet available", OutcomeKind.UNAVAILABLE),
        (401, "missing bearer token", OutcomeKind.UNAVAILABLE),
    ],
)
def test_error_codes(code: int, extra: str, kind: OutcomeKind) -> None:
    outcome = outcome_from_response(response(code, error_body(code, extra)), A)
    assert outcome.kind is kind
    assert outcome.arc_code == code
    assert outcome.http_status == code
    assert outcome.txid == A


def test_echo_style_400_and_non_json_bodies() -> None:
    echo = outcome_from_response(
        response(400, {"message": 'request body has an error: property "rawTx" is missing'}), A
    )
    html = outcome_from_response(response(418, b"<html>teapot</html>"), A)
    assert echo.kind is OutcomeKind.INVALID
    assert "rawTx" in echo.reason
    assert html.kind is OutcomeKind.UNAVAILABLE
    assert "teapot" in html.reason


def test_answer_for_another_txid_is_not_trusted() -> None:
    assert outcome_from_response(response(200, status_body(B, "SEEN_ON_NETWORK")), A).kind is OutcomeKind.UNAVAILABLE
    assert outcome_from_response(response(200, b"{}"), A).kind is OutcomeKind.UNAVAILABLE


def test_batch_is_matched_by_txid_not_position() -> None:
    # ARC lists successes first, then per-tx errors; one txid is missing, one is unrelated.
    body = [
        status_body(C, "SEEN_ON_NETWORK"),
        status_body("dd" * 32, "SEEN_ON_NETWORK"),
        error_body(465, "arc error 465: fee", txid=A),
    ]
    outcomes = outcomes_from_batch(response(200, body), [A, B, C])
    assert list(outcomes) == [A, B, C]
    assert outcomes[A].kind is OutcomeKind.FEE_TOO_LOW
    assert outcomes[A].arc_code == 465
    assert outcomes[A].http_status == 200
    assert outcomes[B].kind is OutcomeKind.UNAVAILABLE
    assert outcomes[C].kind is OutcomeKind.ACCEPTED


def test_batch_accepts_the_openapi_wrapper_and_whole_request_errors() -> None:
    wrapped = outcomes_from_batch(response(200, {"transactions": [status_body(A, "STORED")]}), [A])
    whole = outcomes_from_batch(response(400, error_body(400, "error parsing transactions from request")), [A, B])
    assert wrapped[A].status is ArcStatus.STORED
    assert all(o.kind is OutcomeKind.INVALID for o in whole.values())
    assert outcomes_from_batch(response(200, {"oops": 1}), [A])[A].kind is OutcomeKind.UNAVAILABLE


def test_tx_status_fields() -> None:
    st = parse_tx_status(status_body(A.upper(), "MINED", blockHash=B, blockHeight=7, merklePath="07"))
    assert (st.txid, st.status, st.block_height, st.merkle_path) == (A, ArcStatus.MINED, 7, "07")
    unmined = parse_tx_status(status_body(A, "SEEN_ON_NETWORK"))
    assert (unmined.block_hash, unmined.block_height, unmined.merkle_path) == (None, None, None)
    with pytest.raises(ShapeError):
        parse_tx_status({"txid": A, "txStatus": "MINED", "blockHeight": 7.5})
    with pytest.raises(ShapeError):
        parse_tx_status({"txid": A})


def test_policy_shapes() -> None:
    body = {
        "timestamp": "t",
        "policy": {
            "maxscriptsizepolicy": 500000,
            "maxtxsigopscountspolicy": 4294967295,
            "maxtxsizepolicy": 10000000,
            "miningFee": {"satoshis": 5, "bytes": 10000},
            "standardFormatSupported": True,
        },
    }
    policy = parse_policy(body)
    assert policy.fee_rate == FeeRate(5, 10000)
    assert policy.max_tx_size == 10_000_000
    nested = parse_policy({"policy": {"fees": {"miningFee": {"satoshis": 1, "bytes": 1000}}}})
    assert nested.fee_rate == FeeRate(1, 1000)
    for bad in (
        {"policy": {"miningFee": {"satoshis": 0.5, "bytes": 1000}}},
        {"policy": {"miningFee": {"satoshis": 1, "bytes": 0}}},
        {},
    ):
        with pytest.raises(ShapeError):
            parse_policy(bad)


def test_health() -> None:
    assert parse_health({"healthy": False, "version": "v1.3.0", "reason": "no metamorph"}).reason == "no metamorph"
    with pytest.raises(ShapeError):
        parse_health({"version": "v1"})
