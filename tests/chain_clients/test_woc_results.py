"""WhatsOnChain answer mapping from recorded bodies (arc-woc.md §5.3-§5.4)."""

from __future__ import annotations

import httpx
import pytest

from proofline_kit.chain import OutcomeKind, OutpointSpend, Provider, SpendState, TxChainState
from proofline_kit.chain.jsonshape import ShapeError
from proofline_kit.chain.woc_results import (
    broadcast_should_retry,
    outcome_from_broadcast,
    parse_chain_tip,
    parse_header,
    parse_outpoint_spend,
    parse_tsc_proof,
    parse_tx_status,
    parse_utxo_page,
)
from proofline_kit.wire import Outpoint

A = "aa" * 32


def text(status: int, body: str) -> httpx.Response:
    return httpx.Response(status, text=body)


@pytest.mark.parametrize("body", [A, f'"{A}"', f"{A.upper()}\n"])
def test_success_returns_the_txid(body: str) -> None:
    outcome = outcome_from_broadcast(text(200, body), A)
    assert outcome.kind is OutcomeKind.ACCEPTED
    assert outcome.provider is Provider.WOC


@pytest.mark.parametrize(
    ("status", "body", "kind", "retry"),
    [
        (500, "unexpected response code 500: Transaction already in the mempool", OutcomeKind.ACCEPTED, False),
        (500, "unexpected response code 500: 257: txn-already-known", OutcomeKind.ACCEPTED, False),
        (400, "txn-already-in-mempool", OutcomeKind.ACCEPTED, False),
        (500, "unexpected response code 500: Missing inputs", OutcomeKind.MISSING_INPUTS, False),
        (500, "unexpected response code 500: 16: bad-txns-inputs-missingorspent", OutcomeKind.MISSING_INPUTS, False),
        (500, "unexpected response code 500: 258: txn-mempool-conflict", OutcomeKind.DOUBLE_SPEND, False),
        (500, "unexpected response code 500: 66: mempool min fee not met", OutcomeKind.FEE_TOO_LOW, False),
        (500, "unexpected response code 500: 66: insufficient priority", OutcomeKind.FEE_TOO_LOW, False),
        (500, "unexpected response code 500: 16: mandatory-script-verify-flag-failed", OutcomeKind.INVALID, False),
        (500, "unexpected response code 500: 16: bad-txns-inputs-duplicate", OutcomeKind.INVALID, False),
        (500, "unexpected response code 500: something odd", OutcomeKind.INVALID, False),
        (400, "txhex is required", OutcomeKind.INVALID, False),
        (500, "Internal Server Error", OutcomeKind.UNAVAILABLE, True),
        (502, "<html>Bad gateway</html>", OutcomeKind.UNAVAILABLE, True),
        (503, "unexpected response code 503: work queue depth exceeded", OutcomeKind.UNAVAILABLE, True),
        (429, "Too Many Requests", OutcomeKind.UNAVAILABLE, True),
        (401, "Unauthorized", OutcomeKind.UNAVAILABLE, False),
    ],
)
def test_broadcast_errors(status: int, body: str, kind: OutcomeKind, retry: bool) -> None:
    response = text(status, body)
    outcome = outcome_from_broadcast(response, A)
    assert outcome.kind is kind
    assert outcome.http_status == status
    assert broadcast_should_retry(response) is retry


def test_a_different_txid_on_200_is_not_acceptance() -> None:
    assert outcome_from_broadcast(text(200, "bb" * 32), A).kind is OutcomeKind.UNAVAILABLE


def test_unspent_envelope() -> None:
    page = parse_utxo_page(
        {
            "address": "addr",
            "script": "ff" * 32,
            "result": [
                {
                    "tx_pos": 1,
                    "tx_hash": A,
                    "value": 98,
                    "isSpentInMempoolTx": False,
                    "hex": "76a9",
                    "status": "unconfirmed",
                },
                {
                    "height": 123456,
                    "tx_pos": 0,
                    "tx_hash": A,
                    "value": 1000,
                    "isSpentInMempoolTx": True,
                    "status": "confirmed",
                },
            ],
            "error": "",
            "nextPageToken": "tok",
        }
    )
    unconfirmed, confirmed = page.utxos
    assert (unconfirmed.height, unconfirmed.confirmed, unconfirmed.script_hex) == (None, False, "76a9")
    assert (confirmed.height, confirmed.satoshis, confirmed.spent_in_mempool) == (123456, 1000, True)
    assert page.next_token == "tok"


