"""The chain through proofline_kit.chain: WhatsOnChain lookups, ARC-then-WoC broadcast, policy fee rate."""

from __future__ import annotations

from collections.abc import Sequence

from proofline_kit.chain import (
    Broadcaster,
    ChainUnavailable,
    FeeRateCache,
    OutcomeKind,
    PreparedTx,
    SpendState,
    TxChainState,
    UtxoScope,
    WocClient,
)
from proofline_kit.errors import DomainError, ErrorKind
from proofline_kit.wire import Outpoint
from services.utxo.domain.ports import BroadcastKind, BroadcastResult, ChainOutput, TxState

_KINDS = {
    OutcomeKind.ACCEPTED: BroadcastKind.ACCEPTED,
    OutcomeKind.DOUBLE_SPEND: BroadcastKind.DOUBLE_SPEND,
    OutcomeKind.MISSING_INPUTS: BroadcastKind.MISSING_INPUTS,
    OutcomeKind.FEE_TOO_LOW: BroadcastKind.REJECTED,
    OutcomeKind.INVALID: BroadcastKind.REJECTED,
    OutcomeKind.UNAVAILABLE: BroadcastKind.UNAVAILABLE,
}
_STATES = {TxChainState.MINED: TxState.MINED, TxChainState.MEMPOOL: TxState.MEMPOOL}


def chain_unavailable(error: ChainUnavailable) -> DomainError:
    return DomainError(
        ErrorKind.UNAVAILABLE,
        "CHAIN_UNAVAILABLE",
        f"{error.provider.value}: {error.message}",
        metadata={"provider": error.provider.value},
        retry_after_ms=5_000,
    )


class ChainAdapter:
    """Implements ChainReader and TxBroadcaster."""

    def __init__(self, woc: WocClient, broadcaster: Broadcaster) -> None:
        self._woc = woc
        self._broadcaster = broadcaster

    async def tip_height(self) -> int:
        try:
            return (await self._woc.chain_tip()).height
        except ChainUnavailable as error:
            raise chain_unavailable(error) from None

    async def unspent(self, address: str) -> list[ChainOutput]:
        try:
            found = await self._woc.list_unspent(address, UtxoScope.ALL)
        except ChainUnavailable as error:
            raise chain_unavailable(error) from None
        return [ChainOutput(u.txid, u.vout, u.satoshis, u.height, u.spent_in_mempool) for u in found]

    async def tx_states(self, txids: Sequence[str]) -> dict[str, TxState]:
        """Every txid asked gets a state; one the chain does not answer for is UNKNOWN."""
        if not txids:
            return {}
        try:
            found = await self._woc.tx_statuses(txids)
        except ChainUnavailable as error:
            raise chain_unavailable(error) from None
        return {t: _STATES.get(found[t].state, TxState.UNKNOWN) if t in found else TxState.UNKNOWN for t in txids}

    async def spenders(self, outpoints: Sequence[Outpoint]) -> dict[Outpoint, str]:
        if not outpoints:
            return {}
        try:
            found = await self._woc.spenders(outpoints)
        except ChainUnavailable as error:
            raise chain_unavailable(error) from None
        return {o: s.spender_txid for o, s in found.items() if s.state is SpendState.SPENT and s.spender_txid}

    async def broadcast(self, extended_tx: bytes) -> BroadcastResult:
        report = await self._broadcaster.broadcast(PreparedTx.from_bytes(extended_tx))
        outcome = report.outcome
        return BroadcastResult(_KINDS[outcome.kind], outcome.reason, outcome.competing_txids)


class PolicyFeeRate:
    """FeeRates from ARC's policy (cached), or a fixed configured rate."""

    def __init__(self, cache: FeeRateCache | None, fixed_satoshis_per_kb: int | None, fallback: int) -> None:
        self._cache = cache
        self._fixed = fixed_satoshis_per_kb
        self._fallback = fallback

    async def satoshis_per_kb(self) -> int:
        if self._fixed is not None:
            return self._fixed
        if self._cache is None:
            return self._fallback
        rate = await self._cache.rate()
        return -(-rate.satoshis * 1000 // rate.bytes)
