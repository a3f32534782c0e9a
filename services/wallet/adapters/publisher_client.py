"""The publisher over gRPC (PublisherService), with the wallet's token (roles `registrar` and
`publish`). Its refusals keep their code, reason and domain (`from_rpc_error`); a publisher that
cannot be reached, or does not answer in time, is UNAVAILABLE, PUBLISHER_UNAVAILABLE. Jobs and
batch results come back as the publisher's own messages, wrapped, not converted."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence

import grpc
from google.protobuf.duration_pb2 import Duration
from proofline.publisher.v1 import publisher_pb2, publisher_pb2_grpc

from proofline_kit.intents.models import SignedIntent
from proofline_kit.rpc.interceptors import outbound_metadata
from proofline_kit.rpc.status import from_rpc_error
from proofline_kit.rpc.wellknown import datetime_of
from services.wallet.domain.models import ForwardedJob, ForwardedResult, Identity, IdentityStatus, Page

UNAVAILABLE_REASON = "PUBLISHER_UNAVAILABLE"
# The publisher's own default and ceiling of a wait (publisher.proto, PublishRequest.wait_timeout).
_DEFAULT_WAIT_S = 30.0
_STATUSES_IN = {
    publisher_pb2.IDENTITY_STATUS_ACTIVE: IdentityStatus.ACTIVE,
    publisher_pb2.IDENTITY_STATUS_REVOKED: IdentityStatus.REVOKED,
}
_STATUSES_OUT = {v: k for k, v in _STATUSES_IN.items()}


def identity_from_proto(identity: publisher_pb2.Identity) -> Identity:
    return Identity(
        pubkey=bytes(identity.pubkey),
        label=identity.label,
        owner_ref=identity.owner_ref,
        status=_STATUSES_IN.get(identity.status, IdentityStatus.ACTIVE),
        registered_by=identity.registered_by,
        created_at=datetime_of(identity.create_time, identity.HasField("create_time")),
        revoked_at=datetime_of(identity.revoke_time, identity.HasField("revoke_time")),
        revoke_reason=identity.revoke_reason,
    )


def _job(job: publisher_pb2.Job) -> ForwardedJob:
    return ForwardedJob(job.job_id, job.identity_pubkey, job)


def _result(result: publisher_pb2.PublishResult) -> ForwardedResult:
    if result.HasField("job"):
        return ForwardedResult(_job(result.job), result.deduplicated, "", result)
    return ForwardedResult(None, False, result.error.reason, result)


def _intent(intent: SignedIntent) -> publisher_pb2.SignedIntent:
    return publisher_pb2.SignedIntent(
        signed_payload=intent.signed_payload, signature=intent.signature, pubkey=intent.pubkey
    )


def _duration(seconds: float | None) -> Duration | None:
    if seconds is None:
        return None
    duration = Duration()
    duration.FromNanoseconds(int(seconds * 1e9))
    return duration


class PublisherClient:
    def __init__(self, channel: grpc.aio.Channel, token: str | None, timeout_s: float) -> None:
        self._stub = publisher_pb2_grpc.PublisherServiceStub(channel)
        self._token = token
        self._timeout_s = timeout_s

    async def _call(self, method: object, request: object, timeout_s: float | None = None) -> object:
        try:
            return await method(  # type: ignore[operator]
                request, metadata=outbound_metadata(self._token), timeout=timeout_s or self._timeout_s
            )
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, "publisher", UNAVAILABLE_REASON) from None

    def _wait_timeout(self, wait_for: int, wait_timeout_s: float | None, deadline_left_s: float | None) -> float:
        """The caller's deadline when it set one (the publisher ends its wait shortly before it),
        else long enough for the wait the request asks for."""
        if deadline_left_s is not None:
            return max(deadline_left_s, 0.001)
        if wait_for in (publisher_pb2.JOB_STATUS_UNSPECIFIED, publisher_pb2.JOB_STATUS_QUEUED):
            return self._timeout_s
        return self._timeout_s + (wait_timeout_s or _DEFAULT_WAIT_S)

    async def register_identity(self, request_id: str, pubkey: bytes, label: str, owner_ref: str) -> Identity:
        response = await self._call(
            self._stub.RegisterIdentity,
            publisher_pb2.RegisterIdentityRequest(
                request_id=request_id, pubkey=pubkey, label=label, owner_ref=owner_ref
            ),
        )
        assert isinstance(response, publisher_pb2.RegisterIdentityResponse)
        return identity_from_proto(response.identity)

    async def revoke_identity(
        self, request_id: str, pubkey: bytes, reason: str, cancel_queued_jobs: bool
    ) -> tuple[Identity, int]:
        response = await self._call(
            self._stub.RevokeIdentity,
            publisher_pb2.RevokeIdentityRequest(
                request_id=request_id, pubkey=pubkey, reason=reason, cancel_queued_jobs=cancel_queued_jobs
            ),
        )
        assert isinstance(response, publisher_pb2.RevokeIdentityResponse)
        return identity_from_proto(response.identity), response.cancelled_jobs

    async def list_identities(
        self, status: IdentityStatus | None, owner_ref: str, page_size: int, page_token: str
    ) -> Page[Identity]:
        response = await self._call(
            self._stub.ListIdentities,
            publisher_pb2.ListIdentitiesRequest(
                status=_STATUSES_OUT[status] if status else publisher_pb2.IDENTITY_STATUS_UNSPECIFIED,
                owner_ref=owner_ref,
                page_size=page_size,
                page_token=page_token,
            ),
        )
        assert isinstance(response, publisher_pb2.ListIdentitiesResponse)
        return Page([identity_from_proto(i) for i in response.identities], response.next_page_token)

    async def publish(
        self,
        request_id: str,
        intent: SignedIntent,
        wait_for: int,
        wait_timeout_s: float | None,
        deadline_left_s: float | None,
    ) -> tuple[ForwardedJob, bool]:
        response = await self._call(
            self._stub.Publish,
            publisher_pb2.PublishRequest(
                request_id=request_id,
                intent=_intent(intent),
                wait_for=wait_for,  # type: ignore[arg-type]
                wait_timeout=_duration(wait_timeout_s),
            ),
            self._wait_timeout(wait_for, wait_timeout_s, deadline_left_s),
        )
        assert isinstance(response, publisher_pb2.PublishResponse)
        return _job(response.job), response.deduplicated

    async def publish_batch(
        self,
        request_id: str,
        intents: Sequence[SignedIntent],
        wait_for: int,
        wait_timeout_s: float | None,
        deadline_left_s: float | None,
    ) -> list[ForwardedResult]:
        response = await self._call(
            self._stub.PublishBatch,
            publisher_pb2.PublishBatchRequest(
                request_id=request_id,
                intents=[_intent(i) for i in intents],
                wait_for=wait_for,  # type: ignore[arg-type]
                wait_timeout=_duration(wait_timeout_s),
            ),
            self._wait_timeout(wait_for, wait_timeout_s, deadline_left_s),
        )
        assert isinstance(response, publisher_pb2.PublishBatchResponse)
        return [_result(r) for r in response.results]

    async def get_job(self, job_id: str, full: bool) -> ForwardedJob:
        response = await self._call(
            self._stub.GetJob,
            publisher_pb2.GetJobRequest(
                job_id=job_id, view=publisher_pb2.JOB_VIEW_FULL if full else publisher_pb2.JOB_VIEW_BASIC
            ),
        )
        assert isinstance(response, publisher_pb2.GetJobResponse)
        return _job(response.job)

    async def watch_job(self, job_id: str, full: bool, until: int) -> AsyncGenerator[ForwardedJob, None]:
        """No deadline of our own: the stream lasts as long as the caller's (cancelled with it)."""
        call = self._stub.WatchJob(
            publisher_pb2.WatchJobRequest(
                job_id=job_id,
                view=publisher_pb2.JOB_VIEW_FULL if full else publisher_pb2.JOB_VIEW_BASIC,
                until=until,  # type: ignore[arg-type]
            ),
            metadata=outbound_metadata(self._token),
        )
        try:
            async for response in call:
                yield _job(response.job)
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, "publisher", UNAVAILABLE_REASON) from None
        finally:
            call.cancel()
