"""Strict reads of provider JSON: money and heights must be real integers, never floats or bools."""

from __future__ import annotations

from typing import Any

import httpx
import orjson


class ShapeError(ValueError):
    """A provider's JSON does not have the shape or types we rely on."""


def parse_json(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise ShapeError(f"HTTP {response.status_code} body is not JSON: {response.text[:200]!r}") from exc


def as_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ShapeError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def as_list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ShapeError(f"{what} must be a JSON array, got {type(value).__name__}")
    return value


def opt_str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ShapeError(f"{key} must be a string, got {type(value).__name__}")
    return value


def req_str(obj: dict[str, Any], key: str) -> str:
    value = opt_str(obj, key)
    if value is None:
        raise ShapeError(f"{key} is missing")
    return value


def opt_int(obj: dict[str, Any], key: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ShapeError(f"{key} must be an integer, got {value!r}")
    return value


def req_int(obj: dict[str, Any], key: str) -> int:
    value = opt_int(obj, key)
    if value is None:
        raise ShapeError(f"{key} is missing")
    return value


def opt_bool(obj: dict[str, Any], key: str) -> bool | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ShapeError(f"{key} must be a boolean, got {value!r}")
    return value


def str_tuple(obj: dict[str, Any], key: str) -> tuple[str, ...]:
    value = obj.get(key)
    if value is None:
        return ()
    items = as_list(value, key)
    if not all(isinstance(item, str) for item in items):
        raise ShapeError(f"{key} must be a list of strings")
    return tuple(items)
