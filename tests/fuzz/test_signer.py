"""Fuzz of every SignerService RPC: generated requests and undecodable bytes."""

from __future__ import annotations

import pytest
from proofline.signer.v1 import signer_pb2

from tests.fuzz.driver import fuzz_rpc, raw_bytes
from tests.fuzz.stacks import Stack

RPCS = [m.full_name for m in signer_pb2.DESCRIPTOR.services_by_name["SignerService"].methods]


@pytest.mark.parametrize("rpc", RPCS, ids=lambda name: name.rsplit(".", 1)[1])
def test_generated_requests_keep_the_contract(signer_stack: Stack, rpc: str) -> None:
    fuzz_rpc(signer_stack, rpc)


@pytest.mark.parametrize("rpc", RPCS, ids=lambda name: name.rsplit(".", 1)[1])
def test_undecodable_bytes_are_refused_as_malformed(signer_stack: Stack, rpc: str) -> None:
    raw_bytes(signer_stack, rpc)
