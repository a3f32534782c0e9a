"""The utxo service over gRPC (proofline.utxo.v1.UtxoService), as the pipeline's PublishPool."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.protobuf.duration_pb2 import Duration
from proofline.common.v1 import common_pb2
from proofline.utxo.v1 import utxo_pb2, utxo_pb2_grpc

from proofline_kit.rpc.interceptors import outbound_metadata
from proofline_kit.rpc.status import from_rpc_error
from proofline_kit.wire import Outpoint
from services.publisher.domain.ports import ConflictKind, ConflictReport, PoolLease, PoolSpend, PoolUtxo

_KINDS = {
    ConflictKind.DOUBLE_SPEND: utxo_pb2.CONFLICT_KIND_DOUBLE_SPEND,
    ConflictKind.MISSING_INPUTS: utxo_pb2.CONFLICT_KIND_MISSING_INPUTS,
    ConflictKind.REJECTED: utxo_pb2.CONFLICT_KIND_REJECTED,
}
UNAVAILABLE_REASON = "POOL_UNAVAILABLE"


def _outpoint(outpoint: Outpoint) -> common_pb2.Outpoint:
    return common_pb2.Outpoint(txid=outpoint.txid, vout=outpoint.vout)


class UtxoPoolClient:
    def __init__(self, channel: grpc.aio.Channel, token: str | None, timeout_s: float) -> None:
        self._stub = utxo_pb2_grpc.UtxoServiceStub(channel)
        self._token = token
        self._timeout_s = timeout_s

    async def lease(
        self, request_id: str, count: int, min_satoshis: int, owner_key_id: str, lease_s: float, holder: str
    ) -> PoolLease:
        duration = Duration()
        duration.FromMilliseconds(int(lease_s * 1000))
        try:
            response = await self._stub.LeaseUtxos(
                utxo_pb2.LeaseUtxosRequest(
                    request_id=request_id,
                    owner_key_id=owner_key_id,
                    purpose=utxo_pb2.UTXO_PURPOSE_PUBLISH,
                    count=count,
                    strategy=utxo_pb2.LEASE_STRATEGY_SMALLEST_FIRST,
                    lease_duration=duration,
                    allow_partial=True,
                    min_satoshis=min_satoshis,
                    holder=holder[:128],
                ),
                metadata=outbound_metadata(self._token),
                timeout=self._timeout_s,
            )
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, "utxo", UNAVAILABLE_REASON) from None
        lease = response.lease
        return PoolLease(
            lease.lease_id,
            lease.fencing_token,
            tuple(
                PoolUtxo(
                    Outpoint(u.outpoint.txid, u.outpoint.vout), u.satoshis, bytes(u.locking_script), u.owner_key_id
                )
                for u in lease.utxos
            ),
        )

    async def commit(
        self, request_id: str, lease_id: str, fencing_token: int, spends: Sequence[PoolSpend], release_unspent: bool
    ) -> None:
        request = utxo_pb2.CommitSpendRequest(
            request_id=request_id, lease_id=lease_id, fencing_token=fencing_token, release_unspent=release_unspent
        )
        for spend in spends:
            item = request.spends.add(txid=spend.txid)
            item.inputs.append(_outpoint(spend.funding))
            if spend.change is not None:
                item.outputs.add(
                    vout=spend.change.vout,
                    satoshis=spend.change.satoshis,
                    locking_script=spend.change.locking_script,
                    owner_key_id=spend.change.owner_key_id,
                    purpose=utxo_pb2.UTXO_PURPOSE_PUBLISH,
                )
        try:
            await self._stub.CommitSpend(request, metadata=outbound_metadata(self._token), timeout=self._timeout_s)
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, "utxo", UNAVAILABLE_REASON) from None

    async def release(self, request_id: str, lease_id: str, outpoints: Sequence[Outpoint]) -> None:
        try:
            await self._stub.ReleaseLease(
                utxo_pb2.ReleaseLeaseRequest(
                    request_id=request_id, lease_id=lease_id, outpoints=[_outpoint(o) for o in outpoints]
                ),
                metadata=outbound_metadata(self._token),
                timeout=self._timeout_s,
            )
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, "utxo", UNAVAILABLE_REASON) from None

    async def report(self, request_id: str, report: ConflictReport) -> None:
        try:
            await self._stub.ReportConflict(
                utxo_pb2.ReportConflictRequest(
                    request_id=request_id,
                    lease_id=report.lease_id,
                    fencing_token=report.fencing_token,
                    outpoints=[_outpoint(report.funding)],
                    kind=_KINDS[report.kind],
                    spending_txid=report.spending_txid,
                    competing_txids=list(report.competing_txids),
                    detail=report.detail[:1024],
                ),
                metadata=outbound_metadata(self._token),
                timeout=self._timeout_s,
            )
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, "utxo", UNAVAILABLE_REASON) from None
