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

from proofline_kit.chain import TxChainState
from proofline_kit.chain.merkle import MerkleTree
from proofline_kit.logging import get_logger
from proofline_kit.wire import Outpoint
from services.wallet.domain import ledger
from services.wallet.domain.deposit_feed import DepositSource, SeenTransaction, block_transactions, outputs_of
from services.wallet.domain.models import Actor, derived_request_id
from services.wallet.domain.ports import ChainGateway, CoinPool, ScannedDeposit, Store, UnitOfWork, WalletCoin

# Mempool txids remembered as already read, so each round reads only the new ones.
_SEEN_MEMPOOL = 200_000


@dataclass(frozen=True, slots=True)
class FollowConfig:
    min_confirmations: int
    coinbase_maturity: int
    # Blocks scanned per round at most (a wallet far behind catches up over several rounds).
    blocks_per_round: int = 50
    credit_batch: int = 500
    # A deposit neither mined nor in the mempool this long since a check first found it so is dead.
    drop_after_s: float = 600.0


class DepositFollower:
    def __init__(
        self, store: Store, source: DepositSource, pool: CoinPool, chain: ChainGateway, config: FollowConfig
    ) -> None:
        self._store = store
        self._source = source
        self._pool = pool
        self._chain = chain
        self._config = config
        self._actor = Actor("wallet-deposits")
        self._mempool_seen: OrderedDict[str, None] = OrderedDict()
        # Keys whose coins the pool has not synced yet (a sync that could not run is tried again).
        self._unsynced: set[str] = set()
        self._log = get_logger("wallet.deposits")

    def _required(self, coinbase: bool) -> int:
        if coinbase:
            return max(self._config.min_confirmations, self._config.coinbase_maturity)
        return self._config.min_confirmations

    async def follow_round(self) -> int:
        """Undoes the blocks that left the main chain, scans the blocks after the last one scanned
        up to the tip, then settles what the new depth decides. Returns how many blocks it scanned."""
        tip = await self._source.tip()
        async with self._store.reader() as uow:
            scanned = await uow.scanned_tip()
        if scanned is not None:
            scanned = await self._undo_stale(scanned, tip.height)
        start = tip.height if scanned is None else scanned[0] + 1
        heights = range(start, min(tip.height, start + self._config.blocks_per_round - 1) + 1)
        for height in heights:
            block = await self._source.block_at(height)
            if block is None:
                break
            await self._scan_block(block.block_hash, block.height, block.previous_hash, block.merkle_root)
        await self.settle_round()
        return len(heights)

    async def _undo_stale(self, scanned: tuple[int, str], tip_height: int) -> tuple[int, str] | None:
        """Walks down from the last scanned block to the highest one still on the main chain and
        undoes every block above it (its transactions lose their block: CONFIRMED ones go
        REORGING, keeping their balances). Returns the new last scanned block."""
        height, block_hash = scanned
        undone = 0
        while True:
            main = await self._source.block_at(height) if height <= tip_height else None
            if main is not None and main.block_hash == block_hash:
                break
            undone += 1
            async with self._store.unit_of_work() as uow:
                await uow.undo_block(height, self._actor)
                below = await uow.scanned_tip()
            if below is None:
                return None
            height, block_hash = below
        if undone:
            self._log.warning("deposits.reorg", depth=undone, fork_height=height)
        return height, block_hash

    async def _scan_block(self, block_hash: str, height: int, previous: str, merkle_root: str) -> None:
        contents = await self._source.block_contents(block_hash)
        tree = MerkleTree(contents.txids)
        if tree.root != merkle_root:
            raise ValueError(f"block {block_hash}: its txids do not hash to the header's merkle root")
        seen = block_transactions(contents, await self._raw_transactions(contents.txids))
        found, outputs = await self._match(seen)
        index = {txid: i for i, txid in enumerate(contents.txids)}
        async with self._store.unit_of_work() as uow:
            await self._record(uow, found)
            # Our own sends are confirmed the same way: found in a scanned block, BUMP from its tree.
            mined = sorted({tx.txid for tx in found} | await uow.our_txids(contents.txids), key=index.__getitem__)
            paths = tree.bumps([index[t] for t in mined], height)
            await uow.mark_mined(mined, block_hash, height, {t: paths[index[t]] for t in mined})
            await uow.record_block(height, block_hash, previous, merkle_root, outputs, len(found))
            change_keys = await uow.keys_of_coins_in(mined)
        if change_keys:
            # The pool makes our mined change spendable on its own chain evidence.
            self._unsynced.update(change_keys)
            await self._sync_pool()

    async def mempool_round(self) -> int:
        txids = [t for t in await self._source.mempool_txids() if t not in self._mempool_seen]
        if not txids:
            return 0
        raws = await self._raw_transactions(txids)
        found, _ = await self._match([SeenTransaction(t, raw, False) for t, raw in raws.items()])
        if found:
            async with self._store.unit_of_work() as uow:
                await self._record(uow, found)
        for txid in txids:
            self._mempool_seen[txid] = None
        while len(self._mempool_seen) > _SEEN_MEMPOOL:
            self._mempool_seen.popitem(last=False)
        return len(found)

    async def _raw_transactions(self, txids: Sequence[str]) -> dict[str, bytes]:
        """Raw bytes of the transactions: our own sends from the database (we signed them), the
        others from the source."""
        async with self._store.reader() as uow:
            ours = await uow.raw_sends(txids)
        rest = [t for t in txids if t not in ours]
        return ours | (await self._source.transactions(rest) if rest else {})

    async def _record(self, uow: UnitOfWork, found: dict[SeenTransaction, list[ScannedDeposit]]) -> None:
        """First sight: UNCONFIRMED and pending, once per account and transaction."""
        if not found:
            return
        await uow.lock_books([d.account_id for deposits in found.values() for d in deposits])
        for tx, deposits in found.items():
            created = await uow.record_deposits(
                tx.txid, deposits, tx.coinbase, self._required(tx.coinbase), self._actor
            )
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

    async def settle_round(self) -> int:
        """What the current depth decides: deposits deep enough are credited (their outputs go into
        the pool first), mined transactions deep enough become CONFIRMED, REORGING ones go back to
        UNCONFIRMED or CONFIRMED, and deposits that left the chain and the mempool are dropped."""
        async with self._store.reader() as uow:
            tip = await uow.tip_height()
            due = await uow.deposits_to_credit(tip, self._config.credit_batch)
        credited = 0
        if due:
            coins = [WalletCoin(d.outpoint, d.satoshis, d.locking_script, d.key_id) for w in due for d in w.outputs]
            for start in range(0, len(coins), 1000):
                chunk = coins[start : start + 1000]
                await self._pool.add_outputs(derived_request_id("wadd", *chunk), chunk)
            async with self._store.unit_of_work() as uow:
                await uow.lock_books([w.account_id for w in due])
                for work in due:
                    if await uow.credit_deposit(work, self._actor):
                        credited += 1
                        _, owed = (await uow.lock_accounts([work.account_id]))[work.account_id]
                        await uow.post(
                            ledger.deposit_credited(work.transaction_id, work.account_id, work.amount_satoshis, owed),
                            self._actor,
                        )
            self._unsynced.update(d.key_id for w in due for d in w.outputs)
        await self._sync_pool()
        async with self._store.unit_of_work() as uow:
            settled = await uow.settle_depths(tip, self._actor)
        return credited + settled + await self._drop_dead_deposits()

    async def _drop_dead_deposits(self) -> int:
        """Deposits neither mined nor in the mempool for `drop_after_s`: proven dead (their inputs
        were spent by another transaction). A pending one loses its pending credit; a credited one is
        reversed, into a deficit if the account already spent it."""
        async with self._store.reader() as uow:
            unmined = await uow.unmined_deposits(self._config.credit_batch)
        if not unmined:
            return 0
        states = await self._chain.chain_states([w.txid for w in unmined])
        dropped = 0
        keys: set[str] = set()
        dead_coins: list[Outpoint] = []
        async with self._store.unit_of_work() as uow:
            await uow.lock_books([w.account_id for w in unmined])
            for work in unmined:
                if states.get(work.txid) is not TxChainState.UNKNOWN:
                    await uow.seen_again(work.transaction_id)
                    continue
                if not await uow.drop_deposit(work, self._config.drop_after_s, self._actor):
                    continue
                dropped += 1
                if work.credited:
                    dead_coins.extend(d.outpoint for d in work.outputs)
                    available, _ = (await uow.lock_accounts([work.account_id]))[work.account_id]
                    await uow.post(
                        ledger.reversal(work.transaction_id, work.account_id, work.amount_satoshis, available),
                        self._actor,
                    )
                    keys.update(d.key_id for d in work.outputs)
                else:
                    await uow.post(
                        ledger.deposit_dropped(work.transaction_id, work.account_id, work.amount_satoshis),
                        self._actor,
                    )
        if dead_coins:
            # The pool judges its own rows on the chain's word: reported, they are DIRTY, and a sync
            # finding their transaction unknown writes them off. (An UNCONFIRMED row cannot be
            # reported; the pool keeps it until its own rules decide.)
            held = await self._pool.coin_states(dead_coins)
            reportable = [c for c in dead_coins if held.get(c, ("", ""))[0] in ("AVAILABLE", "DIRTY")]
            if reportable:
                await self._pool.report_dead(
                    derived_request_id("wdrop", *reportable), "", reportable, True, (), "deposit dropped in a reorg"
                )
        self._unsynced.update(keys)
        await self._sync_pool()
        return dropped

    async def _sync_pool(self) -> None:
        if self._unsynced and await self._pool.sync(sorted(self._unsynced)):
            self._unsynced.clear()
