"""Chain reorganisation and stale-fork injection (arc-woc.md §6.6)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from services.chainsim.chain.mining import Miner, MiningError
from services.chainsim.chain.state import Block, ChainState, NodeState, TxRecord
from services.chainsim.chain.status import ArcStatus
from services.chainsim.chain.txcodec import parse_one
from services.chainsim.chain.validation import NodeAcceptor


@dataclass(slots=True)
class ReorgResult:
    stale: list[Block] = field(default_factory=list)
    new: list[Block] = field(default_factory=list)
    remined: list[bytes] = field(default_factory=list)  # in both branches
    stale_only: list[bytes] = field(default_factory=list)  # only in the stale branch


class Reorganizer:
    def __init__(self, state: ChainState, miner: Miner, acceptor: NodeAcceptor) -> None:
        self.state = state
        self.miner = miner
        self.acceptor = acceptor

    def reorg(
        self,
        depth: int,
        new_blocks: int | None = None,
        drop_txids: Sequence[bytes] = (),
        include_txids: Sequence[bytes] = (),
    ) -> ReorgResult:
        """Replace the top ``depth`` blocks with a longer branch of ``new_blocks`` blocks."""
        state = self.state
        if depth < 1 or depth > state.height:
            raise MiningError(f"depth must be between 1 and {state.height}")
        count = depth + 1 if new_blocks is None else new_blocks
        if count <= depth:
            raise MiningError("the new branch must be longer than the replaced one (use /_sim/fork)")
        include: list[TxRecord] = []
        for t in include_txids:
            rec = state.txs.get(t)
            if rec is None:
                raise MiningError(f"unknown transaction {t[::-1].hex()}")
            include.append(rec)
        # 1. take the mempool out, youngest first, so the UTXO set only reflects the chain
        old_mempool = list(state.mempool_records())
        for rec in reversed(old_mempool):
            state.remove_from_mempool(rec)
        for rec in include:
            if rec.node == NodeState.ORPHAN:
                state.drop_orphan(rec)
        # 2. disconnect the stale blocks
        result = ReorgResult()
        for _ in range(depth):
            result.stale.insert(0, self.miner.disconnect_tip())
        stale_recs = [state.txs[t] for b in result.stale for t in b.txids[1:]]
        for b in result.stale:
            cb = state.txs[b.txids[0]]
            cb.node = NodeState.REJECTED
            state.set_status(cb, ArcStatus.MINED_IN_STALE_BLOCK, force=True)
        # 3. the first new block takes the included txs, then the stale ones that still connect
        dropped = set(drop_txids)
        candidates = [*include, *(r for r in stale_recs if r.txid not in dropped and r not in include)]
        chosen = self._connectable(candidates)
        chosen_ids = {r.txid for r in chosen}
        for rec in chosen:
            rec.node = NodeState.REJECTED  # marker: apply in full (not from the mempool)
        for i in range(count):
            result.new.append(self.miner.mine_records(chosen if i == 0 else []))
        stale_ids = {r.txid for r in stale_recs}
        result.remined = [t for t in chosen_ids if t in stale_ids]
        # 4. stale-only txs, then the old mempool, go back through node acceptance
        leftovers = [r for r in stale_recs if r.txid not in chosen_ids]
        for rec in leftovers:
            result.stale_only.append(rec.txid)
            state.set_status(rec, ArcStatus.MINED_IN_STALE_BLOCK, force=True)
        leftovers += [r for r in old_mempool if r.txid not in chosen_ids]
        for rec in leftovers:
            rec.node = NodeState.MEMPOOL
            if rec.origin == "fund":  # synthetic input: nothing to validate
                state.add_to_mempool(rec, parse_one(rec.raw))
                continue
            self.acceptor.evaluate(parse_one(rec.raw), rec.origin, existing=rec, skip_scripts=True)
        return result

    def _connectable(self, candidates: list[TxRecord]) -> list[TxRecord]:
        utxos = self.state.utxos
        spent: set[bytes] = set()
        created: set[bytes] = set()
        chosen: list[TxRecord] = []
        for rec in candidates:
            if rec.origin == "fund" or all((op in utxos or op in created) and op not in spent for op in rec.inputs):
                chosen.append(rec)
                spent.update(rec.inputs)
                created.update(rec.txid + i.to_bytes(4, "little") for i in range(rec.n_out))
        return chosen

    def fork(self, depth: int, blocks: int = 1, txids: Sequence[bytes] = ()) -> list[Block]:
        """A competing branch of ``blocks`` <= ``depth`` blocks from ``depth`` below the tip; the
        longest chain stays. Txs only there become MINED_IN_STALE_BLOCK but remain in the mempool."""
        state = self.state
        if depth < 1 or depth > state.height:
            raise MiningError(f"depth must be between 1 and {state.height}")
        if blocks < 1 or blocks > depth:
            raise MiningError("a stale fork has between 1 and depth blocks")
        records: list[TxRecord] = []
        for t in txids:
            rec = state.txs.get(t)
            if rec is None or rec.node != NodeState.MEMPOOL:
                raise MiningError(f"transaction {t[::-1].hex()} is not in the mempool")
            records.append(rec)
        prev = state.chain[state.height - depth]
        out: list[Block] = []
        for i in range(blocks):
            recs = records if i == 0 else []
            block, cb = self.miner.build(prev, recs)
            block.stale = True
            state.blocks[block.hash] = block
            cb.node = NodeState.REJECTED
            cb.stale_block = block
            state.set_status(cb, ArcStatus.MINED_IN_STALE_BLOCK, force=True)
            out.append(block)
            prev = block
        for rec in records:
            rec.stale_block = out[0]
            state.set_status(rec, ArcStatus.MINED_IN_STALE_BLOCK, "")
        state.changes += 1
        return out
