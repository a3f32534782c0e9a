"""Mapping of domain errors to the gRPC rich error model (google.rpc.Status)."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from proofline.common.v1 import common_pb2

from proofline_kit.errors import DomainError, ErrorKind, FieldViolation

_CODES: dict[ErrorKind, int] = {
    ErrorKind.INVALID_ARGUMENT: code_pb2.INVALID_ARGUMENT,
    ErrorKind.NOT_FOUND: code_pb2.NOT_FOUND,
    ErrorKind.ALREADY_EXISTS: code_pb2.ALREADY_EXISTS,
    ErrorKind.FAILED_PRECONDITION: code_pb2.FAILED_PRECONDITION,
    ErrorKind.PERMISSION_DENIED: code_pb2.PERMISSION_DENIED,
    ErrorKind.UNAUTHENTICATED: code_pb2.UNAUTHENTICATED,
    ErrorKind.RESOURCE_EXHAUSTED: code_pb2.RESOURCE_EXHAUSTED,
    ErrorKind.ABORTED: code_pb2.ABORTED,
    ErrorKind.UNAVAILABLE: code_pb2.UNAVAILABLE,
    ErrorKind.DEADLINE_EXCEEDED: code_pb2.DEADLINE_EXCEEDED,
    ErrorKind.INTERNAL: code_pb2.INTERNAL,
}


# What an error may repeat, so that no request can make its error large: gRPC clients refuse
# trailers above their metadata limit (8 KiB by default), and then see RESOURCE_EXHAUSTED instead.
# Limits are UTF-8 bytes; the worst case of all of them together is about 3 KiB.
MAX_MESSAGE_BYTES = 256
MAX_FIELD_BYTES = 128
MAX_DESCRIPTION_BYTES = 160
MAX_METADATA_ENTRIES = 8
MAX_METADATA_KEY_BYTES = 32
MAX_METADATA_VALUE_BYTES = 128  # a whole key id
MAX_FIELD_VIOLATIONS = 5


def _bounded(text: str, limit: int) -> str:
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[: limit - 3].decode(errors="ignore") + "…"


def _message(error: DomainError) -> str:
    return _bounded(f"{error.reason}: {error.message}", MAX_MESSAGE_BYTES)


def _metadata(error: DomainError) -> dict[str, str]:
    items = list(error.metadata.items())[:MAX_METADATA_ENTRIES]
    bounded = {_bounded(k, MAX_METADATA_KEY_BYTES): _bounded(str(v), MAX_METADATA_VALUE_BYTES) for k, v in items}
    omitted = len(error.field_violations) - MAX_FIELD_VIOLATIONS
    if omitted > 0:
        bounded["violationsOmitted"] = str(omitted)
    return bounded


def _violations(error: DomainError) -> list[tuple[str, str, str]]:
    return [
        (_bounded(v.field, MAX_FIELD_BYTES), _bounded(v.description, MAX_DESCRIPTION_BYTES), v.reason or error.reason)
        for v in error.field_violations[:MAX_FIELD_VIOLATIONS]
    ]


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def to_rpc_status(error: DomainError, domain: str) -> grpc.Status:
    """Build the status: exactly one ErrorInfo, plus BadRequest and RetryInfo when they apply.
    `domain` is the answering service's; an error passed through from another service keeps its own."""
    details = [
        _pack(
            error_details_pb2.ErrorInfo(
                reason=error.reason,
                domain=error.domain or domain,
                metadata=_metadata(error),
            )
        )
    ]
    if error.field_violations:
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(field=field, description=description, reason=reason)
                        for field, description, reason in _violations(error)
                    ]
                )
            )
        )
    if error.retry_after_ms is not None:
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(error.retry_after_ms)
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    status = status_pb2.Status(code=_CODES[error.kind], message=_message(error), details=details)
    converted: grpc.Status = rpc_status.to_status(status)
    return converted


def to_item_error(error: DomainError, domain: str) -> common_pb2.ItemError:
    """One failed item of a batch answer: what `to_rpc_status` would say, in typed fields."""
    return common_pb2.ItemError(
        code=_CODES[error.kind],
        reason=error.reason,
        domain=error.domain or domain,
        message=_message(error),
        metadata=_metadata(error),
        field_violations=[
            common_pb2.FieldViolation(field=field, description=description, reason=reason)
            for field, description, reason in _violations(error)
        ],
    )


def from_item_error(item: common_pb2.ItemError) -> DomainError:
    """The client side of `to_item_error`: the item's code, reason, metadata and field violations."""
    kind = next((k for k, code in _CODES.items() if code == item.code), ErrorKind.INTERNAL)
    return DomainError(
        kind,
        item.reason or kind.value,
        item.message,
        metadata=dict(item.metadata),
        field_violations=tuple(FieldViolation(v.field, v.description, v.reason) for v in item.field_violations),
        domain=item.domain or None,
    )


_TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)


def from_rpc_error(error: grpc.aio.AioRpcError, service: str, unavailable_reason: str) -> DomainError:
    """The client side of `to_rpc_status`, for a call to another Proofline service. Unreachable or too
    slow: UNAVAILABLE with `unavailable_reason` (ours). Anything else keeps the service's code, reason,
    metadata and domain, so it reaches our callers as the service said it."""
    code = error.code()
    if code in _TRANSIENT:
        return DomainError(
            ErrorKind.UNAVAILABLE, unavailable_reason, f"{service}: {code.name}: {error.details()}", retry_after_ms=1000
        )
    reason, metadata, domain = code.name, {}, None
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            reason, metadata, domain = info.reason, dict(info.metadata), info.domain or None
    kind = ErrorKind.__members__.get(code.name, ErrorKind.INTERNAL)
    return DomainError(kind, reason, f"{service}: {error.details()}", metadata=metadata, domain=domain)


def internal_status(domain: str, request_id: str) -> grpc.Status:
    """What a caller sees for a bug: no exception text, only the request id that finds the log line."""
    return to_rpc_status(
        DomainError(
            ErrorKind.INTERNAL,
            "INTERNAL_ERROR",
            f"internal error; request id {request_id}",
            metadata={"requestId": request_id},
        ),
        domain,
    )


def error_reason(error: grpc.aio.AioRpcError | grpc.RpcError) -> str | None:
    """The ErrorInfo reason carried by a failed call (client side), if any."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    return None
