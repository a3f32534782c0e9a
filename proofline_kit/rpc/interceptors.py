"""Server interceptors: authentication, and one wrapping interceptor for request ids, logs,
metrics, the contract checks of every request and the mapping of errors to rich statuses.

Every answer that is not OK carries an ErrorInfo with a stable reason: UNAUTHENTICATED
(TOKEN_MISSING / TOKEN_INVALID), bytes that do not decode (REQUEST_MALFORMED), a field that breaks
the contract rules (`<FIELD>_INVALID`), a domain error (its own reason), and a bug
(INTERNAL_ERROR with the request id, counted in `grpc_server_internal_errors_total`).

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
from google.protobuf.message import DecodeError, Message
from prometheus_client import CollectorRegistry, Counter, Histogram

from proofline_kit.auth import SessionVerifier, TokenDirectory, current_caller
from proofline_kit.contract_rules import ContractRules
from proofline_kit.errors import DomainError, ErrorKind
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
    handler: grpc.RpcMethodHandler[Any, Any], unary: Any, stream: Any, deserializer: Any
) -> grpc.RpcMethodHandler[Any, Any]:
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(unary, deserializer, handler.response_serializer)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(stream, deserializer, handler.response_serializer)
    raise NotImplementedError("client-streaming methods are not used by Proofline")


class _Undecodable:
    """Stands in for a request whose bytes did not decode, so the handler can answer with a reason:
    a deserializer that raises makes grpcio answer UNKNOWN with the exception's class."""


UNDECODABLE = _Undecodable()


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        if deserializer is None:
            return data
        try:
            return deserializer(data)
        except DecodeError:
            return UNDECODABLE

    return deserialize


def _ignore_request(data: bytes) -> None:
    return None


def _malformed(method: str) -> DomainError:
    return DomainError(ErrorKind.INVALID_ARGUMENT, "REQUEST_MALFORMED", f"the request bytes are not a {method} request")


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Maps `authorization: Bearer <token>` to a Caller; health and reflection stay open. A call
    without a caller is refused before its request is even decoded. A token the directory does not
    know goes to the service's session verifier, when it has one."""

    def __init__(
        self, directory: TokenDirectory, error_domain: str, session_verifier: SessionVerifier | None = None
    ) -> None:
        self._directory = directory
        self._verify_session = session_verifier
        self._error_domain = error_domain
        self._missing = to_rpc_status(
            DomainError(ErrorKind.UNAUTHENTICATED, "TOKEN_MISSING", "send authorization: Bearer <token>"), error_domain
        )
        self._invalid = to_rpc_status(
            DomainError(ErrorKind.UNAUTHENTICATED, "TOKEN_INVALID", "the bearer token is not known"), error_domain
        )

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(OPEN_METHOD_PREFIXES):
            return handler
        token = _bearer_token(handler_call_details)
        caller = self._directory.authenticate(token) if token else None
        if caller is None and token and self._verify_session is not None:
            try:
                caller = await self._verify_session(token)
            except DomainError as error:
                return self._deny(handler, to_rpc_status(error, self._error_domain))
            except Exception:
                # A bug (or an unreachable store) in the verifier: INTERNAL_ERROR, never the token.
                request_id = _metadata_value(handler_call_details, REQUEST_ID_HEADER) or uuid.uuid4().hex
                get_logger("rpc").exception(
                    "auth.session_verifier_failed", method=handler_call_details.method, request_id=request_id
                )
                return self._deny(handler, internal_status(self._error_domain, request_id))
        if caller is None:
            return self._deny(handler, self._invalid if token else self._missing)
        current_caller.set(caller)
        return handler

    @staticmethod
    def _deny(handler: grpc.RpcMethodHandler[Any, Any], status: grpc.Status) -> grpc.RpcMethodHandler[Any, Any]:
        async def deny_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await context.abort_with_status(status)

        async def deny_stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            await context.abort_with_status(status)
            yield None  # pragma: no cover - abort raises

        return _with_behaviour(handler, deny_unary, deny_stream, _ignore_request)


def _bearer_token(details: grpc.HandlerCallDetails) -> str:
    """The presented bearer token, or "" when the header is absent or not a bearer credential."""
    scheme, _, token = (_metadata_value(details, "authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


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
        self.internal_errors = Counter(
            "grpc_server_internal_errors_total",
            "RPCs that failed with an unexpected exception (answered INTERNAL_ERROR), by method.",
            ["grpc_service", "grpc_method"],
            registry=registry,
        )


class ObservabilityInterceptor(grpc.aio.ServerInterceptor):
    """One log line and metrics per RPC; undecodable bytes and contract violations are refused
    before the servicer runs; DomainError -> google.rpc.Status; bugs -> INTERNAL_ERROR."""

    def __init__(self, error_domain: str, metrics: RpcMetrics, rules: ContractRules) -> None:
        self._domain = error_domain
        self._metrics = metrics
        self._rules = rules
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
        deserializer = _tolerant(handler.request_deserializer)
        check = self._rules.check

        def admit(request: Any) -> None:
            if request is UNDECODABLE:
                raise _malformed(name)
            if isinstance(request, Message):  # a generic handler without a deserializer gets bytes
                check(request)

        async def fail(error: Exception, context: grpc.aio.ServicerContext[Any, Any]) -> None:
            """Answer the error being handled as a rich status (called inside its except block)."""
            if isinstance(error, DomainError):
                await context.abort_with_status(to_rpc_status(error, self._domain))
            self._log.exception("rpc.crashed", method=method)
            self._metrics.internal_errors.labels(service, name).inc()
            await context.abort_with_status(internal_status(self._domain, request_id))

        if handler.unary_unary is not None:
            inner_unary = cast(Any, handler.unary_unary)

            async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                start = self._begin(request_id, method)
                code = "OK"
                try:
                    admit(request)
                    return await inner_unary(request, context)
                except grpc.aio.AbortError:
                    code = _code_name(context)
                    raise
                except Exception as error:
                    code = error.kind.value if isinstance(error, DomainError) else "INTERNAL"
                    await fail(error, context)
                finally:
                    self._finish(service, name, method, code, start)

            return _with_behaviour(handler, unary, None, deserializer)
        inner_stream = cast(Any, handler.unary_stream)

        async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            start = self._begin(request_id, method)
            code = "OK"
            try:
                admit(request)
                async for item in inner_stream(request, context):
                    yield item
            except grpc.aio.AbortError:
                code = _code_name(context)
                raise
            except Exception as error:
                code = error.kind.value if isinstance(error, DomainError) else "INTERNAL"
                await fail(error, context)
            finally:
                self._finish(service, name, method, code, start)

        return _with_behaviour(handler, None, stream, deserializer)

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
