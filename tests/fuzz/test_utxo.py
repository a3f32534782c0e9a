"""Fuzz of every UtxoService and UtxoAdminService RPC: generated requests and undecodable bytes."""

from __future__ import annotations

import pytest
from proofline.utxo.v1 import utxo_pb2

from tests.fuzz.driver import fuzz_rpc, raw_bytes
from tests.fuzz.stacks import Stack

RPCS = [
    m.full_name
    for service in ("UtxoService", "UtxoAdminService")
    for m in utxo_pb2.DESCRIPTOR.services_by_name[service].methods
]


def _id(name: str) -> str:
    service, method = name.rsplit(".", 2)[1:]
    return f"{service}.{method}"


@pytest.mark.parametrize("rpc", RPCS, ids=_id)
def test_generated_requests_keep_the_contract(utxo_stack: Stack, rpc: str) -> None:
    fuzz_rpc(utxo_stack, rpc)


@pytest.mark.parametrize("rpc", RPCS, ids=_id)
def test_undecodable_bytes_are_refused_as_malformed(utxo_stack: Stack, rpc: str) -> None:
    raw_bytes(utxo_stack, rpc)
