"""A crafted page token is refused with PAGE_TOKEN_INVALID before any of it reaches PostgreSQL."""

from __future__ import annotations

import base64
import json

import pytest

from proofline_kit.errors import DomainError
from proofline_kit.pagination import decode_page_token, encode_page_token


def test_a_token_this_service_issued_reads_back() -> None:
    cursor = {"after": 2**63 - 1, "time": "2026-12-07T10:00:00+00:00", "filters": ["a", 1, None, True]}
    assert decode_page_token(encode_page_token(cursor)) == cursor


@pytest.mark.parametrize(
    "cursor", [{"after": 2**63}, {"after": -(2**63) - 1}, {"after": "id\x00"}, {"f": [{"x": 2**64 - 1}]}]
)
def test_a_crafted_cursor_is_page_token_invalid(cursor: dict[str, object]) -> None:
    token = base64.urlsafe_b64encode(json.dumps(cursor).encode()).decode().rstrip("=")
    with pytest.raises(DomainError) as raised:
        decode_page_token(token)
    assert raised.value.reason == "PAGE_TOKEN_INVALID"
