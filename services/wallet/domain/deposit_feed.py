"""What the wallet reads from the chain to find deposits by following blocks, never by polling
addresses: the tip, the main-chain block at a height, a block's txids in block order, raw
transactions by txid and the mempool's txids (the :class:`DepositSource` port), and the scan of
their outputs (:func:`outputs_of`), the hot loop of deposit detection.

The wallet follows the tip block by block, checks each block's ``previous_hash`` against the one it
scanned before (a mismatch is a reorg), recomputes the merkle root of ``BlockContents.txids`` and
compares it with ``ChainBlock.merkle_root``, fetches the raw transactions, runs every output through
:func:`outputs_of` and looks the locking scripts up in its deposit-script table in one batch.
Unconfirmed deposits come the same way from ``mempool_txids``.

Pure domain code: the standard library and ``proofline_kit.wire`` only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from proofline_kit.wire import TxFormatError

__all__ = [
    "GENESIS_PREVIOUS",
    "BlockContents",
    "ChainBlock",
    "DepositSource",
    "MissingTransactions",
    "SeenOutput",
    "SeenTransaction",
    "UnknownBlock",
    "block_transactions",
    "outputs_of",
]

GENESIS_PREVIOUS = "00" * 32  # the previous hash of a block that has none


@dataclass(frozen=True, slots=True)
class ChainBlock:
    """A main-chain block header as the wallet needs it (hashes in display hex)."""

    block_hash: str
    height: int
    previous_hash: str
    merkle_root: str
    time: int


@dataclass(frozen=True, slots=True)
class SeenTransaction:
    txid: str
    raw: bytes
    coinbase: bool


@dataclass(frozen=True, slots=True)
class BlockContents:
    block: ChainBlock
    txids: tuple[str, ...]  # every txid of the block in block order (for the merkle root / BUMPs)


class UnknownBlock(LookupError):
    """The source knows no block with that hash."""


class MissingTransactions(LookupError):
    """The source did not return every transaction of a block."""

    def __init__(self, txids: Sequence[str]) -> None:
        super().__init__(f"{len(txids)} transactions of the block are missing, the first {txids[0]}")
        self.txids = tuple(txids)


class DepositSource(Protocol):
    async def tip(self) -> ChainBlock: ...

    async def block_at(self, height: int) -> ChainBlock | None:
        """The main-chain block at ``height``; None above the tip."""
        ...

    async def block_contents(self, block_hash: str) -> BlockContents:
        """Every txid of the block (all its pages); UnknownBlock when there is none."""
        ...

    async def transactions(self, txids: Sequence[str]) -> dict[str, bytes]:
        """The raw bytes of those of ``txids`` the source knows."""
        ...

    async def mempool_txids(self) -> tuple[str, ...]: ...


class SeenOutput(NamedTuple):
    """One output of a seen transaction (a tuple: the scan makes one per output of every block)."""

    txid: str
    vout: int
    satoshis: int
    locking_script: bytes
    coinbase: bool


def block_transactions(contents: BlockContents, raws: Mapping[str, bytes]) -> list[SeenTransaction]:
    """The block's transactions in block order, the first one its coinbase."""
    missing = [t for t in contents.txids if t not in raws]
    if missing:
        raise MissingTransactions(missing)
    return [SeenTransaction(t, raws[t], i == 0) for i, t in enumerate(contents.txids)]


def outputs_of(txs: Iterable[SeenTransaction]) -> Iterator[SeenOutput]:
    """Every output of every transaction, in order. Reads the raw serialization directly: inputs
    are skipped, not decoded, and an output costs one tuple and one slice of its script. Raises
    ``TxFormatError`` for bytes that are not exactly one transaction (checked before any of that
    transaction's outputs are yielded)."""
    for tx in txs:
        yield from _outputs(tx.txid, tx.raw, tx.coinbase)


def _outputs(txid: str, raw: bytes, coinbase: bool) -> list[SeenOutput]:
    from_bytes = int.from_bytes
    out: list[SeenOutput] = []
    try:
        p = 4  # version
        n = raw[p]
        p += 1
        if n >= 0xFD:
            width = 2 if n == 0xFD else 4 if n == 0xFE else 8
            n = from_bytes(raw[p : p + width], "little")
            p += width
        for _ in range(n):
            p += 36  # previous outpoint
            length = raw[p]
            p += 1
            if length >= 0xFD:
                width = 2 if length == 0xFD else 4 if length == 0xFE else 8
                length = from_bytes(raw[p : p + width], "little")
                p += width
            p += length + 4  # unlocking script, sequence
        n = raw[p]
        p += 1
        if n >= 0xFD:
            width = 2 if n == 0xFD else 4 if n == 0xFE else 8
            n = from_bytes(raw[p : p + width], "little")
            p += width
        for vout in range(n):
            satoshis = from_bytes(raw[p : p + 8], "little")
            p += 8
            length = raw[p]
            p += 1
            if length >= 0xFD:
                width = 2 if length == 0xFD else 4 if length == 0xFE else 8
                length = from_bytes(raw[p : p + width], "little")
                p += width
            end = p + length
            out.append(SeenOutput(txid, vout, satoshis, raw[p:end], coinbase))
            p = end
        p += 4  # locktime
    except IndexError as exc:
        raise TxFormatError(f"transaction {txid}: bytes end early") from exc
    if p != len(raw):  # a short read only moves p further past the end
        problem = "bytes end early" if p > len(raw) else f"{len(raw) - p} bytes left over"
        raise TxFormatError(f"transaction {txid}: {problem}")
    return out
