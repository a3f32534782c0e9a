"""gRPC errors of other Proofline services → DomainError, keeping their stable reason."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from proofline_kit.errors import DomainError, ErrorKind

_TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)


def domain_error(error: grpc.aio.AioRpcError, service: str, unavailable_reason: str) -> DomainError:
    """Unreachable or too slow: UNAVAILABLE with `unavailable_reason`. Anything else keeps the
    service's code, reason and metadata."""
    code = error.code()
    if code in _TRANSIENT:
        return DomainError(
            ErrorKind.UNAVAILABLE, unavailable_reason, f"{service}: {code.name}: {error.details()}", retry_after_ms=1000
        )
    reason, metadata = code.name, {}
    status = rpc_status.from_call(error)
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            reason, metadata = info.reason, dict(info.metadata)
    kind = ErrorKind.__members__.get(code.name, ErrorKind.INTERNAL)
    return DomainError(kind, reason, f"{service}: {error.details()}", metadata=metadata)
