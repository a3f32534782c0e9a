"""The record schema: what the `record` member of an intent must look like to be published.

The publisher carries records for any application, so the schema is structural and configured per
deployment: a non-empty JSON object, bounded nesting, member names of a bounded length, and the
top-level members a deployment requires.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from proofline_kit.errors import DomainError, ErrorKind, FieldViolation


@dataclass(frozen=True, slots=True)
class RecordSchema:
    max_depth: int = 16
    max_members: int = 1000
    max_name_chars: int = 256
    required_members: tuple[str, ...] = ()

    def check(self, record: dict[str, Any]) -> None:
        """RECORD_INVALID naming the first rule the record breaks."""
        if not record:
            raise _invalid("record", "must have at least one member")
        missing = [name for name in self.required_members if name not in record]
        if missing:
            raise _invalid(f"record.{missing[0]}", "is required")
        members = 0
        for path, depth, value in _walk(record, "record", 1):
            if depth > self.max_depth:
                raise _invalid(path, f"nested deeper than {self.max_depth} levels")
            if isinstance(value, dict):
                members += len(value)
                for name in value:
                    if not name or len(name) > self.max_name_chars:
                        raise _invalid(path, f"member names must be 1-{self.max_name_chars} characters")
            if members > self.max_members:
                raise _invalid("record", f"more than {self.max_members} members in all")


def _walk(record: dict[str, Any], path: str, depth: int) -> Iterator[tuple[str, int, Any]]:
    """Containers of the record, depth first; a caller that stops at a depth never sees below it."""
    stack: list[tuple[str, int, Any]] = [(path, depth, record)]
    while stack:
        here, level, value = stack.pop()
        yield here, level, value
        children = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in reversed(list(children)):
            if isinstance(child, dict | list):
                name = f"{here}.{key}" if isinstance(value, dict) else f"{here}[{key}]"
                stack.append((name, level + 1, child))


def _invalid(path: str, description: str) -> DomainError:
    return DomainError(
        ErrorKind.INVALID_ARGUMENT,
        "RECORD_INVALID",
        f"{path} {description}",
        metadata={"field": "signed_payload", "path": path},
        field_violations=(FieldViolation("signed_payload", f"{path} {description}"),),
    )
