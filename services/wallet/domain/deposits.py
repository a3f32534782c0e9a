"""Deposits, found by following the chain (never by polling addresses).

Each round follows the tip block by block: a new block's transactions are read once, every output
is matched in one batch against the indexed table of issued deposit scripts, the block's merkle
root is recomputed from its txids and compared with the header, and each matched transaction gets
its BUMP from that tree. The mempool is read the same way, so a deposit is pending from first
sight. A deposit becomes available once `min_confirmations` deep (coinbase outputs: once mature),
and its outputs enter the pool (purpose WALLET) as they are credited.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from proofline_kit.chain.merkle import MerkleTree
from proofline_kit.logging import get_logger
from proofline_kit.wire import Outpoint
from services.wallet.domain import ledger
from services.wallet.domain.deposit_feed import DepositSource, SeenTransaction, block_transactions, outputs_of
from services.wallet.domain.models import Actor, derived_request_id
from services.wallet.domain.ports import CoinPool, ScannedDeposit, Store, UnitOfWork, WalletCoin

# Mempool txids remembered as already read, so each round reads only the new ones.
_SEEN_MEMPOOL = 200_000


@dataclass(frozen=True, slots=True)
class FollowConfig:
    min_confirmations: int
    coinbase_maturity: int
    # Blocks scanned per round at most (a wallet far behind catches up over several rounds).
    blocks_per_round: int = 50
    credit_batch: int = 500


class DepositFollower:
    def __init__(self, store: Store, source: DepositSource, pool: CoinPool, config: FollowConfig) -> None:
        self._store = store
        self._source = source
        self._pool = pool
        self._config = config
        self._actor = Actor("wallet-deposits")
        self._mempool_seen: OrderedDict[str, None] = OrderedDict()
        self._log = get_logger("wallet.deposits")

    def _required(self, coinbase: bool) -> int:
        if coinbase:
            return max(self._config.min_confirmations, self._config.coinbase_maturity)
        return self._config.min_confirmations

    async def follow_round(self) -> int:
        """Scans the blocks after the last one scanned, up to the tip; then credits what is deep
        enough. Returns how many blocks it scanned."""
        tip = await self._source.tip()
        async with self._store.reader() as uow:
            scanned = await uow.scanned_tip()
        start = tip.height if scanned is None else scanned[0] + 1
        heights = range(start, min(tip.height, start + self._config.blocks_per_round - 1) + 1)
        for height in heights:
            block = await self._source.block_at(height)
            if block is None:
                break
            await self._scan_block(block.block_hash, block.height, block.previous_hash, block.merkle_root)
        await self.credit_round()
        return len(heights)

    async def _scan_block(self, block_hash: str, height: int, previous: str, merkle_root: str) -> None:
        contents = await self._source.block_contents(block_hash)
        tree = MerkleTree(contents.txids)
        if tree.root != merkle_root:
            raise ValueError(f"block {block_hash}: its txids do not hash to the header's merkle root")
        seen = block_transactions(contents, await self._source.transactions(contents.txids))
        found, outputs = await self._match(seen)
        index = {txid: i for i, txid in enumerate(contents.txids)}
        async with self._store.unit_of_work() as uow:
            for tx, deposits in found.items():
                await self._record(uow, tx, deposits)
            paths = tree.bumps([index[tx.txid] for tx in found], height)
            await uow.mark_mined(
                [tx.txid for tx in found], block_hash, height, {tx.txid: paths[index[tx.txid]] for tx in found}
            )
            await uow.record_block(height, block_hash, previous, merkle_root, outputs, len(found))

    async def mempool_round(self) -> int:
        txids = [t for t in await self._source.mempool_txids() if t not in self._mempool_seen]
        if not txids:
            return 0
        raws = await self._source.transactions(txids)
        found, _ = await self._match([SeenTransaction(t, raw, False) for t, raw in raws.items()])
        if found:
            async with self._store.unit_of_work() as uow:
                for tx, deposits in found.items():
                    await self._record(uow, tx, deposits)
        for txid in txids:
            self._mempool_seen[txid] = None
        while len(self._mempool_seen) > _SEEN_MEMPOOL:
            self._mempool_seen.popitem(last=False)
        return len(found)

    async def _record(self, uow: UnitOfWork, tx: SeenTransaction, deposits: Sequence[ScannedDeposit]) -> None:
        """First sight: UNCONFIRMED and pending, once per account and transaction."""
        created = await uow.record_deposits(tx.txid, deposits, tx.coinbase, self._required(tx.coinbase), self._actor)
        for transaction_id, account_id, satoshis in created:
            await uow.post(ledger.deposit_seen(transaction_id, account_id, satoshis), self._actor)

    async def _match(self, txs: Sequence[SeenTransaction]) -> tuple[dict[SeenTransaction, list[ScannedDeposit]], int]:
        """The deposits among the transactions' outputs (one lookup for all), and how many outputs
        were scanned."""
        by_txid = {tx.txid: tx for tx in txs}
        outputs = [o for o in outputs_of(txs) if o.satoshis]
        scanned = len(outputs)
        if not outputs:
            return {}, 0
        async with self._store.reader() as uow:
            ours = await uow.match_scripts(list({o.locking_script for o in outputs}))
        found: dict[SeenTransaction, list[ScannedDeposit]] = {}
        for out in outputs:
            owner = ours.get(out.locking_script)
            if owner is not None:
                address, account_id, key_id = owner
                found.setdefault(by_txid[out.txid], []).append(
                    ScannedDeposit(
                        Outpoint(out.txid, out.vout), out.satoshis, address, account_id, key_id, out.locking_script
                    )
                )
        return found, scanned

    async def credit_round(self) -> int:
        """Deposits deep enough: into the pool, then available in the ledger (one entry each)."""
        async with self._store.reader() as uow:
            tip = await uow.tip_height()
            due = await uow.deposits_to_credit(tip, self._config.credit_batch)
        if not due:
            return 0
        coins = [WalletCoin(d.outpoint, d.satoshis, d.locking_script, d.key_id) for w in due for d in w.outputs]
        for start in range(0, len(coins), 1000):
            await self._pool.add_outputs(
                derived_request_id("wadd", *coins[start : start + 1000]), coins[start : start + 1000]
            )
        async with self._store.unit_of_work() as uow:
            for work in due:
                if not await uow.credit_deposit(work, self._actor):
                    continue
                await uow.post(
                    ledger.deposit_credited(work.transaction_id, work.account_id, work.amount_satoshis), self._actor
                )
        await self._pool.sync(sorted({d.key_id for w in due for d in w.outputs}))
        return len(due)
