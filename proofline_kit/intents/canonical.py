"""JSON per RFC 8785 (JCS): strict parsing of I-JSON and the canonical serialisation.

Serialisation is the `rfc8785` library's. Parsing is the standard library's, made strict: duplicate
member names, NaN/Infinity literals and numbers outside binary64 are refused, because RFC 8785
works on I-JSON (RFC 7493) values only.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

# Integers beyond this are not exact in binary64; JCS (like ECMAScript) treats every number as one.
_SAFE_INTEGER = 2**53 - 1


class JsonError(ValueError):
    """The bytes are not I-JSON that JCS can canonicalise."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise JsonError(f"duplicate member name {key!r}")
        result[key] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise JsonError(f"{name} is not JSON")


def _number_from_int(text: str) -> int | float:
    value = int(text)
    # Outside the safe range the value a JCS implementation sees is the nearest double.
    return value if -_SAFE_INTEGER <= value <= _SAFE_INTEGER else float(value)


def parse(data: bytes) -> Any:
    """Strictly parse UTF-8 JSON bytes; JsonError on anything that is not I-JSON."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonError("not UTF-8") from exc
    try:
        return json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_refuse_constant,
            parse_int=_number_from_int,
        )
    except JsonError:
        raise
    except RecursionError as exc:
        raise JsonError("nested too deeply") from exc
    except ValueError as exc:  # json.JSONDecodeError, and int() beyond the digit limit
        raise JsonError(str(exc)) from exc


def canonicalize(value: Any) -> bytes:
    """The JCS bytes of a parsed value; JsonError when a value has no JCS form (lone surrogates,
    infinite numbers)."""
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise JsonError(str(exc)) from exc
    except RecursionError as exc:
        raise JsonError("nested too deeply") from exc
