"""Block production (arc-woc.md §6.5): synthetic coinbase, merkle root, connect/disconnect, funding."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from services.chainsim.chain.clock import Clock
from services.chainsim.chain.state import Block, ChainState, NodeState, TxRecord
from services.chainsim.chain.status import ArcStatus
from services.chainsim.chain.txcodec import ParsedTx, outpoint, parse_one, push_data, serialize_tx
from services.chainsim.chain.validation import NodeAcceptor
from services.chainsim.settings import ChainsimSettings

COIN = 100_000_000
HALVING_INTERVAL = 210_000
_NULL_OUTPOINT = bytes(32) + b"\xff\xff\xff\xff"


class MiningError(ValueError):
    """A control-API mining request that cannot be honoured."""


def block_subsidy(height: int) -> int:
    halvings = height // HALVING_INTERVAL
    return 0 if halvings >= 64 else (50 * COIN) >> halvings


def script_num(n: int) -> bytes:
    """Minimal little-endian script number (BIP34 height push)."""
    if n == 0:
        return b""
    out = bytearray()
    while n:
        out.append(n & 0xFF)
        n >>= 8
    if out[-1] & 0x80:
        out.append(0)
    return bytes(out)


def coinbase_raw(height: int, value: int, script: bytes, nonce: int) -> bytes:
    script_sig = push_data(script_num(height)) + push_data(b"/chainsim/") + push_data(nonce.to_bytes(8, "little"))
    return serialize_tx(1, [(_NULL_OUTPOINT, script_sig, 0xFFFFFFFF)], [(value, script)])


def funding_raw(counter: int, outputs: Sequence[tuple[int, bytes]]) -> bytes:
    """A funding transaction spending a synthetic outpoint that exists nowhere (never validated)."""
    prev = hashlib.sha256(b"chainsim-fund" + counter.to_bytes(8, "little")).digest()
    return serialize_tx(
        1, [(prev + b"\x00\x00\x00\x00", push_data(counter.to_bytes(8, "little")), 0xFFFFFFFF)], list(outputs)
    )


class Miner:
    """Builds blocks on the longest chain and applies them to the state."""

    def __init__(self, state: ChainState, settings: ChainsimSettings, clock: Clock, acceptor: NodeAcceptor) -> None:
        self.state = state
        self.settings = settings
        self.clock = clock
        self.acceptor = acceptor
        self.miner_script = bytes.fromhex(settings.miner_script_hex)

    # ---- blocks ------------------------------------------------------------------------------

    def _coinbase(self, height: int, fees: int, script: bytes | None = None) -> TxRecord:
        self.state.block_nonce += 1
        pays = self.miner_script if script is None else script
        raw = coinbase_raw(height, block_subsidy(height) + fees, pays, self.state.block_nonce)
        tx = parse_one(raw)
        rec = TxRecord(
            tx.txid,
            raw,
            (tx.inputs[0][0],),
            1,
            0,
            NodeState.MINED,
            ArcStatus.UNKNOWN,
            self.clock.now(),
            "coinbase",
            coinbase=True,
        )
        self.state.txs[tx.txid] = rec
        return rec

    def _block_time(self, prev: Block | None, requested: int | None) -> int:
        if requested is not None:
            return requested
        now = int(self.clock.now())
        return now if prev is None else max(now, prev.time + 1)

    def build(
        self,
        prev: Block | None,
        records: Sequence[TxRecord],
        when: int | None = None,
        coinbase_script: bytes | None = None,
    ) -> tuple[Block, TxRecord]:
        """The block on ``prev`` holding ``records``; its coinbase pays subsidy + fees to
        ``coinbase_script`` (default: the configured miner script)."""
        height = 0 if prev is None else prev.height + 1
        fees = sum(r.fee for r in records)
        cb = self._coinbase(height, fees, coinbase_script)
        txids = [cb.txid, *(r.txid for r in records)]
        size = 80 + sum(len(r.raw) for r in records) + len(cb.raw)
        block = Block(height, bytes(32) if prev is None else prev.hash, txids, self._block_time(prev, when), size=size)
        return block, cb

    def genesis(self) -> Block:
        if self.state.chain:
            raise MiningError("the chain already has a genesis block")
        block, cb = self.build(None, [], when=int(self.clock.now()))
        self.connect(block, [cb])
        return block

    def connect(self, block: Block, records: Sequence[TxRecord]) -> None:
        """Append ``block`` (whose txs are ``records``, coinbase first) to the longest chain."""
        state = self.state
        state.append_block(block)
        height = block.height
        created: list[TxRecord] = []
        for rec in records:
            if rec.node == NodeState.MEMPOOL and rec.txid in state.mempool:
                spends = state.mempool_spends
                for op in rec.inputs:
                    spends.pop(op, None)
                    state.remove_utxo(op)
                    state.block_spends[op] = rec.txid
                for i in range(rec.n_out):
                    state.set_utxo_height(rec.txid + i.to_bytes(4, "little"), height)
                del state.mempool[rec.txid]
            else:
                self._apply_full(rec, height)
                created.append(rec)
            rec.node = NodeState.MINED
            rec.block = block
            rec.depth = 0
        for rec in records:
            self._mined_status(rec)
        if state.mempool:
            self._recompute_depths()
        if state.orphan_waits:
            for rec in created:
                self.acceptor.promote_orphans(state.orphans_waiting_on(rec.txid, rec.n_out))

    def _apply_full(self, rec: TxRecord, height: int) -> None:
        state = self.state
        if rec.node == NodeState.ORPHAN:
            state.drop_orphan(rec)
        if not rec.coinbase:
            for op in rec.inputs:
                spender = state.mempool_spends.get(op)
                if spender is not None and spender != rec.txid:
                    self.acceptor.evict(state.txs[spender], "double spend attempted")
                state.remove_utxo(op)
                state.block_spends[op] = rec.txid
        tx = parse_one(rec.raw)
        for i, (value, script) in enumerate(tx.outputs):
            state.add_utxo(outpoint(rec.txid, i), value, script, height, rec.coinbase)

    def _mined_status(self, rec: TxRecord) -> None:
        state = self.state
        extra = ""
        if rec.competing:
            for other in rec.competing:
                loser = state.txs.get(other)
                if loser is not None and loser.node in (NodeState.COMPETITOR, NodeState.ORPHAN):
                    if loser.node == NodeState.ORPHAN:
                        state.drop_orphan(loser)
                    loser.node = NodeState.REJECTED
                    state.set_status(loser, ArcStatus.REJECTED, "double spend attempted", force=True)
            rec.competing = []
            extra = "previously double spend attempted"
        state.set_status(rec, ArcStatus.MINED, extra)

    def _recompute_depths(self) -> None:
        txs = self.state.txs
        mem = self.state.mempool
        for t in mem:
            rec = txs[t]
            depth = 0
            for op in rec.inputs:
                parent_txid = op[:32]
                if parent_txid in mem:
                    d = txs[parent_txid].depth + 1
                    if d > depth:
                        depth = d
            rec.depth = depth

    def disconnect_tip(self) -> Block:
        """Remove the tip block from the longest chain (its txs keep their records)."""
        state = self.state
        if len(state.chain) <= 1:
            raise MiningError("cannot disconnect the genesis block")
        block = state.chain.pop()
        block.stale = True
        state.changes += 1
        records = [state.txs[t] for t in block.txids]
        parent_outputs: dict[bytes, list[tuple[int, bytes]]] = {}  # a big funding tx is parsed once
        for rec in reversed(records):
            for i in range(rec.n_out):
                state.remove_utxo(rec.txid + i.to_bytes(4, "little"))
            if not rec.coinbase:
                for op in rec.inputs:
                    state.block_spends.pop(op, None)
                    parent = state.txs.get(op[:32])
                    if parent is None or parent.block is None:
                        continue  # a funding transaction's synthetic input
                    outs = parent_outputs.get(parent.txid)
                    if outs is None:
                        outs = parent_outputs[parent.txid] = parse_one(parent.raw).outputs
                    out = outs[int.from_bytes(op[32:], "little")]
                    state.add_utxo(op, out[0], out[1], parent.block.height, parent.coinbase)
            rec.block = None
            rec.stale_block = block
        return block

    # ---- control API operations ------------------------------------------------------------

    def select(self, txids: Sequence[bytes] | None, exclude: Sequence[bytes]) -> list[TxRecord]:
        """Mempool txs for the next block, in arrival order, never a child without its parent."""
        state = self.state
        mem = state.mempool
        txs = state.txs
        wanted: set[bytes] | None = None
        if txids is not None:
            wanted = set()
            stack = list(txids)
            while stack:
                t = stack.pop()
                if t in wanted or t not in mem:
                    continue
                wanted.add(t)
                stack.extend(op[:32] for op in txs[t].inputs)
        excluded = set(exclude)
        chosen: list[TxRecord] = []
        chosen_set: set[bytes] = set()
        for t in mem:
            if t in excluded or (wanted is not None and t not in wanted):
                continue
            rec = txs[t]
            if any(op[:32] in mem and op[:32] not in chosen_set for op in rec.inputs):
                continue
            chosen.append(rec)
            chosen_set.add(t)
        return chosen

    def mine(
        self,
        blocks: int = 1,
        txids: Sequence[bytes] | None = None,
        exclude: Sequence[bytes] = (),
        when: int | None = None,
        coinbase_script: bytes | None = None,
    ) -> list[Block]:
        """Mine ``blocks`` blocks on the tip; every coinbase pays ``coinbase_script`` when given."""
        if blocks < 1 or blocks > 10_000:
            raise MiningError("blocks must be between 1 and 10000")
        for t in txids or ():
            rec = self.state.txs.get(t)
            if rec is None or rec.node != NodeState.MEMPOOL:
                raise MiningError(f"transaction {t[::-1].hex()} is not in the mempool")
        out: list[Block] = []
        for n in range(blocks):
            records = self.select(txids, exclude) if (n == 0 or txids is None) else []
            out.append(self.mine_records(records, when if n == 0 else None, coinbase_script))
        return out

    def mine_records(
        self, records: Sequence[TxRecord], when: int | None = None, coinbase_script: bytes | None = None
    ) -> Block:
        block, cb = self.build(self.state.tip, records, when, coinbase_script)
        self.connect(block, [cb, *records])
        return block

    def fund(self, script: bytes, satoshis: int, count: int, confirm: bool) -> tuple[TxRecord, ParsedTx, Block | None]:
        if satoshis < 1 or count < 1 or count > 1_000_000:
            raise MiningError("satoshis must be >= 1 and count between 1 and 1000000")
        state = self.state
        state.fund_counter += 1
        raw = funding_raw(state.fund_counter, [(satoshis, script)] * count)
        tx = parse_one(raw)
        rec = TxRecord(
            tx.txid,
            raw,
            tuple(i[0] for i in tx.inputs),
            count,
            0,
            NodeState.MEMPOOL,
            ArcStatus.UNKNOWN,
            self.clock.now(),
            "fund",
        )
        state.txs[tx.txid] = rec
        if not confirm:
            state.add_to_mempool(rec, tx)
            state.set_status(rec, ArcStatus.SEEN_ON_NETWORK)
            if state.orphan_waits:
                self.acceptor.promote_orphans(state.orphans_waiting_on(rec.txid, rec.n_out))
            return rec, tx, None
        rec.node = NodeState.REJECTED  # not in the mempool: connect() applies it in full
        block = self.mine_records([rec])
        return rec, tx, block
