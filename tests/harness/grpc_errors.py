"""Assertions on failed gRPC calls."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import grpc
import pytest

from proofline_kit.rpc.status import error_reason


async def expect_rpc_error(
    call: Awaitable[Any], code: grpc.StatusCode, reason: str | None = None
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    error = caught.value
    assert error.code() == code, f"expected {code}, got {error.code()}: {error.details()}"
    if reason is not None:
        assert error_reason(error) == reason, f"expected reason {reason}, got {error_reason(error)}"
    return error
