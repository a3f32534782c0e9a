"""Hypothesis strategies for any request message, generated from its protobuf descriptor.

Every field gets a strategy by its type, full of hostile edge values (type bounds, 2^31, 2^32 - 1,
2^63 - 1, the 21-million-coin supply and one satoshi more for `*satoshis*` fields; NUL, control
characters, bidi overrides and ~100 KB strings; empty, random and long bytes; enum values the
contract does not define; Timestamps and Durations out of range), and nested messages recursively
up to a depth bound.

`Hints` mix in mostly-valid values, so that requests get past the first check: a hint for a field
is used about three times in four. Hints are looked up by the field's full name
(`proofline.utxo.v1.RenewLeaseRequest.lease_id`), then by the field's name (`request_id`), then,
for message fields, by the message type's full name (`proofline.common.v1.Outpoint`).

`request_strategy` draws one of: a valid request as the stack built it, that valid request with
one field replaced by a hostile value (a "mutant"), or a request generated field by field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

Hints = Mapping[str, st.SearchStrategy[Any]]

MAX_DEPTH = 3
HUGE = 100_000
SUPPLY_SATOSHIS = 2_100_000_000_000_000  # 21 million coins

_COMMON_INTS = [0, 1, -1, 2, 100, 999, 1000, 1001, 1023, 1024, 1025, 2000, 2001, 2**31 - 1, 2**31, 2**32 - 1]
_SATOSHI_INTS = [SUPPLY_SATOSHIS, SUPPLY_SATOSHIS + 1, SUPPLY_SATOSHIS - 1, 545, 546, 1, 0, -1]
_BOUNDS: dict[int, tuple[int, int]] = {
    FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1),
}
_ENUM_UNKNOWN = [-1, 99, 2**31 - 1, -(2**31)]
_HOSTILE_TEXT = [
    "",
    " ",
    "\x00",
    "key\x00id",
    "\t\r\n",
    "\x1b[2J\x07",
    "\u202eevil",
    "\ufeffbom",
    "ключ-ид",
    "🔑🔑🔑",
    "e\u0301",
    "' OR '1'='1",
    "%s%n%x",
    "${jndi:x}",
    "../../etc/passwd",
    "null",
    "-1",
    "*",
    "a" * 64,
    "a" * 65,
    "a" * 128,
    "a" * 129,
    "a" * 513,
    "a" * 1025,
    "0" * 64,
    "G" * 64,
    "ff" * 31 + "FF",
]
_HOSTILE_BYTES = [
    b"",
    b"\x00",
    b"\x00" * 32,
    b"\xff" * 32,
    b"\x00" * 33,
    b"\x02" + b"\x00" * 32,
    b"\x02" + b"\xff" * 32,
    b"\x04" + b"\x01" * 64,
    b"\x30\x00",
    b"\x30\x06\x02\x01\x01\x02\x01\x01",
    b"\x01\x00\x00\x00\x00\x00\x00\x00\x00",
    b"\x01\x00\x00\x00\xff\xff\xff\xff\xff",
]
# Timestamp limits are 0001-01-01 .. 9999-12-31; Duration limits are +-315,576,000,000 s.
_SECONDS = [
    0,
    1,
    -1,
    59,
    3601,
    300,
    301,
    -62_135_596_801,
    -62_135_596_800,
    253_402_300_799,
    253_402_300_800,
    315_576_000_000,
    315_576_000_001,
    -315_576_000_001,
    2**31,
    2**63 - 1,
    -(2**63),
]
_NANOS = [0, 1, -1, 999_999_999, 1_000_000_000, -1_000_000_000, 2**31 - 1, -(2**31)]


def _ids() -> st.SearchStrategy[str]:
    return st.from_regex(r"[A-Za-z0-9._:-]{1,64}", fullmatch=True)


def hex_ids(size: int = 64) -> st.SearchStrategy[str]:
    return st.binary(min_size=size // 2, max_size=size // 2).map(bytes.hex)


def huge_text() -> st.SearchStrategy[str]:
    """Long strings without asking Hypothesis for 100 KB of choices: a short unit repeated."""
    units = st.sampled_from(["a", "\x00", "é", "🔑", "ab:", "\u202e"])
    return st.tuples(units, st.integers(1_000, HUGE)).map(lambda pair: pair[0] * (pair[1] // len(pair[0])))


def huge_bytes() -> st.SearchStrategy[bytes]:
    return st.tuples(st.binary(min_size=1, max_size=4), st.integers(1_000, HUGE)).map(
        lambda pair: pair[0] * (pair[1] // len(pair[0]))
    )


def integers_for(field: FieldDescriptor) -> st.SearchStrategy[int]:
    low, high = _BOUNDS[field.cpp_type]
    edges = {low, high, *(v for v in _COMMON_INTS if low <= v <= high)}
    if "satoshis" in field.name:
        edges |= {v for v in _SATOSHI_INTS if low <= v <= high}
    near_zero = st.integers(max(low, -2), 2)
    return st.one_of(st.sampled_from(sorted(edges)), st.integers(low, high), near_zero)


def text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(_HOSTILE_TEXT),
        st.text(max_size=80),
        _ids(),
        hex_ids(),
        huge_text(),
    )


def binary() -> st.SearchStrategy[bytes]:
    return st.one_of(st.sampled_from(_HOSTILE_BYTES), st.binary(max_size=100), huge_bytes())


def enums_for(field: FieldDescriptor) -> st.SearchStrategy[int]:
    assert field.enum_type is not None
    defined = [value.number for value in field.enum_type.values]
    return st.sampled_from(defined + _ENUM_UNKNOWN)


def _time_like(descriptor: Descriptor) -> st.SearchStrategy[Message]:
    cls: Any = GetMessageClass(descriptor)
    seconds = st.one_of(st.sampled_from(_SECONDS), st.integers(-(2**63), 2**63 - 1), st.integers(-5, 3_700))
    nanos = st.one_of(st.sampled_from(_NANOS), st.integers(-(2**31), 2**31 - 1))
    return st.builds(lambda s, n: cls(seconds=s, nanos=n), seconds, nanos)


_WELL_KNOWN: dict[str, Callable[[Descriptor], st.SearchStrategy[Message]]] = {
    "google.protobuf.Timestamp": _time_like,
    "google.protobuf.Duration": _time_like,
}


def mostly(valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`valid` about three times in four, else `hostile`."""
    return st.integers(0, 3).flatmap(lambda pick: hostile if pick == 0 else valid)


