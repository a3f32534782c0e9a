"""Page sizes and opaque page tokens (AIP-158)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from proofline_kit.errors import invalid_argument


def page_size(requested: int, default: int = 100, maximum: int = 1000) -> int:
    if requested < 0:
        raise invalid_argument("PAGE_SIZE_INVALID", "page_size", "must not be negative")
    if requested == 0:
        return default
    return min(requested, maximum)


def encode_page_token(cursor: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(cursor)).decode().rstrip("=")


def decode_page_token(token: str) -> dict[str, Any]:
    if not token:
        return {}
    try:
        padded = token + "=" * (-len(token) % 4)
        cursor = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise invalid_argument("PAGE_TOKEN_INVALID", "page_token", "not a token this service issued") from exc
    if not isinstance(cursor, dict) or not _storable(cursor):
        raise invalid_argument("PAGE_TOKEN_INVALID", "page_token", "not a token this service issued")
    return cursor


_BIGINT = (-(2**63), 2**63 - 1)


def _storable(value: object) -> bool:
    """A crafted token must not carry what PostgreSQL would refuse (an int beyond bigint, a float
    where an id goes, a NUL); the tokens we issue hold none."""
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(v) for v in value)
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        return _BIGINT[0] <= value <= _BIGINT[1]
    if isinstance(value, str):
        return "\x00" not in value
    return False
