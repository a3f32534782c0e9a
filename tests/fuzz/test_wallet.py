"""Fuzz of every WalletService money and sign-up RPC (WatchTransaction, a stream, included) and of
WalletAdminService.GetReconciliation: generated requests and undecodable bytes. The identity RPCs
(forwarded to the publisher) are in the authorization matrix and tests/wallet/test_identities.py;
they are not fuzzed yet."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from proofline.wallet.v1 import wallet_pb2

from proofline_kit.pagination import decode_page_token, encode_page_token
from tests.fuzz.contract import Answer, Findings, call, checked_call
from tests.fuzz.driver import fuzz_rpc, method_named, raw_bytes
from tests.fuzz.stacks import (
    WALLET_ADMIN_SERVICE,
    WALLET_IDENTITY_RPCS,
    WALLET_LOCAL_RPCS,
    WALLET_SERVICE,
    Stack,
    bearer,
)
from tests.wallet.conftest import RECIPIENT

RPCS = [f"{WALLET_SERVICE}.{name}" for name in WALLET_LOCAL_RPCS] + [
    m.full_name for m in wallet_pb2.DESCRIPTOR.services_by_name["WalletAdminService"].methods
]


def _id(name: str) -> str:
    service, method = name.rsplit(".", 2)[1:]
    return f"{service}.{method}"


def test_every_rpc_is_fuzzed_or_an_identity_rpc() -> None:
    served = {m.full_name for s in wallet_pb2.DESCRIPTOR.services_by_name.values() for m in s.methods}
    identity = {f"{WALLET_SERVICE}.{name}" for name in WALLET_IDENTITY_RPCS}
    assert served == set(RPCS) | identity and not set(RPCS) & identity
    assert f"{WALLET_ADMIN_SERVICE}.GetReconciliation" in RPCS and len(RPCS) == 19


@pytest.mark.parametrize("rpc", RPCS, ids=_id)
def test_generated_requests_keep_the_contract(wallet_stack: Stack, rpc: str) -> None:
    fuzz_rpc(wallet_stack, rpc)


@pytest.mark.parametrize("rpc", RPCS, ids=_id)
def test_undecodable_bytes_are_refused_as_malformed(wallet_stack: Stack, rpc: str) -> None:
    raw_bytes(wallet_stack, rpc)


def test_the_books_still_reconcile_after_the_fuzz(wallet_stack: Stack) -> None:
    """Whatever the fuzz recorded or was refused, the ledger still matches the coins to the satoshi."""
    method = method_named(wallet_stack, f"{WALLET_ADMIN_SERVICE}.GetReconciliation")
    findings = Findings()
    answer = checked_call(wallet_stack.target(method), method, wallet_pb2.GetReconciliationRequest(), findings)
    assert not findings, findings.report()
    assert answer.response is not None, answer.describe()
    report = wallet_pb2.GetReconciliationResponse.FromString(answer.response)
    assert report.balanced and report.difference_satoshis == 0, report
    assert report.pool_satoshis == wallet_stack.data["reconciliation"].pool_satoshis  # no send left (no workers)


# --- what the fuzz found ---------------------------------------------------------------------------
# Each case once answered against the contract; they are fixed and pinned here, deterministically
# (the fuzz's hints leave their exact inputs out, so the generated-request tests stay a live check of
# everything else).

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _edited_transactions_token(stack: Stack, position: object) -> wallet_pb2.ListTransactionsRequest:
    """The funded account's issued ListTransactions page token with its cursor position replaced."""
    funded = stack.data["accounts"]["funded"].account_id
    method = method_named(stack, f"{WALLET_SERVICE}.ListTransactions")
    issued = call(
        stack.target(method).channel,
        method,
        wallet_pb2.ListTransactionsRequest(account_id=funded, page_size=1).SerializeToString(),
        bearer("wallet"),
    )
    assert issued.response is not None, issued.describe()
    token = wallet_pb2.ListTransactionsResponse.FromString(issued.response).next_page_token
    cursor = decode_page_token(token)
    return wallet_pb2.ListTransactionsRequest(
        account_id=funded, page_token=encode_page_token({**cursor, "s": position})
    )


# Once INTERNAL (a cursor time beyond years 1..9999 reached PostgreSQL); cursors are positions now.
@pytest.mark.parametrize("position", ["0001-01-01T00:00:00+01:00", 1.5, True, None, 2**63])
def test_a_page_token_with_a_forged_position_is_page_token_invalid(wallet_stack: Stack, position: object) -> None:
    method = method_named(wallet_stack, f"{WALLET_SERVICE}.ListTransactions")
    findings = Findings()
    request = _edited_transactions_token(wallet_stack, position)
    checked_call(wallet_stack.target(method), method, request, findings, expect=[(INVALID, "PAGE_TOKEN_INVALID")])
    assert not findings, findings.report()


