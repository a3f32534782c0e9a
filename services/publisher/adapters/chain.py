"""ARC and WhatsOnChain (the kit's clients) as the pipeline's ChainGateway."""

from __future__ import annotations

from collections.abc import Sequence

from proofline_kit.chain import (
    ArcClient,
    ArcTxStatus,
    Broadcaster,
    BroadcastOutcome,
    Deadline,
    FeeRate,
    FeeRateCache,
    PreparedTx,
    ProofCheck,
    SpendState,
    TxChainState,
    WocClient,
    verify_merkle_path,
)
from proofline_kit.wire import Outpoint


class ChainAdapter:
    def __init__(
        self,
        arc: ArcClient,
        woc: WocClient,
        broadcaster: Broadcaster,
        *,
        fixed_rate: FeeRate | None,
        fee_ttl_s: float,
        timeout_s: float,
    ) -> None:
        self._arc = arc
        self._woc = woc
        self._broadcaster = broadcaster
        self._fixed_rate = fixed_rate
        self._fee_ttl_s = fee_ttl_s
        self._timeout_s = timeout_s
        self._fees = FeeRateCache(arc, ttl_s=fee_ttl_s)

    async def fee_rate(self) -> FeeRate:
        if self._fixed_rate is not None:
            return self._fixed_rate
        return await self._fees.rate()

    def fee_rate_stale(self) -> None:
        self._fees = FeeRateCache(self._arc, ttl_s=self._fee_ttl_s)

    async def broadcast(self, txs: Sequence[PreparedTx]) -> dict[str, BroadcastOutcome]:
        reports = await self._broadcaster.broadcast_many(txs, deadline=Deadline.after(3 * self._timeout_s))
        return {txid: report.outcome for txid, report in reports.items()}

    async def status(self, txid: str) -> ArcTxStatus | None:
        return await self._arc.status(txid, deadline=Deadline.after(self._timeout_s))

    async def verify(self, txid: str, bump_hex: str) -> ProofCheck:
        return await verify_merkle_path(txid, bump_hex, self._woc, deadline=Deadline.after(self._timeout_s))

    async def mined(self, txids: Sequence[str]) -> set[str]:
        states = await self._woc.tx_statuses(txids, deadline=Deadline.after(self._timeout_s))
        return {txid for txid, state in states.items() if state.state is TxChainState.MINED}

    async def chain_states(self, txids: Sequence[str]) -> dict[str, TxChainState]:
        states = await self._woc.tx_statuses(txids, deadline=Deadline.after(2 * self._timeout_s))
        return {txid: states[txid].state if txid in states else TxChainState.UNKNOWN for txid in txids}

    async def spenders(self, outpoints: Sequence[Outpoint]) -> dict[Outpoint, str | None]:
        spends = await self._woc.spenders(outpoints, deadline=Deadline.after(2 * self._timeout_s))
        found = {o: spend.spender_txid for o, spend in spends.items() if spend.state is not SpendState.UNKNOWN}
        # Not every WhatsOnChain answer tells "not spent" from "no such output": ask about the parents.
        parents = sorted({o.txid for o, spender in found.items() if spender is None})
        if parents:
            states = await self._woc.tx_statuses(parents, deadline=Deadline.after(self._timeout_s))
            unknown = {t for t in parents if t not in states or states[t].state is TxChainState.UNKNOWN}
            found = {o: s for o, s in found.items() if not (s is None and o.txid in unknown)}
        return found

    async def tip_height(self) -> int:
        return (await self._woc.chain_tip(deadline=Deadline.after(self._timeout_s))).height

    async def block_hash_at(self, height: int) -> str | None:
        header = await self._woc.block_header(height, deadline=Deadline.after(self._timeout_s))
        return None if header is None else header.block_hash
