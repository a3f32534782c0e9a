"""PublisherService over gRPC: a thin adapter over Publisher."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import grpc
from proofline.publisher.v1 import publisher_pb2, publisher_pb2_grpc

from proofline_kit.auth import current_caller
from proofline_kit.rpc.wellknown import duration_seconds
from services.publisher.domain.publisher import Publisher
from services.publisher.rpc import mappers

Context = grpc.aio.ServicerContext[Any, Any]


class PublisherServicer(publisher_pb2_grpc.PublisherServiceServicer):
    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher

    async def RegisterIdentity(
        self, request: publisher_pb2.RegisterIdentityRequest, context: Context
    ) -> publisher_pb2.RegisterIdentityResponse:
        identity = await self._publisher.register_identity(
            current_caller.get(), request.request_id, request.pubkey, request.label, request.owner_ref
        )
        return publisher_pb2.RegisterIdentityResponse(identity=mappers.identity_to_proto(identity))

    async def RevokeIdentity(
        self, request: publisher_pb2.RevokeIdentityRequest, context: Context
    ) -> publisher_pb2.RevokeIdentityResponse:
        identity, cancelled = await self._publisher.revoke_identity(
            current_caller.get(), request.request_id, request.pubkey, request.reason, request.cancel_queued_jobs
        )
        return publisher_pb2.RevokeIdentityResponse(
            identity=mappers.identity_to_proto(identity), cancelled_jobs=cancelled
        )

    async def ListIdentities(
        self, request: publisher_pb2.ListIdentitiesRequest, context: Context
    ) -> publisher_pb2.ListIdentitiesResponse:
        page = await self._publisher.list_identities(
            current_caller.get(),
            mappers.identity_status_from_proto(request.status),
            request.owner_ref,
            request.page_size,
            request.page_token,
        )
        return publisher_pb2.ListIdentitiesResponse(
            identities=[mappers.identity_to_proto(i) for i in page.identities], next_page_token=page.next_page_token
        )

    async def Publish(self, request: publisher_pb2.PublishRequest, context: Context) -> publisher_pb2.PublishResponse:
        job, deduplicated = await self._publisher.publish(
            current_caller.get(),
            request.request_id,
            mappers.intent_from_proto(request.intent),
            mappers.job_status_from_proto(request.wait_for),
            duration_seconds(request.wait_timeout, request.HasField("wait_timeout")),
            context.time_remaining(),
        )
        return publisher_pb2.PublishResponse(job=mappers.job_to_proto(job), deduplicated=deduplicated)

    async def PublishBatch(
        self, request: publisher_pb2.PublishBatchRequest, context: Context
    ) -> publisher_pb2.PublishBatchResponse:
        outcomes = await self._publisher.publish_batch(
            current_caller.get(),
            request.request_id,
            [mappers.intent_from_proto(i) for i in request.intents],
            mappers.job_status_from_proto(request.wait_for),
            duration_seconds(request.wait_timeout, request.HasField("wait_timeout")),
            context.time_remaining(),
        )
        return publisher_pb2.PublishBatchResponse(results=[mappers.result_to_proto(o) for o in outcomes])

    async def GetJob(self, request: publisher_pb2.GetJobRequest, context: Context) -> publisher_pb2.GetJobResponse:
        job = await self._publisher.get_job(current_caller.get(), request.job_id, mappers.full_view(request.view))
        return publisher_pb2.GetJobResponse(job=mappers.job_to_proto(job))

    async def ListJobs(
        self, request: publisher_pb2.ListJobsRequest, context: Context
    ) -> publisher_pb2.ListJobsResponse:
        page = await self._publisher.list_jobs(
            current_caller.get(),
            mappers.job_filter_from_proto(request),
            mappers.full_view(request.view),
            request.page_size,
            request.page_token,
        )
        return publisher_pb2.ListJobsResponse(
            jobs=[mappers.job_to_proto(j) for j in page.jobs], next_page_token=page.next_page_token
        )

    async def WatchJob(
        self, request: publisher_pb2.WatchJobRequest, context: Context
    ) -> AsyncIterator[publisher_pb2.WatchJobResponse]:
        snapshots = self._publisher.watch_job(
            current_caller.get(),
            request.job_id,
            mappers.full_view(request.view),
            mappers.job_status_from_proto(request.until),
        )
        async with aclosing(snapshots):
            async for job in snapshots:
                yield publisher_pb2.WatchJobResponse(job=mappers.job_to_proto(job))
