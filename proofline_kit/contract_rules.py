"""The rules every request field must satisfy before a service sees it, derived from the contract.

Most rules follow from a field's type and the naming conventions of docs/api.md, so a new service
(the wallet) inherits them without writing any: money is an int64 named `satoshis` or
`*_satoshis`, at most MAX_SATOSHIS and never negative, and so is the sum over a repeated field;
uint64 values fit PostgreSQL's bigint; enum values are ones the enum defines; Timestamps and
Durations are inside the ranges google.protobuf documents; strings hold no NUL or control
characters and are bounded; repeated fields are bounded. The few fields that differ are named in
the tables below. Each failure is INVALID_ARGUMENT with the innermost field's
`<FIELD>_INVALID` reason (or the table's) and a BadRequest violation; a description never repeats
the offending value.

Why not protovalidate: it needs the buf.validate protos vendored into our contract (the module
builds offline with no third-party protos) and a CEL interpreter on every request, while nearly
every rule here is generic by type.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, cast

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from proofline_kit.errors import DomainError, ErrorKind, FieldViolation
from proofline_kit.wire import MAX_SATOSHIS

BIGINT_MAX = 2**63 - 1
MAX_STRING_CHARS = 4096
MAX_REPEATED_ITEMS = 10_000
MAX_VIOLATIONS = 5

# google.protobuf.Timestamp: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999999Z.
TIMESTAMP_SECONDS = (-62_135_596_800, 253_402_300_799)
# google.protobuf.Duration: about ±10,000 years, nanos with the sign of seconds.
DURATION_SECONDS = 315_576_000_000
NANOS_MAX = 999_999_999

_SATOSHIS_NAME = re.compile(r"(^|_)satoshis(_per_kb)?$")
# Names and ids: no control character at all. Free text: tab and line breaks allowed.
_NOT_IN_NAMES = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NOT_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

# Fields whose reason is not the generic `<FIELD>_INVALID`: by field or by enclosing message.
REASONS: Mapping[str, str] = MappingProxyType(
    {
        "proofline.common.v1.Outpoint": "OUTPOINT_INVALID",
        "proofline.common.v1.SpentOutput.satoshis": "AMOUNT_INVALID",
        "proofline.signer.v1.KeyPolicy": "POLICY_INVALID",
    }
)
# Free-text fields: line breaks and tabs are allowed there.
FREE_TEXT: frozenset[str] = frozenset(
    {
        "proofline.publisher.v1.RevokeIdentityRequest.reason",
        "proofline.wallet.v1.RevokeIdentityRequest.reason",
        "proofline.utxo.v1.ReportConflictRequest.detail",
        "proofline.wallet.v1.SendRequest.memo",
    }
)

# Batch items the service judges one by one, answering each with its own ItemError while the
# others go on: the edge checks only how many there are.
ITEMS_JUDGED_ALONE: frozenset[str] = frozenset(
    {
        "proofline.signer.v1.SignTransactionsRequest.transactions",
        "proofline.publisher.v1.PublishBatchRequest.intents",
        "proofline.wallet.v1.SubmitIntentBatchRequest.intents",
    }
)

Check = Callable[[Any, "_Walk"], None]


class _Walk:
    """Where the check is (a stack of field names and indexes, formatted only for a violation)
    and what it found."""

    __slots__ = ("path", "violations")

    def __init__(self) -> None:
        self.path: list[str | int] = []
        self.violations: list[FieldViolation] = []

    def fail(self, description: str, reason: str) -> None:
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in self.path).lstrip(".")
        self.violations.append(FieldViolation(field, description, reason))


def _no_rules(message: Any, walk: _Walk) -> None:
    return None


class ContractRules:
    """Checks request messages against the rules above; a plan is built once per message type."""

    def __init__(self) -> None:
        self._plans: dict[str, Check] = {}
        self._valid: dict[str, Callable[[Any], bool]] = {}

    def check(self, request: Message) -> None:
        """Raise INVALID_ARGUMENT naming the first violations; return quietly when all rules hold."""
        if self.valid(request):
            return
        violations = self.violations(request)
        if violations:
            first = violations[0]
            raise DomainError(
                ErrorKind.INVALID_ARGUMENT,
                first.reason,
                f"{first.field}: {first.description}",
                metadata={"field": first.field},
                field_violations=tuple(violations),
            )

    def violations(self, message: Message) -> list[FieldViolation]:
        """The first MAX_VIOLATIONS violations, each with its field path and reason."""
        walk = _Walk()
        self._check_message(message, walk)
        return walk.violations

    def valid(self, message: Message) -> bool:
        """Whether every rule holds: compiled per message type, as fast as a hand-written check.
        Only the slow walk that names violations decides a refusal, so a bug here can only make
        the check slower, never refuse a valid request."""
        name = message.DESCRIPTOR.full_name
        compiled = self._valid.get(name)
        if compiled is None:
            compiled = self._valid[name] = _compile_valid(cast(Descriptor, message.DESCRIPTOR), self._rule_of)
        return compiled(message)

    def _rule_of(self, field: FieldDescriptor) -> bool:
        return field.full_name in ITEMS_JUDGED_ALONE or self._field_check(field, "") is not None

    def _check_message(self, message: Any, walk: _Walk) -> None:
        self._plan(message.DESCRIPTOR)(message, walk)

    def _plan(self, descriptor: Descriptor) -> Check:
        """One function that checks a message of this type (a no-op when no field has a rule)."""
        plan = self._plans.get(descriptor.full_name)
        if plan is None:
            # While its plan is built, a message that contains itself finds this dispatcher.
            self._plans[descriptor.full_name] = self._check_message
            plan = self._plans[descriptor.full_name] = self._build_plan(descriptor)
        return plan

    def _has_rules(self, descriptor: Descriptor) -> bool:
        return self._plan(descriptor) is not _no_rules

    def _build_plan(self, descriptor: Descriptor) -> Check:
        # (name, presence test, check): unset fields hold defaults, which every rule allows.
        steps: list[tuple[str, bool, Check]] = []
        for field in descriptor.fields:
            check = _no_rules if field.full_name in ITEMS_JUDGED_ALONE else self._field_check(field, _reason(field))
            if check is None:
                continue
            if field.is_repeated:
                check = _repeated_check(field, check, _reason(field))
            steps.append((field.name, field.message_type is not None and not field.is_repeated, check))
        if not steps:
            return _no_rules
        plan = tuple(steps)

        def check_message(message: Any, walk: _Walk) -> None:
            path = walk.path
            for name, is_message, check in plan:
                if message.HasField(name) if is_message else getattr(message, name):
                    path.append(name)
                    check(getattr(message, name), walk)
                    path.pop()
                    if len(walk.violations) >= MAX_VIOLATIONS:
                        return

        return check_message

    def _field_check(self, field: FieldDescriptor, reason: str) -> Check | None:
        """The check of one value of the field, or None when its type has no rule."""
        kind = field.type
        if kind == FieldDescriptor.TYPE_STRING:
            return _string_check(_NOT_IN_TEXT if field.full_name in FREE_TEXT else _NOT_IN_NAMES, reason)
        if kind == FieldDescriptor.TYPE_ENUM:
            enum = field.enum_type
            assert enum is not None
            return _enum_check(frozenset(enum.values_by_number), enum.name, reason)
        if kind == FieldDescriptor.TYPE_INT64 and _SATOSHIS_NAME.search(field.name):
            return _range_check(0, MAX_SATOSHIS, f"must be satoshis between 0 and {MAX_SATOSHIS:,}", reason)
        if kind in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
            return _range_check(0, BIGINT_MAX, f"must be at most {BIGINT_MAX:,}", reason)
        if kind != FieldDescriptor.TYPE_MESSAGE:
            return None
        inner = field.message_type
        assert inner is not None
        if inner.full_name == "google.protobuf.Timestamp":
            return _timestamp_check(reason)
        if inner.full_name == "google.protobuf.Duration":
            return _duration_check(reason)
        if not self._has_rules(inner) and _money_field(field) is None:
            return None
        return self._plan(inner)


def _repeated_check(field: FieldDescriptor, each: Check, reason: str) -> Check:
    money = _money_field(field)

    def check(values: Any, walk: _Walk) -> None:
        if len(values) > MAX_REPEATED_ITEMS:
            walk.fail(f"at most {MAX_REPEATED_ITEMS} items", reason)
            return
        before = len(walk.violations)
        path = walk.path
        for index, value in enumerate(values):
            path.append(index)
            each(value, walk)
            path.pop()
            if len(walk.violations) >= MAX_VIOLATIONS:
                return
        if money is not None and len(walk.violations) == before:
            name, money_reason = money
            if sum(getattr(v, name) for v in values) > MAX_SATOSHIS:
                walk.fail(f"the sum of {name} is above {MAX_SATOSHIS:,}", money_reason)

    return check


def _reason(field: FieldDescriptor) -> str:
    container = field.containing_type
    assert container is not None
    return REASONS.get(field.full_name) or REASONS.get(container.full_name) or f"{field.name.upper()}_INVALID"


def _money_field(field: FieldDescriptor) -> tuple[str, str] | None:
    """For a repeated message whose items carry an amount: that amount's name and reason."""
    if field.message_type is None or not field.is_repeated:
        return None
    for inner in field.message_type.fields:
        if inner.type == FieldDescriptor.TYPE_INT64 and not inner.is_repeated and inner.name == "satoshis":
            return inner.name, _reason(inner)
    return None


