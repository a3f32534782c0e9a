"""UtxoAdminService over gRPC: a thin adapter over PoolMaintenance."""

from __future__ import annotations

from typing import Any

import grpc
from proofline.utxo.v1 import utxo_pb2, utxo_pb2_grpc

from proofline_kit.auth import current_caller
from services.utxo.domain.maintenance import PoolMaintenance
from services.utxo.rpc import mappers

Context = grpc.aio.ServicerContext[Any, Any]


class UtxoAdminServicer(utxo_pb2_grpc.UtxoAdminServiceServicer):
    def __init__(self, maintenance: PoolMaintenance) -> None:
        self._maintenance = maintenance

    async def SyncFromChain(
        self, request: utxo_pb2.SyncFromChainRequest, context: Context
    ) -> utxo_pb2.SyncFromChainResponse:
        result = await self._maintenance.sync(
            current_caller.get(), request.request_id, request.dry_run, list(request.owner_key_ids)
        )
        return utxo_pb2.SyncFromChainResponse(result=mappers.result_to_proto(result))

    async def Split(self, request: utxo_pb2.SplitRequest, context: Context) -> utxo_pb2.SplitResponse:
        result = await self._maintenance.split(
            current_caller.get(), request.request_id, request.dry_run, mappers.split_from_proto(request)
        )
        return utxo_pb2.SplitResponse(result=mappers.result_to_proto(result))

    async def Sweep(self, request: utxo_pb2.SweepRequest, context: Context) -> utxo_pb2.SweepResponse:
        result = await self._maintenance.sweep(
            current_caller.get(), request.request_id, request.dry_run, mappers.sweep_from_proto(request)
        )
        return utxo_pb2.SweepResponse(result=mappers.result_to_proto(result))

    async def RunMaintenance(
        self, request: utxo_pb2.RunMaintenanceRequest, context: Context
    ) -> utxo_pb2.RunMaintenanceResponse:
        results = await self._maintenance.run(
            current_caller.get(), request.request_id, mappers.action_from_proto(request.action), request.dry_run
        )
        return utxo_pb2.RunMaintenanceResponse(results=[mappers.result_to_proto(r) for r in results])
