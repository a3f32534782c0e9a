"""The fuzz loop every service module runs: generated requests to one RPC, raw undecodable bytes to
one RPC. Each test collects every contract violation over all its examples and fails once with
the whole list (RPC, problem, answer and an example request), rather than at the first."""

from __future__ import annotations

import os

import grpc
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import DecodeError
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.fuzz.contract import Findings, checked_call
from tests.fuzz.stacks import Stack
from tests.fuzz.strategies import request_strategy

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
DERANDOMIZE = os.environ.get("FUZZ_DERANDOMIZE", "1" if os.environ.get("CI") else "0") == "1"
# Calls that may wait (wait_for, Watch streams) get a short deadline: the server answers before it.
# The wallet's Send waits for `wait_for` up to `wait_timeout` (0 = 30 s), ending before the deadline.
SHORT_DEADLINE_S = 3.0
WAITING_METHODS = {"Publish", "PublishBatch", "WatchJob", "Send", "WatchTransaction"}
MALFORMED = (grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_MALFORMED")

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=DERANDOMIZE,
    database=None,
    # No shrinking: the servers keep state between examples, and every violation is reported
    # with its request anyway.
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)


def method_named(stack: Stack, name: str) -> MethodDescriptor:
    for method in stack.methods:
        if method.full_name == name:
            return method
    raise KeyError(name)


def timeout_for(method: MethodDescriptor) -> float:
    return SHORT_DEADLINE_S if method.name in WAITING_METHODS else 15.0


def fuzz_rpc(stack: Stack, name: str) -> None:
    """EXAMPLES generated requests to one RPC; every answer must keep the contract."""
    method = method_named(stack, name)
    target = stack.target(method)
    strategy = request_strategy(method.input_type, stack.hints, stack.valid.get(method.full_name))
    findings = Findings()

    @FUZZ_SETTINGS
    @given(strategy)
    def examples(request: object) -> None:
        checked_call(target, method, request, findings, timeout_s=timeout_for(method))

    examples()
    assert not findings, findings.report()


def decodes(method: MethodDescriptor, payload: bytes) -> bool:
    try:
        GetMessageClass(method.input_type).FromString(payload)
    except DecodeError:
        return False
    return True


def undecodable_payloads(method: MethodDescriptor) -> dict[str, bytes]:
    """Bytes that are not a valid encoding of the RPC's request (checked with protobuf's parser)."""
    payloads = {
        "ff ff ff": b"\xff\xff\xff",
        "truncated varint": b"\x08\xff",
        "11-byte varint": b"\x08" + b"\xff" * 10 + b"\x01",
        "length past the end": b"\x0a\x05ab",
        "huge length": b"\x0a\xff\xff\xff\xff\x0f",
        "wire type 7": b"\x0f",
        "field number 0": b"\x00\x01",
        "end group without start": b"\x0c",
        "unterminated group": b"\x0b\x08\x01",
    }
    strings = [f for f in method.input_type.fields if f.type == f.TYPE_STRING and not f.is_repeated]
    if strings and strings[0].number < 16:
        payloads[f"invalid UTF-8 in {strings[0].name}"] = bytes([strings[0].number << 3 | 2, 2, 0xFF, 0xFE])
    nested = [f for f in method.input_type.fields if f.message_type is not None and f.number < 16]
    if nested:
        # A nested message whose own bytes are cut short.
        payloads[f"truncated {nested[0].name}"] = bytes([nested[0].number << 3 | 2, 3, 0x08, 0xFF, 0xFF])
    return {label: raw for label, raw in payloads.items() if not decodes(method, raw)}


def raw_bytes(stack: Stack, name: str) -> None:
    """Undecodable request bytes: INVALID_ARGUMENT, REQUEST_MALFORMED, nothing changed. Then
    random bytes: whatever they decode to, the answer keeps the contract."""
    method = method_named(stack, name)
    target = stack.target(method)
    findings = Findings()
    for _label, payload in undecodable_payloads(method).items():
        checked_call(target, method, payload, findings, timeout_s=timeout_for(method), expect=[MALFORMED])

    @FUZZ_SETTINGS
    @given(st.binary(max_size=64))
    def examples(payload: bytes) -> None:
        expect = [] if decodes(method, payload) else [MALFORMED]
        checked_call(target, method, payload, findings, timeout_s=timeout_for(method), expect=expect)

    examples()
    assert not findings, findings.report()
