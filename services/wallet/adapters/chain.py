"""ARC and WhatsOnChain (the kit's clients) as the wallet's ChainGateway."""

from __future__ import annotations

from collections.abc import Sequence

from proofline_kit.chain import (
    ArcClient,
    Broadcaster,
    BroadcastOutcome,
    Deadline,
    FeeRate,
    FeeRateCache,
    PreparedTx,
    SpendState,
    TxChainState,
    WocClient,
)
from proofline_kit.wire import Outpoint


class ChainAdapter:
    def __init__(
        self,
        arc: ArcClient | None,
        woc: WocClient,
        broadcaster: Broadcaster,
        fixed_rate: FeeRate | None,
        fee_ttl_s: float,
        timeout_s: float,
    ) -> None:
        self._arc = arc
        self._woc = woc
        self._broadcaster = broadcaster
        self._fixed_rate = fixed_rate
        self._fees = FeeRateCache(arc, ttl_s=fee_ttl_s) if arc is not None else None
        self._timeout_s = timeout_s

    async def fee_rate_per_kb(self) -> int:
        rate = self._fixed_rate or (await self._fees.rate() if self._fees is not None else FeeRate(1, 1000))
        return max(1, -(-rate.satoshis * 1000 // rate.bytes))

    async def broadcast(self, txs: Sequence[PreparedTx]) -> dict[str, BroadcastOutcome]:
        reports = await self._broadcaster.broadcast_many(txs, deadline=Deadline.after(3 * self._timeout_s))
        return {txid: report.outcome for txid, report in reports.items()}

    async def chain_states(self, txids: Sequence[str]) -> dict[str, TxChainState]:
        states = await self._woc.tx_statuses(txids, deadline=Deadline.after(2 * self._timeout_s))
        return {t: states[t].state if t in states else TxChainState.UNKNOWN for t in txids}

    async def spenders(self, outpoints: Sequence[Outpoint]) -> dict[Outpoint, str]:
        found = await self._woc.spenders(outpoints, deadline=Deadline.after(2 * self._timeout_s))
        return {o: s.spender_txid for o, s in found.items() if s.state is SpendState.SPENT and s.spender_txid}
