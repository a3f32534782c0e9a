"""UtxoService over gRPC: a thin adapter over UtxoPool."""

from __future__ import annotations

from typing import Any

import grpc
from proofline.utxo.v1 import utxo_pb2, utxo_pb2_grpc

from proofline_kit.auth import current_caller
from services.utxo.domain.pool import UtxoPool
from services.utxo.rpc import mappers

Context = grpc.aio.ServicerContext[Any, Any]


class UtxoServicer(utxo_pb2_grpc.UtxoServiceServicer):
    def __init__(self, pool: UtxoPool) -> None:
        self._pool = pool

    async def LeaseUtxos(self, request: utxo_pb2.LeaseUtxosRequest, context: Context) -> utxo_pb2.LeaseUtxosResponse:
        lease = await self._pool.lease(
            current_caller.get(), request.request_id, mappers.lease_request_from_proto(request)
        )
        return utxo_pb2.LeaseUtxosResponse(lease=mappers.lease_to_proto(lease))

    async def RenewLease(self, request: utxo_pb2.RenewLeaseRequest, context: Context) -> utxo_pb2.RenewLeaseResponse:
        lease = await self._pool.renew(
            current_caller.get(),
            request.request_id,
            request.lease_id,
            request.fencing_token,
            mappers.duration_from_proto(request.lease_duration, request.HasField("lease_duration")),
        )
        return utxo_pb2.RenewLeaseResponse(lease=mappers.lease_to_proto(lease))

    async def ReleaseLease(
        self, request: utxo_pb2.ReleaseLeaseRequest, context: Context
    ) -> utxo_pb2.ReleaseLeaseResponse:
        result = await self._pool.release(
            current_caller.get(),
            request.request_id,
            request.lease_id,
            [mappers.outpoint_from_proto(o) for o in request.outpoints],
        )
        return mappers.release_to_proto(result)

    async def CommitSpend(self, request: utxo_pb2.CommitSpendRequest, context: Context) -> utxo_pb2.CommitSpendResponse:
        result = await self._pool.commit(
            current_caller.get(),
            request.request_id,
            request.lease_id,
            request.fencing_token,
            mappers.spends_from_proto(list(request.spends)),
            request.release_unspent,
        )
        return mappers.commit_to_proto(result)

    async def ReportConflict(
        self, request: utxo_pb2.ReportConflictRequest, context: Context
    ) -> utxo_pb2.ReportConflictResponse:
        result = await self._pool.report_conflict(
            current_caller.get(), request.request_id, mappers.conflict_report_from_proto(request)
        )
        return mappers.conflict_to_proto(result)

    async def ReportAccepted(
        self, request: utxo_pb2.ReportAcceptedRequest, context: Context
    ) -> utxo_pb2.ReportAcceptedResponse:
        result = await self._pool.report_accepted(current_caller.get(), request.request_id, list(request.txids))
        return mappers.accepted_to_proto(result)

    async def AddOutputs(self, request: utxo_pb2.AddOutputsRequest, context: Context) -> utxo_pb2.AddOutputsResponse:
        utxos = await self._pool.add_outputs(
            current_caller.get(), request.request_id, mappers.new_outputs_from_proto(list(request.outputs))
        )
        return utxo_pb2.AddOutputsResponse(utxos=[mappers.utxo_to_proto(u) for u in utxos])

    async def ListUtxos(self, request: utxo_pb2.ListUtxosRequest, context: Context) -> utxo_pb2.ListUtxosResponse:
        page = await self._pool.list_utxos(
            current_caller.get(), mappers.filter_from_proto(request), request.page_size, request.page_token
        )
        return utxo_pb2.ListUtxosResponse(
            utxos=[mappers.utxo_to_proto(u) for u in page.utxos], next_page_token=page.next_page_token
        )

    async def GetPoolHealth(
        self, request: utxo_pb2.GetPoolHealthRequest, context: Context
    ) -> utxo_pb2.GetPoolHealthResponse:
        health = await self._pool.health(
            current_caller.get(),
            request.owner_key_id,
            mappers.optional_purpose_from_proto(request.purpose),
            request.compare_with_chain,
        )
        return mappers.health_to_proto(health)
