"""The DepositSource seam: how the wallet reads the chain to find deposits (blocks and mempool).

The first implementation reads WhatsOnChain's block and mempool endpoints
(adapters/woc_deposit_source.py); a node or JungleBus feed can be a second one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ChainBlock:
    """A main-chain block header as the wallet needs it."""

    block_hash: str
    height: int
    previous_hash: str
    merkle_root: str


@dataclass(frozen=True, slots=True)
class SeenTransaction:
    txid: str
    raw: bytes
    coinbase: bool


@dataclass(frozen=True, slots=True)
class BlockContents:
    block: ChainBlock
    # Every txid of the block in block order (for the merkle root and the BUMPs).
    txids: tuple[str, ...]


class DepositSource(Protocol):
    async def tip(self) -> ChainBlock: ...

    async def block_at(self, height: int) -> ChainBlock | None:
        """The main-chain block at `height`; None above the tip."""
        ...

    async def block_contents(self, block_hash: str) -> BlockContents: ...

    async def transactions(self, txids: Sequence[str]) -> dict[str, bytes]:
        """Raw bytes of the txids the source knows (absent ones are unknown)."""
        ...

    async def mempool_txids(self) -> tuple[str, ...]: ...
