"""The auth interceptor's session seam: a service's own bearer credentials, asked only about tokens
AUTH_TOKENS does not know. A real grpc.aio server with the kit's interceptors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from prometheus_client import CollectorRegistry
from proofline.publisher.v1 import publisher_pb2

from proofline_kit.auth import Caller, TokenDirectory, current_caller
from proofline_kit.errors import DomainError, ErrorKind
from proofline_kit.rpc.server import GrpcServer, ServerOptions, ServiceBinding

DOMAIN = "proofline.test"
SESSION = Caller("session:acct_1", frozenset({"session"}), "acct_1")


class Verifier:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def __call__(self, token: str) -> Caller | None:
        self.asked.append(token)
        if token == "down":
            raise DomainError(ErrorKind.UNAVAILABLE, "SESSIONS_UNAVAILABLE", "try again")
        if token == "buggy":
            raise RuntimeError("a bug in the verifier")
        return SESSION if token == "good-session" else None


def _binding(seen: list[Caller]) -> ServiceBinding:
    async def call(request: publisher_pb2.PublishRequest, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        seen.append(current_caller.get())
        return publisher_pb2.PublishResponse()

    def add(servicer: object, server: grpc.aio.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(
            call, publisher_pb2.PublishRequest.FromString, publisher_pb2.PublishResponse.SerializeToString
        )
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Session", {"Call": handler}),))

    return ServiceBinding("test.Session", object(), add)


@pytest.fixture
async def served() -> AsyncIterator[tuple[grpc.aio.Channel, Verifier, list[Caller]]]:
    verifier = Verifier()
    seen: list[Caller] = []
    server = GrpcServer(
        ServerOptions("127.0.0.1", 0, False, 1 << 22, 0.5, DOMAIN),
        [_binding(seen)],
        TokenDirectory.parse("svc:wallet:directory-token-1"),
        CollectorRegistry(),
        verifier,
    )
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield channel, verifier, seen
    finally:
        await channel.close()
        await server.stop()


async def _call(channel: grpc.aio.Channel, token: str) -> None:
    unary: Any = channel.unary_unary(
        "/test.Session/Call",
        request_serializer=publisher_pb2.PublishRequest.SerializeToString,
        response_deserializer=publisher_pb2.PublishResponse.FromString,
    )
    await unary(publisher_pb2.PublishRequest(), metadata=(("authorization", f"Bearer {token}"),), timeout=5)


async def _refused(channel: grpc.aio.Channel, token: str) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _call(channel, token)
    status = rpc_status.from_call(raised.value)  # type: ignore[arg-type]
    assert status is not None
    [info] = [i for d in status.details if d.Unpack(i := error_details_pb2.ErrorInfo())]
    return raised.value.code(), info.reason


async def test_the_verifier_is_asked_only_about_unknown_tokens(
    served: tuple[grpc.aio.Channel, Verifier, list[Caller]],
) -> None:
    channel, verifier, seen = served
    await _call(channel, "directory-token-1")
    assert verifier.asked == [] and seen[-1].caller_id == "svc" and seen[-1].account_id == ""
    await _call(channel, "good-session")
    assert seen[-1] == SESSION
    assert await _refused(channel, "not-a-session") == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")
    assert await _refused(channel, "down") == (grpc.StatusCode.UNAVAILABLE, "SESSIONS_UNAVAILABLE")
    assert await _refused(channel, "buggy") == (grpc.StatusCode.INTERNAL, "INTERNAL_ERROR")
    assert verifier.asked == ["good-session", "not-a-session", "down", "buggy"]
    assert len(seen) == 2
