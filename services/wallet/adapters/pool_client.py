"""The wallet's utxo pool over gRPC: WALLET coins, leased by exact outpoint after the wallet's own
coin selection; CommitSpend, ReportAccepted, ReportConflict, AddOutputs; SyncFromChain for the keys
it credits."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence

import grpc
from google.protobuf.duration_pb2 import Duration
from proofline.common.v1 import common_pb2
from proofline.utxo.v1 import utxo_pb2, utxo_pb2_grpc

from proofline_kit.errors import DomainError
from proofline_kit.logging import get_logger
from proofline_kit.rpc.interceptors import outbound_metadata
from proofline_kit.rpc.status import from_rpc_error
from proofline_kit.wire import Outpoint
from services.wallet.domain.ports import PoolLease, PoolSpend, WalletCoin

UNAVAILABLE_REASON = "POOL_UNAVAILABLE"
_SYNC_ATTEMPTS = 5
_HELD = [
    utxo_pb2.UTXO_STATUS_UNCONFIRMED,
    utxo_pb2.UTXO_STATUS_AVAILABLE,
    utxo_pb2.UTXO_STATUS_RESERVED,
    utxo_pb2.UTXO_STATUS_DIRTY,
]


def _outpoint(outpoint: Outpoint) -> common_pb2.Outpoint:
    return common_pb2.Outpoint(txid=outpoint.txid, vout=outpoint.vout)


def _coin(u: utxo_pb2.Utxo) -> WalletCoin:
    return WalletCoin(
        Outpoint(u.outpoint.txid, u.outpoint.vout),
        u.satoshis,
        bytes(u.locking_script),
        u.owner_key_id,
        u.unconfirmed_depth,
    )


class PoolClient:
    def __init__(self, channel: grpc.aio.Channel, token: str | None, timeout_s: float) -> None:
        self._stub = utxo_pb2_grpc.UtxoServiceStub(channel)
        self._admin = utxo_pb2_grpc.UtxoAdminServiceStub(channel)
        self._token = token
        self._timeout_s = timeout_s
        self._log = get_logger("wallet.pool")

    async def _call(self, method: object, request: object) -> object:
        try:
            return await method(request, metadata=outbound_metadata(self._token), timeout=self._timeout_s)  # type: ignore[operator]
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, "utxo", UNAVAILABLE_REASON) from None

    async def _list(self, statuses: list[utxo_pb2.UtxoStatus.ValueType], limit: int | None) -> list[utxo_pb2.Utxo]:
        found: list[utxo_pb2.Utxo] = []
        token = ""
        while True:
            response = await self._call(
                self._stub.ListUtxos,
                utxo_pb2.ListUtxosRequest(
                    purpose=utxo_pb2.UTXO_PURPOSE_WALLET, statuses=statuses, page_size=1000, page_token=token
                ),
            )
            assert isinstance(response, utxo_pb2.ListUtxosResponse)
            found.extend(response.utxos)
            token = response.next_page_token
            if not token or (limit is not None and len(found) >= limit):
                return found[:limit] if limit is not None else found

    async def available_coins(self, limit: int) -> list[WalletCoin]:
        return [_coin(u) for u in await self._list([utxo_pb2.UTXO_STATUS_AVAILABLE], limit)]

    async def coin_states(self, coins: Sequence[Outpoint]) -> dict[Outpoint, tuple[str, str]]:
        wanted = set(coins)
        found: dict[Outpoint, tuple[str, str]] = {}
        for txid in sorted({c.txid for c in coins}):
            response = await self._call(self._stub.ListUtxos, utxo_pb2.ListUtxosRequest(txid=txid, page_size=1000))
            assert isinstance(response, utxo_pb2.ListUtxosResponse)
            for u in response.utxos:
                outpoint = Outpoint(u.outpoint.txid, u.outpoint.vout)
                if outpoint in wanted:
                    found[outpoint] = (utxo_pb2.UtxoStatus.Name(u.status).removeprefix("UTXO_STATUS_"), u.spent_by_txid)
        return found

    async def held_value(self) -> dict[Outpoint, int]:
        return {Outpoint(u.outpoint.txid, u.outpoint.vout): u.satoshis for u in await self._list(_HELD, None)}

    async def lease_outpoints(
        self, request_id: str, outpoints: Sequence[Outpoint], lease_s: float, holder: str, max_depth: int
    ) -> PoolLease:
        duration = Duration()
        duration.FromMilliseconds(int(lease_s * 1000))
        response = await self._call(
            self._stub.LeaseUtxos,
            utxo_pb2.LeaseUtxosRequest(
                request_id=request_id,
                purpose=utxo_pb2.UTXO_PURPOSE_WALLET,
                outpoints=utxo_pb2.OutpointList(outpoints=[_outpoint(o) for o in outpoints]),
                lease_duration=duration,
                holder=holder[:128],
                max_unconfirmed_depth=max_depth,
            ),
        )
        assert isinstance(response, utxo_pb2.LeaseUtxosResponse)
        lease = response.lease
        return PoolLease(lease.lease_id, lease.fencing_token, tuple(_coin(u) for u in lease.utxos))

    async def commit(
        self, request_id: str, lease: PoolLease, spends: Sequence[PoolSpend], *, release_unspent: bool
    ) -> None:
        request = utxo_pb2.CommitSpendRequest(
            request_id=request_id,
            lease_id=lease.lease_id,
            fencing_token=lease.fencing_token,
            release_unspent=release_unspent,
        )
        for spend in spends:
            item = request.spends.add(txid=spend.txid, inputs=[_outpoint(o) for o in spend.inputs])
            if spend.change is not None:
                item.outputs.add(
                    vout=spend.change.outpoint.vout,
                    satoshis=spend.change.satoshis,
                    locking_script=spend.change.locking_script,
                    owner_key_id=spend.change.key_id,
                    purpose=utxo_pb2.UTXO_PURPOSE_WALLET,
                )
        await self._call(self._stub.CommitSpend, request)

    async def release(self, request_id: str, lease_id: str, outpoints: Sequence[Outpoint] = ()) -> None:
        await self._call(
            self._stub.ReleaseLease,
            utxo_pb2.ReleaseLeaseRequest(
                request_id=request_id, lease_id=lease_id, outpoints=[_outpoint(o) for o in outpoints]
            ),
        )

    async def report_dead(
        self,
        request_id: str,
        txid: str,
        inputs: Sequence[Outpoint],
        double_spend: bool,
        competing: Sequence[str],
        detail: str,
    ) -> list[str]:
        if not inputs:
            return []
        response = await self._call(
            self._stub.ReportConflict,
            utxo_pb2.ReportConflictRequest(
                request_id=request_id,
                outpoints=[_outpoint(o) for o in inputs],
                kind=utxo_pb2.CONFLICT_KIND_DOUBLE_SPEND if double_spend else utxo_pb2.CONFLICT_KIND_REJECTED,
                spending_txid=txid,
                competing_txids=list(competing),
                detail=detail[:1024],
            ),
        )
        assert isinstance(response, utxo_pb2.ReportConflictResponse)
        return list(response.invalidated_txids)

    async def report_accepted(self, request_id: str, txids: Sequence[str]) -> None:
        if txids:
            await self._call(
                self._stub.ReportAccepted, utxo_pb2.ReportAcceptedRequest(request_id=request_id, txids=list(txids))
            )

    async def add_outputs(self, request_id: str, coins: Sequence[WalletCoin]) -> None:
        await self._call(
            self._stub.AddOutputs,
            utxo_pb2.AddOutputsRequest(
                request_id=request_id,
                outputs=[
                    utxo_pb2.NewOutput(
                        outpoint=_outpoint(c.outpoint),
                        satoshis=c.satoshis,
                        locking_script=c.locking_script,
                        owner_key_id=c.key_id,
                        purpose=utxo_pb2.UTXO_PURPOSE_WALLET,
                    )
                    for c in coins
                ],
            ),
        )

    async def sync(self, key_ids: Sequence[str]) -> bool:
        """Best effort: another host's maintenance holding the lease is retried a few times; False
        when the sync did not happen (the caller tries again later, and the pool's own maintenance
        loop syncs every key it knows)."""
        if not key_ids:
            return True
        for attempt in range(_SYNC_ATTEMPTS):
            try:
                # Each sync is a new convergence with the chain, never the replay of an earlier one.
                await self._call(
                    self._admin.SyncFromChain,
                    utxo_pb2.SyncFromChainRequest(
                        request_id=f"wsync-{secrets.token_hex(12)}", owner_key_ids=list(key_ids)
                    ),
                )
                return True
            except DomainError as error:
                if error.reason != "MAINTENANCE_IN_PROGRESS" or attempt == _SYNC_ATTEMPTS - 1:
                    self._log.warning("pool.sync_skipped", reason=error.reason, keys=len(key_ids))
                    return False
                await asyncio.sleep(0.2 * (attempt + 1))
        return False
