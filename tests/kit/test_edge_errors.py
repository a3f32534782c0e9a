"""Every answer that is not OK carries an ErrorInfo with a stable reason, whatever went wrong at
the edge: no token, a wrong token, bytes that do not decode, a field that breaks the contract, a
bug. Real grpc.aio servers with the kit's interceptors, a real Proofline request type."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from prometheus_client import CollectorRegistry
from proofline.publisher.v1 import publisher_pb2

from proofline_kit.auth import TokenDirectory
from proofline_kit.errors import DomainError, ErrorKind, FieldViolation
from proofline_kit.rpc.server import GrpcServer, ServerOptions, ServiceBinding

TOKEN = "caller:admin:edge-test-token"
AUTHORIZED = (("authorization", "Bearer edge-test-token"),)
DOMAIN = "proofline.publisher"
Handler = Callable[[publisher_pb2.PublishRequest, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


class Edge:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.calls = 0
        self.registry = CollectorRegistry()
        self.server: GrpcServer | None = None

    async def unary(self, request: publisher_pb2.PublishRequest, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        self.calls += 1
        return await self.handler(request, context)

    async def stream(
        self, request: publisher_pb2.PublishRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        self.calls += 1
        yield await self.handler(request, context)

    def binding(self) -> ServiceBinding:
        def add(servicer: object, server: grpc.aio.Server) -> None:
            decode, encode = publisher_pb2.PublishRequest.FromString, publisher_pb2.PublishResponse.SerializeToString
            methods = {
                "Call": grpc.unary_unary_rpc_method_handler(self.unary, decode, encode),
                "Watch": grpc.unary_stream_rpc_method_handler(self.stream, decode, encode),
            }
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Edge", methods),))

        return ServiceBinding("test.Edge", object(), add)

    async def call(self, request: bytes, metadata: Any = AUTHORIZED, method: str = "Call") -> grpc.aio.AioRpcError:
        assert self.server is not None
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.server.port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await self._call(channel, request, metadata, method)
        return raised.value

    @staticmethod
    async def _call(channel: grpc.aio.Channel, request: bytes, metadata: Any, method: str) -> None:
        if method == "Call":
            unary: Any = channel.unary_unary(f"/test.Edge/{method}")
            await unary(request, metadata=metadata, timeout=5)
            return
        stream: Any = channel.unary_stream(f"/test.Edge/{method}")
        async for _ in stream(request, metadata=metadata, timeout=5):
            pass


async def ok(_request: publisher_pb2.PublishRequest, _context: grpc.aio.ServicerContext[Any, Any]) -> Any:
    return publisher_pb2.PublishResponse()


@pytest.fixture
async def edge(request: pytest.FixtureRequest) -> AsyncIterator[Edge]:
    under_test = Edge(getattr(request, "param", ok))
    options = ServerOptions("127.0.0.1", 0, False, 1 << 22, 0.5, DOMAIN)
    under_test.server = GrpcServer(options, [under_test.binding()], TokenDirectory.parse(TOKEN), under_test.registry)
    await under_test.server.start()
    yield under_test
    await under_test.server.stop()


def details(error: grpc.aio.AioRpcError) -> tuple[error_details_pb2.ErrorInfo, list[Any]]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "every error carries a google.rpc.Status"
    infos = [info for d in status.details if d.Unpack(info := error_details_pb2.ErrorInfo())]
    assert len(infos) == 1
    bad_requests = [bad for d in status.details if d.Unpack(bad := error_details_pb2.BadRequest())]
    violations = [v for bad in bad_requests for v in bad.field_violations]
    return infos[0], violations


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ((), "TOKEN_MISSING"),
        ((("authorization", "Bearer"),), "TOKEN_MISSING"),
        ((("authorization", "Basic eDp5"),), "TOKEN_MISSING"),
        ((("authorization", "Bearer not-a-known-token"),), "TOKEN_INVALID"),
    ],
)
@pytest.mark.parametrize("method", ["Call", "Watch"])
async def test_unauthenticated_carries_a_reason(edge: Edge, metadata: Any, reason: str, method: str) -> None:
    error = await edge.call(b"\xff\xff\xff", metadata, method)  # not even decoded: refused first
    info, _ = details(error)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert (info.reason, info.domain) == (reason, DOMAIN)
    assert edge.calls == 0


@pytest.mark.parametrize("data", [b"\xff\xff\xff", b"\x0a\x05ab", b"\x0a\x02\xc3\x28", b"\x08"])
@pytest.mark.parametrize("method", ["Call", "Watch"])
async def test_undecodable_request_bytes_are_invalid_argument(edge: Edge, data: bytes, method: str) -> None:
    error = await edge.call(data, method=method)
    info, _ = details(error)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (info.reason, info.domain) == ("REQUEST_MALFORMED", DOMAIN)
    assert "DecodeError" not in (error.details() or "")
    assert edge.calls == 0


@pytest.mark.parametrize("method", ["Call", "Watch"])
async def test_a_contract_violation_never_reaches_the_handler(edge: Edge, method: str) -> None:
    request = publisher_pb2.PublishRequest(request_id="r-1", wait_for=99)  # type: ignore[arg-type]
    error = await edge.call(request.SerializeToString(), method=method)
    info, violations = details(error)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.reason == "WAIT_FOR_INVALID"
    assert [(v.field, v.reason) for v in violations] == [("wait_for", "WAIT_FOR_INVALID")]
    assert edge.calls == 0


async def crash(_request: publisher_pb2.PublishRequest, _context: grpc.aio.ServicerContext[Any, Any]) -> Any:
    raise RuntimeError("connection to 10.0.0.7 refused: password=hunter2")


@pytest.mark.parametrize("edge", [crash], indirect=True)
@pytest.mark.parametrize("method", ["Call", "Watch"])
async def test_a_bug_is_internal_error_with_the_request_id_and_no_exception_text(edge: Edge, method: str) -> None:
    metadata = (*AUTHORIZED, ("x-request-id", "req-7f3a"))
    error = await edge.call(publisher_pb2.PublishRequest().SerializeToString(), metadata, method)
    info, _ = details(error)
    assert error.code() == grpc.StatusCode.INTERNAL
    assert (info.reason, dict(info.metadata)) == ("INTERNAL_ERROR", {"requestId": "req-7f3a"})
    trailers = repr(error.trailing_metadata()) + (error.details() or "")
    assert "hunter2" not in trailers and "RuntimeError" not in trailers
    counted = edge.registry.get_sample_value(
        "grpc_server_internal_errors_total", {"grpc_service": "test.Edge", "grpc_method": method}
    )
    assert counted == 1


async def loud(_request: publisher_pb2.PublishRequest, _context: grpc.aio.ServicerContext[Any, Any]) -> Any:
    echoed, part = "é" * 1_000_000, "é" * 2_000
    raise DomainError(
        ErrorKind.INVALID_ARGUMENT,
        "POLICY_INVALID",
        f"not a P2PKH address: {echoed}",
        metadata={f"k{i}": part for i in range(50)},
        field_violations=tuple(FieldViolation(f"items[{i}].{part}", part) for i in range(2000)),
    )


@pytest.mark.parametrize("edge", [loud], indirect=True)
async def test_an_error_never_grows_with_its_input(edge: Edge) -> None:
    error = await edge.call(publisher_pb2.PublishRequest().SerializeToString())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # not RESOURCE_EXHAUSTED on the client
    info, violations = details(error)
    size = sum(len(k) + len(v) for k, v in error.trailing_metadata() or ())
    assert size < 4096
    assert info.reason == "POLICY_INVALID"
    assert len(violations) == 5
    assert info.metadata["violationsOmitted"] == "1995"