@pytest.mark.parametrize("txid", ["zz", "ab" * 31, "FF" * 32, "0" * 65])
def test_a_malformed_txid_filter_is_txid_invalid(wallet_stack: Stack, txid: str) -> None:
    method = method_named(wallet_stack, f"{WALLET_SERVICE}.ListTransactions")
    findings = Findings()
    request = wallet_pb2.ListTransactionsRequest(
        account_id=wallet_stack.data["accounts"]["funded"].account_id, txid=txid
    )
    checked_call(wallet_stack.target(method), method, request, findings, expect=[(INVALID, "TXID_INVALID")])
    assert not findings, findings.report()


def _bad_field_requests(stack: Stack) -> dict[str, tuple[str, str, Message]]:
    """(RPC, reason, request) of the wallet's own bad-field refusals of amounts and fee rates."""
    funded = stack.data["accounts"]["funded"].account_id

    def fee(rate: int = 1000, subtract: bool = False) -> wallet_pb2.FeePolicy:
        return wallet_pb2.FeePolicy(fee_rate_satoshis_per_kb=rate, subtract_fee_from_amount=subtract)

    def send(amount: int, policy: wallet_pb2.FeePolicy) -> wallet_pb2.SendRequest:
        return wallet_pb2.SendRequest(
            request_id=f"fz-bad-field-{uuid.uuid4().hex}",
            account_id=funded,
            to_address=RECIPIENT,
            amount_satoshis=amount,
            fee_policy=policy,
        )

    def estimate(amount: int, policy: wallet_pb2.FeePolicy) -> wallet_pb2.EstimateFeeRequest:
        return wallet_pb2.EstimateFeeRequest(
            account_id=funded, to_address=RECIPIENT, amount_satoshis=amount, fee_policy=policy
        )

    cases: dict[str, tuple[str, str, Message]] = {}
    for rpc, build in (("Send", send), ("EstimateFee", estimate)):
        cases[f"{rpc}-FEE_RATE_INVALID"] = (rpc, "FEE_RATE_INVALID", build(1_000, fee(rate=1_000_001)))
        cases[f"{rpc}-AMOUNT_ABOVE_LIMIT"] = (rpc, "AMOUNT_ABOVE_LIMIT", build(10**11 + 1, fee()))
        # BSV's dust limit is 1 satoshi: only a fee subtracted from the amount leaves the recipient below it.
        cases[f"{rpc}-AMOUNT_BELOW_DUST"] = (rpc, "AMOUNT_BELOW_DUST", build(100, fee(subtract=True)))
    return cases


BAD_FIELD_CASES = [
    f"{rpc}-{reason}"
    for rpc in ("Send", "EstimateFee")
    for reason in ("FEE_RATE_INVALID", "AMOUNT_ABOVE_LIMIT", "AMOUNT_BELOW_DUST")
]


def _violations(answer: Answer) -> list[str]:
    fields: list[str] = []
    for detail in answer.status.details if answer.status is not None else ():
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            fields.extend(v.field for v in bad.field_violations)
    return fields


def test_bad_amounts_and_fee_rates_are_refused_with_their_reason(wallet_stack: Stack) -> None:
    """The reasons themselves (and nothing stored)."""
    findings = Findings()
    for rpc, reason, request in _bad_field_requests(wallet_stack).values():
        method = method_named(wallet_stack, f"{WALLET_SERVICE}.{rpc}")
        checked_call(wallet_stack.target(method), method, request, findings, expect=[(INVALID, reason)])
    assert not findings, findings.report()


@pytest.mark.parametrize("case", BAD_FIELD_CASES)
def test_bad_amounts_and_fee_rates_name_their_field(wallet_stack: Stack, case: str) -> None:
    rpc, reason, request = _bad_field_requests(wallet_stack)[case]
    method = method_named(wallet_stack, f"{WALLET_SERVICE}.{rpc}")
    answer = call(wallet_stack.target(method).channel, method, request.SerializeToString(), bearer("wallet"))
    assert (answer.code, answer.reason) == (INVALID, reason), answer.describe()
    wanted = "fee_policy.fee_rate_satoshis_per_kb" if reason == "FEE_RATE_INVALID" else "amount_satoshis"
    assert wanted in _violations(answer), f"BadRequest violations: {_violations(answer)}"
