"""What every answer of every Proofline RPC must look like, and the calls that collect answers.

The contract (docs/api.md, "Errors"): a non-OK answer is a google.rpc.Status with exactly one
ErrorInfo, whose reason is stable (listed in the "Error reasons" table, or the documented
`<FIELD>_INVALID` pattern) and whose domain is `proofline.<service>`; UNKNOWN and INTERNAL are
bugs; an error stays small; and a refused request changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from tests.harness.schema_snapshot import SchemaSnapshot, changed_tables

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
FIELD_INVALID = re.compile(r"^[A-Z][A-Z0-9_]*_INVALID$")
STATUS_TRAILER = "grpc-status-details-bin"
MAX_ERROR_BYTES = 4096
REPR_CHARS = 400
Metadata = tuple[tuple[str, str], ...]


@cache
def documented_reasons() -> frozenset[str]:
    """The first column of docs/api.md's "## Error reasons" table, "A / B" split in two."""
    text = API_DOC.read_text()
    section = text.split("## Error reasons", 1)[1]
    reasons: set[str] = set()
    in_table = False
    for line in section.splitlines():
        if not line.startswith("|"):
            if in_table:
                break
            continue
        in_table = True
        first = line.strip("|").split("|")[0].strip().strip("`")
        if first in ("reason", "") or set(first) <= {"-", " "}:
            continue
        for name in first.split("/"):
            name = name.strip().strip("`")
            if re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
                reasons.add(name)
    assert len(reasons) > 40, f"could not read the error table of {API_DOC}: {sorted(reasons)}"
    return frozenset(reasons)


def is_known_reason(reason: str) -> bool:
    return reason in documented_reasons() or bool(FIELD_INVALID.match(reason))


def method_path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def short_repr(value: Any, limit: int = REPR_CHARS) -> str:
    """A request as a line: long strings and bytes cut with their length, long lists with their count."""
    text = compact(value) if isinstance(value, Message) else _scalar(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


def compact(message: Message) -> str:
    parts = []
    for descriptor, value in message.ListFields():
        if descriptor.is_repeated and not isinstance(value, Mapping):
            items = [compact(v) if isinstance(v, Message) else _scalar(v) for v in list(value)[:3]]
            more = f", ... {len(value)} items" if len(value) > 3 else ""
            parts.append(f"{descriptor.name}=[{', '.join(items)}{more}]")
        elif isinstance(value, Message):
            parts.append(f"{descriptor.name}={compact(value)}")
        elif isinstance(value, Mapping):
            parts.append(f"{descriptor.name}={{{len(value)} entries}}")
        else:
            parts.append(f"{descriptor.name}={_scalar(value)}")
    return f"{type(message).__name__}({', '.join(parts)})"


def _scalar(value: Any, limit: int = 48) -> str:
    if isinstance(value, str | bytes) and len(value) > limit:
        return f"{value[:limit]!r}...({len(value)} {'chars' if isinstance(value, str) else 'bytes'})"
    return repr(value)


@dataclass
class Answer:
    """What one call answered. `responses` counts the messages of a stream read before it ended."""

    code: grpc.StatusCode
    message: str = ""
    trailers: Metadata = ()
    status: status_pb2.Status | None = None
    status_error: str = ""
    responses: int = 0
    response: bytes | None = None

    @property
    def infos(self) -> list[error_details_pb2.ErrorInfo]:
        found: list[error_details_pb2.ErrorInfo] = []
        for detail in self.status.details if self.status is not None else ():
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                found.append(info)
        return found

    @property
    def reason(self) -> str:
        infos = self.infos
        return infos[0].reason if len(infos) == 1 else ""

    @property
    def error_bytes(self) -> int:
        details = sum(len(v) for k, v in self.trailers if k == STATUS_TRAILER)
        return details + len(self.message.encode())

    def describe(self) -> str:
        reasons = ",".join(i.reason for i in self.infos) or "-"
        domains = ",".join(i.domain for i in self.infos) or "-"
        return f"{self.code.name} reason={reasons} domain={domains} message={self.message[:200]!r}"


def _answer_of(error: grpc.RpcError, responses: int = 0) -> Answer:
    call: Any = error
    trailers = tuple((str(k), v) for k, v in (call.trailing_metadata() or ()))
    answer = Answer(call.code(), call.details() or "", trailers, responses=responses)
    try:
        answer.status = rpc_status.from_call(call)
    except ValueError as exc:  # the trailer disagrees with the call's code or message
        answer.status_error = str(exc)
    return answer


def call(
    channel: grpc.Channel,
    method: MethodDescriptor,
    request: bytes,
    metadata: Metadata,
    timeout_s: float = 10.0,
) -> Answer:
    """One call with raw request bytes (so undecodable bytes can be sent too). A server stream is
    read up to its first message; then the call is cancelled and counts as answered OK."""
    path = method_path(method)
    if method.server_streaming:
        streaming: Any = channel.unary_stream(path, request_serializer=None, response_deserializer=None)
        stream: Any = streaming(request, metadata=metadata, timeout=timeout_s)
        try:
            first = next(iter(stream))
        except StopIteration:
            return Answer(grpc.StatusCode.OK)
        except grpc.RpcError as error:
            return _answer_of(error)
        stream.cancel()
        return Answer(grpc.StatusCode.OK, responses=1, response=first)
    unary: Any = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
    try:
        response: bytes = unary(request, metadata=metadata, timeout=timeout_s)
    except grpc.RpcError as error:
        return _answer_of(error)
    return Answer(grpc.StatusCode.OK, response=response)


def contract_violations(answer: Answer, domain: str, passed_through: Sequence[str] = ()) -> list[str]:
    """What is wrong with an answer, whatever the request was. `passed_through`: the domains of
    the services this one calls, whose errors it may pass on unchanged (docs/architecture.md,
    "errors.DomainError ... the origin domain when it passes through from another service")."""
    if answer.code == grpc.StatusCode.OK:
        return []
    problems: list[str] = []
    if answer.code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL):
        problems.append(f"code {answer.code.name}")
    if answer.code == grpc.StatusCode.DEADLINE_EXCEEDED and not answer.trailers:
        problems.append("no answer before the client's deadline")
    if answer.status_error:
        problems.append(f"status trailer unreadable: {answer.status_error}")
    infos = answer.infos
    if len(infos) != 1:
        problems.append(f"{len(infos)} ErrorInfo (expected exactly 1)")
    for info in infos:
        if not is_known_reason(info.reason):
            problems.append(f"reason {info.reason!r} not documented")
        if info.domain != domain and info.domain not in passed_through:
            problems.append(f"domain {info.domain!r} (expected {domain!r})")
    if answer.error_bytes > MAX_ERROR_BYTES:
        problems.append(f"error is {answer.error_bytes} bytes (at most {MAX_ERROR_BYTES})")
    return problems


