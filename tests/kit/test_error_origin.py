"""Errors that pass through keep their origin: a service that forwards another service's error
answers with that service's code, reason and ErrorInfo domain (real grpc.aio servers, the kit's
interceptors on both)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from prometheus_client import CollectorRegistry

from proofline_kit.auth import TokenDirectory
from proofline_kit.errors import DomainError, ErrorKind
from proofline_kit.rpc.server import GrpcServer, ServerOptions, ServiceBinding
from proofline_kit.rpc.status import from_rpc_error

TOKEN = "caller:admin:origin-test-token"
METADATA = (("authorization", "Bearer origin-test-token"),)
Handler = Callable[[bytes, grpc.aio.ServicerContext[Any, Any]], Awaitable[bytes]]


def binding(handler: Handler) -> ServiceBinding:
    def add(servicer: object, server: grpc.aio.Server) -> None:
        method: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(handler)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Origin", {"Call": method}),))

    return ServiceBinding("test.Origin", object(), add)


async def serve(domain: str, handler: Handler) -> GrpcServer:
    options = ServerOptions("127.0.0.1", 0, False, 1 << 20, 0.5, domain)
    server = GrpcServer(options, [binding(handler)], TokenDirectory.parse(TOKEN), CollectorRegistry())
    await server.start()
    return server


async def call(port: int) -> grpc.aio.AioRpcError:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary("/test.Origin/Call")
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub(b"", metadata=METADATA, timeout=5)
    return raised.value


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    infos = [info for d in status.details if d.Unpack(info := error_details_pb2.ErrorInfo())]
    assert len(infos) == 1
    return infos[0]


@pytest.fixture
async def origin() -> AsyncIterator[GrpcServer]:
    async def refuse(_request: bytes, _context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        raise DomainError(ErrorKind.FAILED_PRECONDITION, "IDENTITY_REVOKED", "the key was revoked", {"k": "v"})

    server = await serve("proofline.publisher", refuse)
    yield server
    await server.stop()


async def test_a_forwarded_error_keeps_code_reason_metadata_and_domain(origin: GrpcServer) -> None:
    async def forward(_request: bytes, _context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        raise from_rpc_error(await call(origin.port), "publisher", "PUBLISHER_UNAVAILABLE")

    front = await serve("proofline.wallet", forward)
    try:
        error = await call(front.port)
    finally:
        await front.stop()
    info = error_info(error)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (info.reason, info.domain, dict(info.metadata)) == ("IDENTITY_REVOKED", "proofline.publisher", {"k": "v"})


async def test_an_unreachable_service_is_our_own_unavailable_error(origin: GrpcServer) -> None:
    port = origin.port
    await origin.stop()

    async def forward(_request: bytes, _context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        raise from_rpc_error(await call(port), "publisher", "PUBLISHER_UNAVAILABLE")

    front = await serve("proofline.wallet", forward)
    try:
        error = await call(front.port)
    finally:
        await front.stop()
    info = error_info(error)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert (info.reason, info.domain) == ("PUBLISHER_UNAVAILABLE", "proofline.wallet")


async def test_an_error_raised_here_carries_this_services_domain() -> None:
    async def refuse(_request: bytes, _context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        raise DomainError(ErrorKind.NOT_FOUND, "ACCOUNT_NOT_FOUND", "no such account")

    server = await serve("proofline.wallet", refuse)
    try:
        error = await call(server.port)
    finally:
        await server.stop()
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert (error_info(error).reason, error_info(error).domain) == ("ACCOUNT_NOT_FOUND", "proofline.wallet")