def _hint(field: FieldDescriptor, hints: Hints) -> st.SearchStrategy[Any] | None:
    for key in (field.full_name, field.name):
        if key in hints:
            return hints[key]
    if field.message_type is not None and field.message_type.full_name in hints:
        return hints[field.message_type.full_name]
    return None


def single_value(field: FieldDescriptor, hints: Hints, depth: int) -> st.SearchStrategy[Any]:
    """One value of the field (an element, for repeated fields), hostile, mixed with its hint."""
    hostile = _hostile_value(field, hints, depth)
    hint = _hint(field, hints)
    return hostile if hint is None else mostly(hint, hostile)


def _hostile_value(field: FieldDescriptor, hints: Hints, depth: int) -> st.SearchStrategy[Any]:
    cpp = field.cpp_type
    if cpp == FieldDescriptor.CPPTYPE_MESSAGE:
        assert field.message_type is not None
        return message_strategy(field.message_type, hints, depth + 1)
    if cpp == FieldDescriptor.CPPTYPE_ENUM:
        return enums_for(field)
    if cpp == FieldDescriptor.CPPTYPE_BOOL:
        return st.booleans()
    if cpp == FieldDescriptor.CPPTYPE_STRING:
        return binary() if field.type == FieldDescriptor.TYPE_BYTES else text()
    if cpp in _BOUNDS:
        return integers_for(field)
    if cpp in (FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=32 if cpp == FieldDescriptor.CPPTYPE_FLOAT else 64)
    raise NotImplementedError(f"no strategy for {field.full_name} (cpp type {cpp})")