@dataclass
class Finding:
    rpc: str
    problem: str
    request: str
    answer: str
    count: int = 1


@dataclass(repr=False)
class Findings:
    """Violations grouped by (RPC, problem, code, reason), one example request each."""

    items: dict[tuple[str, str, str, str], Finding] = field(default_factory=dict)
    calls: int = 0

    def add(self, rpc: str, problem: str, request: Any, answer: Answer) -> None:
        key = (rpc, problem, answer.code.name, answer.reason)
        if key in self.items:
            self.items[key].count += 1
        else:
            self.items[key] = Finding(rpc, problem, short_repr(request), answer.describe())

    def __repr__(self) -> str:
        return f"Findings({len(self.items)} kinds in {self.calls} calls)"

    def __bool__(self) -> bool:
        return bool(self.items)

    def report(self) -> str:
        lines = [f"{len(self.items)} kinds of contract violation in {self.calls} calls:"]
        for finding in sorted(self.items.values(), key=lambda f: (f.rpc, f.problem)):
            lines.append(f"- {finding.rpc}: {finding.problem} (x{finding.count})")
            lines.append(f"    answer:  {finding.answer}")
            lines.append(f"    request: {finding.request}")
        return "\n".join(lines)


@dataclass
class Target:
    """A running service as the fuzz tests see it: where it is, its error domain, its schema."""

    name: str
    domain: str
    channel: grpc.Channel
    snapshot: SchemaSnapshot
    caller: dict[str, Metadata]
    passed_through: tuple[str, ...] = ()


def unknown_enum_value(message: Message) -> bool:
    """Whether any enum field, at any depth, holds a number its enum does not define."""
    for descriptor, value in message.ListFields():
        values = value if descriptor.is_repeated else [value]
        if descriptor.enum_type is not None:
            if any(v not in descriptor.enum_type.values_by_number for v in values):
                return True
        elif descriptor.message_type is not None and any(unknown_enum_value(v) for v in values):
            return True
    return False


def checked_call(
    target: Target,
    method: MethodDescriptor,
    request: Any,
    findings: Findings,
    *,
    metadata: Metadata | None = None,
    timeout_s: float = 10.0,
    expect: Sequence[tuple[grpc.StatusCode, str]] = (),
) -> Answer:
    """Calls, and records every contract violation: the answer's shape, a state change by a
    refusal, and (when `expect` is given) a (code, reason) outside the expected ones."""
    raw = request if isinstance(request, bytes) else request.SerializeToString()
    if metadata is None:
        metadata = target.caller[method.containing_service.full_name]
    before = target.snapshot.take()
    answer = call(target.channel, method, raw, metadata, timeout_s)
    findings.calls += 1
    rpc = f"{method.containing_service.name}.{method.name}"
    for problem in contract_violations(answer, target.domain, target.passed_through):
        findings.add(rpc, problem, request, answer)
    if expect and (answer.code, answer.reason) not in expect:
        wanted = " or ".join(f"{code.name}/{reason}" for code, reason in expect)
        findings.add(rpc, f"expected {wanted}", request, answer)
    if answer.code == grpc.StatusCode.OK and not isinstance(request, bytes) and unknown_enum_value(request):
        findings.add(rpc, "accepted an unknown enum value", request, answer)
    if answer.code != grpc.StatusCode.OK:
        changed = changed_tables(before, target.snapshot.take())
        if changed:
            findings.add(rpc, f"refused ({answer.code.name}) but changed {', '.join(changed)}", request, answer)
    return answer
