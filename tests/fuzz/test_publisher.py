"""Fuzz of every PublisherService RPC (WatchJob, a stream, included): generated requests and
undecodable bytes."""

from __future__ import annotations

import pytest
from proofline.publisher.v1 import publisher_pb2

from tests.fuzz.driver import fuzz_rpc, raw_bytes
from tests.fuzz.stacks import Stack

RPCS = [m.full_name for m in publisher_pb2.DESCRIPTOR.services_by_name["PublisherService"].methods]


@pytest.mark.parametrize("rpc", RPCS, ids=lambda name: name.rsplit(".", 1)[1])
def test_generated_requests_keep_the_contract(publisher_stack: Stack, rpc: str) -> None:
    fuzz_rpc(publisher_stack, rpc)


@pytest.mark.parametrize("rpc", RPCS, ids=lambda name: name.rsplit(".", 1)[1])
def test_undecodable_bytes_are_refused_as_malformed(publisher_stack: Stack, rpc: str) -> None:
    raw_bytes(publisher_stack, rpc)