def field_value(field: FieldDescriptor, hints: Hints, depth: int) -> st.SearchStrategy[Any]:
    """The whole value of a field: a list for repeated fields (0..3 items, sometimes very many)."""
    if _is_map(field):
        assert field.message_type is not None
        key_field = field.message_type.fields_by_name["key"]
        value_field = field.message_type.fields_by_name["value"]
        return st.dictionaries(
            _hostile_value(key_field, {}, depth + 1), single_value(value_field, hints, depth + 1), max_size=3
        )
    element = single_value(field, hints, depth)
    if not field.is_repeated:
        return element
    many = st.tuples(element, st.sampled_from([100, 1000, 1001, 1024, 1025, 2001])).map(
        lambda pair: [_small(field, pair[0])] * pair[1]
    )
    return st.one_of(st.lists(element, max_size=3), st.lists(element, max_size=3), many)


SMALL_ELEMENT_BYTES = 512


def _small(field: FieldDescriptor, value: Any) -> Any:
    """`value` if it is small enough to repeat a thousand times, else the field's default."""
    if isinstance(value, Message):
        return value if value.ByteSize() <= SMALL_ELEMENT_BYTES else type(value)()
    if isinstance(value, str | bytes):
        return value if len(value) <= SMALL_ELEMENT_BYTES else value[:0]
    return value


def _is_map(field: FieldDescriptor) -> bool:
    return bool(field.message_type is not None and field.message_type.GetOptions().map_entry)


def assign(message: Message, field: FieldDescriptor, value: Any) -> None:
    message.ClearField(field.name)
    target = getattr(message, field.name)
    if _is_map(field):
        assert field.message_type is not None
        if field.message_type.fields_by_name["value"].cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
            for key, item in value.items():
                target[key].CopyFrom(item)
        else:
            target.update(value)
    elif field.is_repeated:
        target.extend(value)
    elif field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
        target.CopyFrom(value)
    else:
        setattr(message, field.name, value)


def message_strategy(descriptor: Descriptor, hints: Hints, depth: int = 0) -> st.SearchStrategy[Message]:
    """A message of `descriptor` generated field by field: each field unset or drawn, at most one
    member of each oneof, nothing below MAX_DEPTH."""
    if descriptor.full_name in _WELL_KNOWN:
        return _WELL_KNOWN[descriptor.full_name](descriptor)
    cls = GetMessageClass(descriptor)
    if depth > MAX_DEPTH:
        return st.builds(cls)
    plain = [f for f in descriptor.fields if f.containing_oneof is None]
    oneofs = list(descriptor.oneofs)

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        message = cls()
        for field in plain:
            if draw(st.booleans()):
                assign(message, field, draw(_lazy_value(field, hints, depth)))
        for oneof in oneofs:
            chosen: FieldDescriptor | None = draw(st.sampled_from([None, *oneof.fields]))
            if chosen is not None:
                assign(message, chosen, draw(_lazy_value(chosen, hints, depth)))
        return message

    built: st.SearchStrategy[Message] = build()
    return built


def _lazy_value(field: FieldDescriptor, hints: Hints, depth: int) -> st.SearchStrategy[Any]:
    """The field's strategy, built when first drawn (nested messages are built only if reached)."""
    return st.deferred(lambda: field_value(field, hints, depth))


def request_strategy(
    descriptor: Descriptor, hints: Hints, valid: st.SearchStrategy[Message] | None = None
) -> st.SearchStrategy[Message]:
    """A request: valid as the stack built it, valid but for one hostile field, or generated."""
    generated = message_strategy(descriptor, hints)
    if valid is None:
        return generated
    fields = list(descriptor.fields)

    @st.composite
    def mutant(draw: st.DrawFn) -> Message:
        message = GetMessageClass(descriptor)()
        message.CopyFrom(draw(valid))
        field = draw(st.sampled_from(fields))
        assign(message, field, draw(field_value(field, {}, 0)))
        return message

    def copied(message: Message) -> Message:
        fresh = GetMessageClass(descriptor)()
        fresh.CopyFrom(message)
        return fresh

    if not fields:  # nothing to mutate (e.g. GetReconciliationRequest): the valid request or generated bytes
        return st.one_of(valid.map(copied), generated)
    return st.one_of(valid.map(copied), mutant(), generated)
