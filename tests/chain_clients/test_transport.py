"""Retry policy and the HTTP caller, driven by httpx.MockTransport with a fake clock and sleep."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from proofline_kit.chain import ChainUnavailable, Deadline, Provider, RetryPolicy
from proofline_kit.chain.transport import provider_caller
from proofline_kit.outbound import HttpCaller
from proofline_kit.outbound.retry import is_retryable_error, is_retryable_status, parse_retry_after

URL = "http://provider.invalid/thing"


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def caller_for(
    handler: Callable[[httpx.Request], httpx.Response], time: FakeTime, policy: RetryPolicy | None = None
) -> tuple[HttpCaller, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(record))
    policy = policy or RetryPolicy(max_attempts=4, base_delay_s=0.1, max_delay_s=1.0)
    return provider_caller(http, Provider.ARC, policy, attempt_timeout_s=5.0, sleep=time.sleep, rand=lambda: 0.5), seen


def test_retryable_statuses() -> None:
    assert [c for c in (200, 400, 404, 409, 429, 460, 465, 500, 502, 503, 504, 599) if is_retryable_status(c)] == [
        429,
        500,
        502,
        503,
        504,
        599,
    ]
    assert is_retryable_error(httpx.ConnectError("refused"))
    assert is_retryable_error(httpx.ReadTimeout("slow"))
    assert is_retryable_error(TimeoutError())
    assert not is_retryable_error(httpx.UnsupportedProtocol("ftp"))
    assert not is_retryable_error(ValueError())


def test_backoff_grows_with_jitter_and_a_cap() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay_s=0.2, max_delay_s=1.0)
    assert [policy.backoff_s(n, lambda: 0.0) for n in (1, 2, 3, 4, 5)] == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])
    assert [policy.backoff_s(n, lambda: 1.0) for n in (1, 2, 3, 4)] == pytest.approx([0.2, 0.4, 0.8, 1.0])
    assert policy.delay_s(1, 3.0, lambda: 0.0) == 3.0
    assert policy.delay_s(1, 60.0, lambda: 0.0) == policy.max_retry_after_s
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


async def test_retries_5xx_then_returns_success() -> None:
    time = FakeTime()
    answers = iter([503, 500, 200])
    caller, seen = caller_for(lambda r: httpx.Response(next(answers)), time)

    response = await caller.request("GET", URL, deadline=Deadline.after(60, time.clock))

    assert response.status_code == 200
    assert len(seen) == 3
    assert time.sleeps == pytest.approx([0.075, 0.15])  # equal jitter with rand=0.5


async def test_gives_up_after_max_attempts() -> None:
    time = FakeTime()
    caller, seen = caller_for(lambda r: httpx.Response(502), time)

    with pytest.raises(ChainUnavailable) as caught:
        await caller.request("GET", URL, deadline=Deadline.after(60, time.clock))

    assert len(seen) == 4
    assert caught.value.attempts == 4
    assert caught.value.http_status == 502
    assert caught.value.metadata["provider"] == "arc"


@pytest.mark.parametrize("status", [400, 401, 404, 409, 422, 465])
async def test_4xx_is_returned_without_retry(status: int) -> None:
    time = FakeTime()
    caller, seen = caller_for(lambda r: httpx.Response(status), time)

    response = await caller.request("POST", URL, deadline=Deadline.after(60, time.clock))

    assert response.status_code == status
    assert len(seen) == 1
    assert time.sleeps == []


async def test_429_honours_retry_after() -> None:
    time = FakeTime()
    answers = iter([httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(200)])
    caller, _ = caller_for(lambda r: next(answers), time)

    await caller.request("GET", URL, deadline=Deadline.after(60, time.clock))

    assert time.sleeps == [2.0]


async def test_connection_errors_are_retried_and_reported() -> None:
    time = FakeTime()

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    caller, seen = caller_for(refuse, time)
    with pytest.raises(ChainUnavailable, match="ConnectError: connection refused after 4 attempt"):
        await caller.request("GET", URL, deadline=Deadline.after(60, time.clock))
    assert len(seen) == 4


async def test_unfixable_transport_errors_are_not_retried() -> None:
    time = FakeTime()

    def unsupported(request: httpx.Request) -> httpx.Response:
        raise httpx.UnsupportedProtocol("no", request=request)

    caller, seen = caller_for(unsupported, time)
    with pytest.raises(ChainUnavailable):
        await caller.request("GET", URL, deadline=Deadline.after(60, time.clock))
    assert len(seen) == 1


async def test_no_retry_when_the_deadline_cannot_fit_the_backoff() -> None:
    time = FakeTime()
    caller, seen = caller_for(
        lambda r: httpx.Response(503), time, RetryPolicy(max_attempts=5, base_delay_s=2.0, max_delay_s=2.0)
    )

    with pytest.raises(ChainUnavailable, match="no time left to retry"):
        await caller.request("GET", URL, deadline=Deadline.after(1.5, time.clock))

    assert len(seen) == 1


async def test_expired_deadline_sends_nothing() -> None:
    time = FakeTime()
    caller, seen = caller_for(lambda r: httpx.Response(200), time)

    with pytest.raises(ChainUnavailable, match="deadline exhausted after 0 attempt"):
        await caller.request("GET", URL, deadline=Deadline.after(0, time.clock))

    assert seen == []


async def test_attempt_timeout_is_cut_from_the_deadline() -> None:
    time = FakeTime()
    timeouts: list[float] = []
    caller, seen = caller_for(lambda r: httpx.Response(200), time)

    def budget_header(timeout: float) -> dict[str, str]:
        timeouts.append(timeout)
        return {"X-Budget": f"{timeout:.1f}"}

    await caller.request("GET", URL, deadline=Deadline.after(2.5, time.clock), headers_for_timeout=budget_header)

    assert timeouts == [2.5]
    assert seen[0].headers["X-Budget"] == "2.5"
    assert seen[0].extensions["timeout"]["read"] == 2.5


def test_deadline_share() -> None:
    time = FakeTime()
    deadline = Deadline.after(10, time.clock)
    time.now = 4
    assert deadline.share(3).remaining() == pytest.approx(2.0)
    assert deadline.share(1).expires_at == pytest.approx(deadline.expires_at)
    time.now = 11
    assert deadline.expired
    assert deadline.remaining() == 0.0
