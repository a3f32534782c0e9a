"""One HTTP call to a remote service: per-attempt timeouts cut from the caller's deadline, retries with
jittered backoff on 429/5xx/timeouts/broken connections only, and the caller's own error when it gives up."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from .deadline import Deadline
from .retry import RetryPolicy, is_retryable_error, is_retryable_status, parse_retry_after

# Below this an attempt cannot even connect; give up instead of sending a doomed request.
MIN_ATTEMPT_S = 0.05

Sleep = Callable[[float], Awaitable[None]]
HeadersForTimeout = Callable[[float], Mapping[str, str]]
# Builds the error raised when the caller gives up: (message, attempts made, last HTTP status).
GiveUp = Callable[[str, int, int | None], Exception]


def retry_on_status(response: httpx.Response) -> bool:
    return is_retryable_status(response.status_code)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class HttpCaller:
    """Sends requests for one remote service through an injected (pooled) ``httpx.AsyncClient``."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        policy: RetryPolicy,
        *,
        attempt_timeout_s: float,
        give_up: GiveUp,
        sleep: Sleep = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._http = http
        self._give_up_error = give_up
        self.policy = policy
        self.attempt_timeout_s = attempt_timeout_s
        self._sleep = sleep
        self._rand = rand

    def _give_up(self, message: str, attempts: int, http_status: int | None) -> Exception:
        return self._give_up_error(message, attempts, http_status)

    async def request(
        self,
        method: str,
        url: str,
        *,
        deadline: Deadline,
        headers: Mapping[str, str] | None = None,
        headers_for_timeout: HeadersForTimeout | None = None,
        json: Any = None,
        content: bytes | None = None,
        should_retry: Callable[[httpx.Response], bool] = retry_on_status,
    ) -> httpx.Response:
        """The first response that is not worth retrying. Raises the ``give_up`` error when the
        attempts or the deadline run out, or on a transport error that retrying cannot fix.

        ``headers_for_timeout`` builds headers that depend on this attempt's timeout (ARC's
        X-MaxTimeout must stay below it or ARC would still be waiting when we hang up).
        """
        attempt = 0
        last = "no attempt made"
        last_status: int | None = None
        while True:
            remaining = deadline.remaining()
            if remaining < MIN_ATTEMPT_S:
                raise self._give_up(
                    f"deadline exhausted after {attempt} attempt(s); last: {last}", attempt, last_status
                )
            attempt += 1
            timeout = min(self.attempt_timeout_s, remaining)
            sent = dict(headers or {})
            if headers_for_timeout is not None:
                sent.update(headers_for_timeout(timeout))
            retry_after: float | None = None
            try:
                async with asyncio.timeout(timeout):
                    response = await self._http.request(
                        method, url, headers=sent, json=json, content=content, timeout=httpx.Timeout(timeout)
                    )
            except (httpx.HTTPError, TimeoutError) as exc:
                if not is_retryable_error(exc):
                    raise self._give_up(_describe(exc), attempt, None) from exc
                last, last_status = _describe(exc), None
            else:
                if not should_retry(response):
                    return response
                last, last_status = f"HTTP {response.status_code}", response.status_code
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if attempt >= self.policy.max_attempts:
                raise self._give_up(f"{last} after {attempt} attempt(s)", attempt, last_status)
            delay = self.policy.delay_s(attempt, retry_after, self._rand)
            if delay + MIN_ATTEMPT_S > deadline.remaining():
                raise self._give_up(f"{last} after {attempt} attempt(s); no time left to retry", attempt, last_status)
            await self._sleep(delay)