def _string_check(bad: re.Pattern[str], reason: str) -> Check:
    def check(value: str, walk: _Walk) -> None:
        if len(value) > MAX_STRING_CHARS:
            walk.fail(f"at most {MAX_STRING_CHARS} characters", reason)
        elif bad.search(value):
            walk.fail("must not contain NUL or control characters", reason)

    return check


def _enum_check(known: frozenset[int], enum_name: str, reason: str) -> Check:
    def check(value: int, walk: _Walk) -> None:
        if value not in known:
            walk.fail(f"not a known {enum_name} value", reason)

    return check


def _range_check(low: int, high: int, description: str, reason: str) -> Check:
    def check(value: int, walk: _Walk) -> None:
        if not low <= value <= high:
            walk.fail(description, reason)

    return check


def _timestamp_check(reason: str) -> Check:
    low, high = TIMESTAMP_SECONDS

    def check(value: Any, walk: _Walk) -> None:
        if not low <= value.seconds <= high or not 0 <= value.nanos <= NANOS_MAX:
            walk.fail("must be a Timestamp in 0001-01-01..9999-12-31, nanos 0..999999999", reason)

    return check


def _duration_check(reason: str) -> Check:
    def check(value: Any, walk: _Walk) -> None:
        seconds, nanos = value.seconds, value.nanos
        if (
            abs(seconds) > DURATION_SECONDS
            or abs(nanos) > NANOS_MAX
            or (seconds > 0 and nanos < 0)
            or (seconds < 0 and nanos > 0)
        ):
            walk.fail("must be a Duration within ±315,576,000,000 s, nanos with its sign", reason)

    return check