def test_unspent_bare_array_and_bad_values() -> None:
    page = parse_utxo_page([{"height": 0, "tx_pos": 2, "tx_hash": A, "value": 5}])
    assert page.utxos[0].height is None
    assert page.next_token is None
    for bad in (
        {"result": [{"tx_pos": 0, "tx_hash": A, "value": 0.5}]},
        {"result": [{"tx_pos": 0, "tx_hash": A, "value": True}]},
        {"result": [{"tx_pos": -1, "tx_hash": A, "value": 1}]},
        {"result": [], "error": "address not found"},
    ):
        with pytest.raises(ShapeError):
            parse_utxo_page(bad)


def test_tx_status_three_shapes() -> None:
    mined = parse_tx_status({"txid": A, "blockhash": "00" * 32, "blockheight": 5, "blocktime": 1, "confirmations": 3})
    mempool = parse_tx_status({"txid": A})
    unknown = parse_tx_status({"txid": A, "error": "unknown"})
    assert (mined.state, mined.block_height, mined.confirmations) == (TxChainState.MINED, 5, 3)
    assert mempool.state is TxChainState.MEMPOOL
    assert unknown.state is TxChainState.UNKNOWN


def test_chain_info_header_and_tsc() -> None:
    tip = parse_chain_tip({"chain": "test", "blocks": 10, "headers": 10, "bestblockhash": "AB" * 32})
    assert (tip.height, tip.block_hash) == (10, "ab" * 32)
    header = parse_header({"hash": "01" * 32, "height": 3, "merkleroot": "02" * 32, "previousblockhash": None})
    assert header.previous_hash is None
    proof = parse_tsc_proof([{"index": 1, "txOrId": A, "target": "03" * 32, "nodes": ["*", "04" * 32]}])
    assert proof.nodes == ("*", "04" * 32)
    with pytest.raises(ShapeError):
        parse_tsc_proof([])


B = "bb" * 32


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        # the shape WhatsOnChain documents
        (
            {"utxo": {"txid": A.upper(), "vout": 2}, "spentIn": {"txid": B, "vin": 93, "status": "confirmed"}},
            OutpointSpend(Outpoint(A, 2), SpendState.SPENT, B, 93, True),
        ),
        (
            {"utxo": {"txid": A, "vout": 0}, "spentIn": {"txid": B, "vin": 0, "status": "unconfirmed"}, "error": ""},
            OutpointSpend(Outpoint(A, 0), SpendState.SPENT, B, 0, False),
        ),
        (
            {"utxo": {"txid": A, "vout": 0}, "spentIn": None, "error": ""},
            OutpointSpend(Outpoint(A, 0), SpendState.UNSPENT),
        ),
        ({"utxo": {"txid": A, "vout": 0}, "error": ""}, OutpointSpend(Outpoint(A, 0), SpendState.UNSPENT)),
        ({"utxo": {"txid": A, "vout": 1}, "error": "unknown"}, OutpointSpend(Outpoint(A, 1), SpendState.UNKNOWN)),
        # go-whatsonchain's reading
        ({"txid": A, "vout": 3, "spent": {"txid": B, "vin": 1}}, OutpointSpend(Outpoint(A, 3), SpendState.SPENT, B, 1)),
        ({"txid": A, "vout": 3, "spent": None}, OutpointSpend(Outpoint(A, 3), SpendState.UNSPENT)),
    ],
)
def test_spent_entries(entry: dict[str, object], expected: OutpointSpend) -> None:
    assert parse_outpoint_spend(entry) == expected


@pytest.mark.parametrize(
    "entry",
    [
        [],
        {"spentIn": None},
        {"utxo": None, "spentIn": None},
        {"utxo": {"txid": A, "vout": -1}},
        {"utxo": {"txid": A, "vout": "1"}},
        {"utxo": {"txid": A, "vout": 0}, "spentIn": {"txid": B}},
        {"utxo": {"txid": A, "vout": 0}, "spentIn": {"txid": B, "vin": 1.0}},
        {"utxo": {"txid": A, "vout": 0}, "spentIn": "yes"},
    ],
)
def test_malformed_spent_entries(entry: object) -> None:
    with pytest.raises(ShapeError):
        parse_outpoint_spend(entry)
