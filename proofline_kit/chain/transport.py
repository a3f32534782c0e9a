"""HTTP calls to a chain provider: the kit's retrying caller, giving up with ChainUnavailable."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import httpx

from proofline_kit.outbound import HttpCaller, RetryPolicy, Sleep

from .errors import ChainUnavailable
from .outcomes import Provider


def provider_caller(
    http: httpx.AsyncClient,
    provider: Provider,
    policy: RetryPolicy,
    *,
    attempt_timeout_s: float,
    sleep: Sleep = asyncio.sleep,
    rand: Callable[[], float] = random.random,
) -> HttpCaller:
    def give_up(message: str, attempts: int, http_status: int | None) -> ChainUnavailable:
        return ChainUnavailable(provider, message, http_status=http_status, attempts=attempts)

    return HttpCaller(http, policy, attempt_timeout_s=attempt_timeout_s, give_up=give_up, sleep=sleep, rand=rand)
