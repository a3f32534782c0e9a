"""Server interceptors: authentication, and one wrapping interceptor for request ids, logs,
metrics and the mapping of domain errors to rich statuses.

Both resolve the handler first and return None for unknown methods, so gRPC answers UNIMPLEMENTED
(grpcurl's reflection v1 -> v1alpha fallback depends on that).
"""

from __future__ import annotations

import contextvars
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import grpc
import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram

from proofline_kit.auth import Caller, TokenDirectory, current_caller
from proofline_kit.errors import DomainError
from proofline_kit.logging import get_logger
from proofline_kit.rpc.status import internal_status, to_rpc_status

OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.v1.", "/grpc.reflection.v1alpha.")
REQUEST_ID_HEADER = "x-request-id"

current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("current_request_id", default="")

Continuation = Callable[[grpc.HandlerCallDetails], Awaitable["grpc.RpcMethodHandler[Any, Any] | None"]]


def _metadata_value(details: grpc.HandlerCallDetails, key: str) -> str | None:
    for item_key, value in details.invocation_metadata or ():
        if item_key == key:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def _with_behaviour(
    handler: grpc.RpcMethodHandler[Any, Any], unary: Any, stream: Any
) -> grpc.RpcMethodHandler[Any, Any]:
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(unary, handler.request_deserializer, handler.response_serializer)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(stream, handler.request_deserializer, handler.response_serializer)
    raise NotImplementedError("client-streaming methods are not used by Proofline")


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Maps `authorization: Bearer <token>` to a Caller; health and reflection stay open."""

    def __init__(self, directory: TokenDirectory) -> None:
        self._directory = directory

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(OPEN_METHOD_PREFIXES):
            return handler
        caller = self._caller(handler_call_details)
        if caller is None:
            return _with_behaviour(handler, _deny_unary, _deny_stream)
        current_caller.set(caller)
        return handler

    def _caller(self, details: grpc.HandlerCallDetails) -> Caller | None:
        header = _metadata_value(details, "authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        return self._directory.authenticate(token.strip())


async def _deny_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")


async def _deny_stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")
    yield None  # pragma: no cover - abort raises


class RpcMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.handled = Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, by method and status code.",
            ["grpc_service", "grpc_method", "grpc_code"],
            registry=registry,
        )
        self.latency = Histogram(
            "grpc_server_handling_seconds",
            "Time to complete an RPC on the server.",
            ["grpc_service", "grpc_method"],
            registry=registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )


class ObservabilityInterceptor(grpc.aio.ServerInterceptor):
    """One log line and metrics per RPC; DomainError -> google.rpc.Status; bugs -> INTERNAL."""

    def __init__(self, error_domain: str, metrics: RpcMetrics) -> None:
        self._domain = error_domain
        self._metrics = metrics
        self._log = get_logger("rpc")

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if method.startswith(OPEN_METHOD_PREFIXES):
            return handler
        request_id = _metadata_value(handler_call_details, REQUEST_ID_HEADER) or uuid.uuid4().hex
        service, _, name = method.lstrip("/").rpartition("/")
        if handler.unary_unary is not None:
            inner_unary = cast(Any, handler.unary_unary)

            async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                start = self._begin(request_id, method)
                code = "OK"
                try:
                    return await inner_unary(request, context)
                except DomainError as error:
                    code = error.kind.value
                    await context.abort_with_status(to_rpc_status(error, self._domain))
                except grpc.aio.AbortError:
                    code = _code_name(context)
                    raise
                except Exception:
                    code = "INTERNAL"
                    self._log.exception("rpc.crashed", method=method)
                    await context.abort_with_status(internal_status(self._domain))
                finally:
                    self._finish(service, name, method, code, start)

            return _with_behaviour(handler, unary, None)
        inner_stream = cast(Any, handler.unary_stream)

        async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            start = self._begin(request_id, method)
            code = "OK"
            try:
                async for item in inner_stream(request, context):
                    yield item
            except DomainError as error:
                code = error.kind.value
                await context.abort_with_status(to_rpc_status(error, self._domain))
            except grpc.aio.AbortError:
                code = _code_name(context)
                raise
            except Exception:
                code = "INTERNAL"
                self._log.exception("rpc.crashed", method=method)
                await context.abort_with_status(internal_status(self._domain))
            finally:
                self._finish(service, name, method, code, start)

        return _with_behaviour(handler, None, stream)

    def _begin(self, request_id: str, method: str) -> float:
        current_request_id.set(request_id)
        structlog.contextvars.bind_contextvars(request_id=request_id, method=method)
        return time.perf_counter()

    def _finish(self, service: str, name: str, method: str, code: str, start: float) -> None:
        elapsed = time.perf_counter() - start
        self._metrics.handled.labels(service, name, code).inc()
        self._metrics.latency.labels(service, name).observe(elapsed)
        self._log.info(
            "rpc.finished",
            code=code,
            caller=current_caller.get().caller_id,
            ms=round(elapsed * 1000, 3),
        )


def _code_name(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"


def outbound_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """Metadata for a call to another Proofline service: our credentials and the request id."""
    items: list[tuple[str, str]] = []
    if token:
        items.append(("authorization", f"Bearer {token}"))
    request_id = current_request_id.get()
    if request_id:
        items.append((REQUEST_ID_HEADER, request_id))
    return tuple(items)
