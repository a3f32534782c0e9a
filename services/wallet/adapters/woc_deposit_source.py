"""WhatsOnChain's real block and mempool endpoints as the wallet's DepositSource."""

from __future__ import annotations

from collections.abc import Sequence

from proofline_kit.chain import WocClient
from proofline_kit.chain.woc_results import BlockHeader
from services.wallet.domain.deposit_feed import BlockContents, ChainBlock


def _block(header: BlockHeader) -> ChainBlock:
    return ChainBlock(header.block_hash, header.height, header.previous_hash or "", header.merkle_root)


class WocDepositSource:
    def __init__(self, woc: WocClient) -> None:
        self._woc = woc

    async def tip(self) -> ChainBlock:
        tip = await self._woc.chain_tip()
        block = await self.block_at(tip.height)
        if block is None:
            raise LookupError(f"WhatsOnChain has no header at its own tip {tip.height}")
        return block

    async def block_at(self, height: int) -> ChainBlock | None:
        header = await self._woc.block_header(height)
        return None if header is None else _block(header)

    async def block_contents(self, block_hash: str) -> BlockContents:
        found = await self._woc.block_txids(block_hash)
        if found is None:
            raise LookupError(f"WhatsOnChain does not know block {block_hash}")
        return BlockContents(_block(found.header), found.txids)

    async def transactions(self, txids: Sequence[str]) -> dict[str, bytes]:
        return await self._woc.raw_txs(txids)

    async def mempool_txids(self) -> tuple[str, ...]:
        return await self._woc.mempool_txids()
