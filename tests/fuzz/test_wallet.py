"""Fuzz of every WalletService money RPC (WatchTransaction, a stream, included) and of
WalletAdminService.GetReconciliation: generated requests and undecodable bytes. The identity RPCs
answer UNIMPLEMENTED until the identity side lands: checked once each, not fuzzed."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf.message_factory import GetMessageClass
from proofline.wallet.v1 import wallet_pb2

from tests.fuzz.contract import call
from tests.fuzz.driver import fuzz_rpc, method_named, raw_bytes
from tests.fuzz.stacks import (
    WALLET_ADMIN_SERVICE,
    WALLET_IDENTITY_RPCS,
    WALLET_MONEY_RPCS,
    WALLET_SERVICE,
    Stack,
    bearer,
)

RPCS = [f"{WALLET_SERVICE}.{name}" for name in WALLET_MONEY_RPCS] + [
    m.full_name for m in wallet_pb2.DESCRIPTOR.services_by_name["WalletAdminService"].methods
]


def _id(name: str) -> str:
    service, method = name.rsplit(".", 2)[1:]
    return f"{service}.{method}"


def test_every_rpc_is_fuzzed_or_known_unimplemented() -> None:
    served = {m.full_name for s in wallet_pb2.DESCRIPTOR.services_by_name.values() for m in s.methods}
    identity = {f"{WALLET_SERVICE}.{name}" for name in WALLET_IDENTITY_RPCS}
    assert served == set(RPCS) | identity and not set(RPCS) & identity
    assert f"{WALLET_ADMIN_SERVICE}.GetReconciliation" in RPCS and len(RPCS) == 12


@pytest.mark.parametrize("rpc", RPCS, ids=_id)
def test_generated_requests_keep_the_contract(wallet_stack: Stack, rpc: str) -> None:
    fuzz_rpc(wallet_stack, rpc)


@pytest.mark.parametrize("rpc", RPCS, ids=_id)
def test_undecodable_bytes_are_refused_as_malformed(wallet_stack: Stack, rpc: str) -> None:
    raw_bytes(wallet_stack, rpc)


@pytest.mark.parametrize("name", WALLET_IDENTITY_RPCS)
def test_identity_rpcs_answer_unimplemented(wallet_stack: Stack, name: str) -> None:
    """Until the identity side lands, an authenticated caller with the role gets UNIMPLEMENTED."""
    method = method_named(wallet_stack, f"{WALLET_SERVICE}.{name}")
    target = wallet_stack.target(method)
    request: Any = GetMessageClass(method.input_type)()
    request.account_id = wallet_stack.data["accounts"]["funded"].account_id
    before = target.snapshot.take()
    for caller in ("wallet", "admin"):
        answer = call(target.channel, method, request.SerializeToString(), bearer(caller), timeout_s=10)
        assert answer.code == grpc.StatusCode.UNIMPLEMENTED, f"{caller}: {answer.describe()}"
    assert target.snapshot.take() == before