def _compile_valid(descriptor: Descriptor, has_rule: Callable[[FieldDescriptor], bool]) -> Callable[[Any], bool]:
    """Python source for `valid(m)` with every rule of the message and the messages inside it
    inlined, then compiled (as dataclasses and attrs generate theirs): walking a batch of a
    thousand transactions this way costs a third of the closures' walk."""
    source = _ValidSource(has_rule)
    source.message(descriptor, 0, (descriptor.full_name,))
    return source.compile()


class _ValidSource:
    """The lines of `valid(m0)` and the names they use, written one message and field at a time."""

    def __init__(self, has_rule: Callable[[FieldDescriptor], bool]) -> None:
        self._has_rule = has_rule
        self._lines = ["def valid(m0):"]
        self._env: dict[str, Any] = {
            "names": _NOT_IN_NAMES.search,
            "text": _NOT_IN_TEXT.search,
            "MAX_SATOSHIS": MAX_SATOSHIS,
        }

    def compile(self) -> Callable[[Any], bool]:
        exec("\n".join([*self._lines, "    return True"]), self._env)  # built from descriptors, never input
        compiled: Callable[[Any], bool] = self._env["valid"]
        return compiled

    def _add(self, depth: int, line: str) -> None:
        self._lines.append("    " * (depth + 1) + line)

    def message(self, descriptor: Descriptor, depth: int, seen: tuple[str, ...]) -> None:
        m, v = f"m{depth}", f"v{depth}"
        for field in descriptor.fields:
            if not self._has_rule(field):
                continue
            inner = field.message_type
            if inner is not None and inner.full_name in seen:
                self._add(depth, "return False  # a message that contains itself: the slow walk decides")
                return
            if field.is_repeated:
                self._repeated(field, depth, seen)
            elif inner is not None:
                self._add(depth, f"if {m}.HasField({field.name!r}):")
                self._add(depth, f"    m{depth + 1} = {m}.{field.name}")
                self.value(field, f"m{depth + 1}", depth + 1, seen)
            else:
                self._add(depth, f"{v} = {m}.{field.name}")
                self.value(field, v, depth, seen)

    def _repeated(self, field: FieldDescriptor, depth: int, seen: tuple[str, ...]) -> None:
        v, item = f"v{depth}", f"m{depth + 1}"
        self._add(depth, f"{v} = m{depth}.{field.name}")
        self._add(depth, f"if len({v}) > {MAX_REPEATED_ITEMS}: return False")
        if field.full_name in ITEMS_JUDGED_ALONE:
            return
        money = _money_field(field)
        if money is not None:
            self._add(depth, f"t{depth} = 0")
        self._add(depth, f"for {item} in {v}:")
        if money is not None:
            self._add(depth, f"    t{depth} += {item}.{money[0]}")
        self.value(field, item, depth + 1, seen)
        if money is not None:
            self._add(depth, f"if t{depth} > MAX_SATOSHIS: return False")

    def value(self, field: FieldDescriptor, value: str, depth: int, seen: tuple[str, ...]) -> None:
        """Lines that return False when one value of the field breaks its rule."""
        kind = field.type
        if kind == FieldDescriptor.TYPE_STRING:
            search = "text" if field.full_name in FREE_TEXT else "names"
            self._add(depth, f"if len({value}) > {MAX_STRING_CHARS} or {search}({value}): return False")
        elif kind == FieldDescriptor.TYPE_ENUM:
            enum = field.enum_type
            assert enum is not None
            known = f"known_{len(self._env)}"
            self._env[known] = frozenset(enum.values_by_number)
            self._add(depth, f"if {value} not in {known}: return False")
        elif kind == FieldDescriptor.TYPE_INT64:
            self._add(depth, f"if not 0 <= {value} <= {MAX_SATOSHIS}: return False")
        elif kind in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
            self._add(depth, f"if {value} > {BIGINT_MAX}: return False")
        else:
            inner = field.message_type
            assert inner is not None
            if inner.full_name == "google.protobuf.Timestamp":
                low, high = TIMESTAMP_SECONDS
                self._add(depth, f"if not {low} <= {value}.seconds <= {high}: return False")
                self._add(depth, f"if not 0 <= {value}.nanos <= {NANOS_MAX}: return False")
            elif inner.full_name == "google.protobuf.Duration":
                self._add(depth, f"s, n = {value}.seconds, {value}.nanos")
                self._add(depth, f"if abs(s) > {DURATION_SECONDS} or abs(n) > {NANOS_MAX}: return False")
                self._add(depth, "if s > 0 > n or s < 0 < n: return False")
            else:
                before = len(self._lines)
                self.message(inner, depth, (*seen, inner.full_name))
                if len(self._lines) == before:
                    self._add(depth, "pass")
