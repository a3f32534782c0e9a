"""The wallet's :class:`DepositSource` over WhatsOnChain's documented endpoints, through the kit's
``WocClient``: ``/chain/info`` and ``/block/{hash|height}/header`` for the chain, ``/block/hash/{hash}``
with its ``/page/{n}`` links for a block's txids, ``POST /txs/hex`` (20 a request) for raw bytes and
``/mempool/raw`` for the mempool."""

from __future__ import annotations

from collections.abc import Sequence

from proofline_kit.chain import BlockHeader, ChainResponseError, Deadline, Provider, WocClient
from services.wallet.domain.deposit_feed import GENESIS_PREVIOUS, BlockContents, ChainBlock, UnknownBlock

# /chain/info and the tip's header are two requests: a block found in between can make the tip's
# hash unknown to the second for a moment (a reorg), so the pair is read again this often.
_TIP_ATTEMPTS = 3


def chain_block(header: BlockHeader) -> ChainBlock:
    if header.time is None:
        raise ChainResponseError(Provider.WOC, f"block {header.block_hash} has no time")
    return ChainBlock(
        block_hash=header.block_hash,
        height=header.height,
        previous_hash=header.previous_hash or GENESIS_PREVIOUS,
        merkle_root=header.merkle_root,
        time=header.time,
    )


class WocDepositSource:
    """Implements ``services.wallet.domain.deposit_feed.DepositSource``. ``budget_s`` bounds each
    call (all the requests it makes); None uses the client's default budget."""

    def __init__(self, woc: WocClient, *, budget_s: float | None = None) -> None:
        self._woc = woc
        self._budget_s = budget_s

    def _deadline(self) -> Deadline | None:
        return None if self._budget_s is None else Deadline.after(self._budget_s)

    async def tip(self) -> ChainBlock:
        deadline = self._deadline()
        for _ in range(_TIP_ATTEMPTS):
            tip = await self._woc.chain_tip(deadline=deadline)
            header = await self._woc.block_header(tip.block_hash, deadline=deadline)
            if header is not None:
                return chain_block(header)
        raise ChainResponseError(Provider.WOC, "the chain tip's header could not be read")

    async def block_at(self, height: int) -> ChainBlock | None:
        header = await self._woc.block_header(height, deadline=self._deadline())
        if header is None:
            return None
        if header.height != height:
            raise ChainResponseError(Provider.WOC, f"asked for block {height}, got block {header.height}")
        return chain_block(header)

    async def block_contents(self, block_hash: str) -> BlockContents:
        block = await self._woc.block_txids(block_hash, deadline=self._deadline())
        if block is None:
            raise UnknownBlock(block_hash)
        return BlockContents(chain_block(block.header), block.txids)

    async def transactions(self, txids: Sequence[str]) -> dict[str, bytes]:
        return await self._woc.raw_txs(txids, deadline=self._deadline())

    async def mempool_txids(self) -> tuple[str, ...]:
        return await self._woc.mempool_txids(deadline=self._deadline())
