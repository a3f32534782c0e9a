"""Deadline propagation: Python gRPC does not pass deadlines on, so every outbound call gets a
timeout derived from what the caller has left."""

from __future__ import annotations

from typing import Any

import grpc

SAFETY_MARGIN_S = 0.05


def time_budget_s(context: grpc.aio.ServicerContext[Any, Any], default_s: float) -> float:
    """Seconds left for outbound work: the caller's remaining deadline (minus a margin), capped by
    the service default when the caller set none."""
    remaining = context.time_remaining()
    if remaining is None:
        return default_s
    return max(0.0, min(default_s, remaining - SAFETY_MARGIN_S))
