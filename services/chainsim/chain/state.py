"""The chain state: UTXO set, transaction records, mempool, orphans, blocks (arc-woc.md §6.1).

Memory layout is chosen for millions of UTXOs: an outpoint is its 36 wire bytes, an unspent output
is a 4-tuple, locking scripts are shared between all outputs paying the same script, and the
per-script index stores a bare outpoint until a script has a second output.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum

from services.chainsim.chain.merkle import bump, merkle_levels
from services.chainsim.chain.status import ArcStatus
from services.chainsim.chain.txcodec import ParsedTx, is_data_script, parse_one, txid_hex

# value, locking script, height (-1 = unconfirmed), created by a coinbase
Utxo = tuple[int, bytes, int, bool]
UNCONFIRMED = -1
BITS = 0x207FFFFF


class NodeState(IntEnum):
    """Where the simulated node keeps a transaction."""

    MEMPOOL = 1
    ORPHAN = 2
    COMPETITOR = 3  # lost a first-seen double spend; not in the mempool
    MINED = 4
    REJECTED = 5


@dataclass(frozen=True, slots=True)
class CallbackTarget:
    url: str
    token: str | None
    batch: bool


class Block:
    __slots__ = (
        "_index",
        "_levels",
        "bits",
        "hash",
        "height",
        "merkle_root",
        "nonce",
        "prev",
        "size",
        "stale",
        "time",
        "txids",
        "version",
    )

    def __init__(
        self,
        height: int,
        prev: bytes,
        txids: list[bytes],
        time: int,
        version: int = 0x20000000,
        bits: int = BITS,
        nonce: int = 0,
        size: int = 0,
    ) -> None:
        self.height = height
        self.prev = prev
        self.txids = txids
        self.time = time
        self.version = version
        self.bits = bits
        self.nonce = nonce
        self.size = size
        self.stale = False
        self._levels: list[list[bytes]] | None = None
        self._index: dict[bytes, int] | None = None
        self.merkle_root = self.levels()[-1][0]
        self.hash = hashlib.sha256(hashlib.sha256(self.header()).digest()).digest()

    def header(self) -> bytes:
        return b"".join(
            (
                self.version.to_bytes(4, "little"),
                self.prev,
                self.merkle_root,
                self.time.to_bytes(4, "little"),
                self.bits.to_bytes(4, "little"),
                self.nonce.to_bytes(4, "little"),
            )
        )

    def levels(self) -> list[list[bytes]]:
        if self._levels is None:
            self._levels = merkle_levels(self.txids)
        return self._levels

    def position(self, txid: bytes) -> int:
        if self._index is None:
            self._index = {t: i for i, t in enumerate(self.txids)}
        return self._index[txid]

    def merkle_path(self, txid: bytes) -> bytes:
        return bump(self.levels(), self.position(txid), self.height)

    @property
    def hash_hex(self) -> str:
        return self.hash[::-1].hex()


class TxRecord:
    """Everything chainsim knows about one transaction (node state + ARC view)."""

    __slots__ = (
        "block",
        "callbacks",
        "coinbase",
        "competing",
        "depth",
        "extra_info",
        "fee",
        "first_seen",
        "full_updates",
        "inputs",
        "last_submitted",
        "n_out",
        "node",
        "origin",
        "raw",
        "stale_block",
        "status",
        "stuck",
        "txid",
    )

    def __init__(
        self,
        txid: bytes,
        raw: bytes,
        inputs: tuple[bytes, ...],
        n_out: int,
        fee: int,
        node: NodeState,
        status: ArcStatus,
        now: float,
        origin: str,
        extra_info: str = "",
        coinbase: bool = False,
    ) -> None:
        self.txid = txid
        self.raw = raw
        self.inputs = inputs
        self.n_out = n_out
        self.fee = fee
        self.node = node
        self.status = status
        self.extra_info = extra_info
        self.competing: list[bytes] | None = None
        self.block: Block | None = None
        self.stale_block: Block | None = None
        self.first_seen = now
        self.last_submitted = now
        self.callbacks: list[CallbackTarget] | None = None
        self.full_updates = False
        self.stuck: ArcStatus | None = None
        self.origin = origin
        self.depth = 0
        self.coinbase = coinbase

    @property
    def txid_hex(self) -> str:
        return self.txid[::-1].hex()

    @property
    def size(self) -> int:
        return len(self.raw)


StatusListener = Callable[[TxRecord, ArcStatus], None]


class ChainState:
    """Indexes and primitive mutations; the acceptance/mining rules live in their own modules."""

    def __init__(self) -> None:
        self.listeners: list[StatusListener] = []
        self.clear()

    def clear(self) -> None:
        """Forget everything except the registered listeners."""
        self.utxos: dict[bytes, Utxo] = {}
        self.mempool_spends: dict[bytes, bytes] = {}  # outpoint -> spending mempool txid
        self.block_spends: dict[bytes, bytes] = {}  # outpoint -> txid that spent it in the chain
        self.by_script: dict[bytes, list[object]] = {}  # sha256(script) -> [script, op | {op: None}]
        self.txs: dict[bytes, TxRecord] = {}
        self.mempool: dict[bytes, None] = {}  # arrival order, parents before children
        self.orphans: dict[bytes, float] = {}  # txid -> expiry (clock seconds)
        self.orphan_waits: dict[bytes, set[bytes]] = {}  # missing outpoint -> orphan txids
        self.chain: list[Block] = []  # longest chain, index = height
        self.blocks: dict[bytes, Block] = {}  # every block ever built, incl. stale ones
        self.changes = 0  # bumped on every mutation, for periodic snapshots
        self.fund_counter = 0
        self.block_nonce = 0

    # ---- chain -------------------------------------------------------------------------------

    @property
    def tip(self) -> Block:
        return self.chain[-1]

    @property
    def height(self) -> int:
        return len(self.chain) - 1

    def append_block(self, block: Block) -> None:
        self.blocks[block.hash] = block
        self.chain.append(block)
        self.changes += 1

    def confirmations(self, block: Block | None) -> int:
        if block is None or block.stale:
            return 0
        return self.height - block.height + 1

    # ---- UTXO set ----------------------------------------------------------------------------

    def add_utxo(self, op: bytes, value: int, script: bytes, height: int, coinbase: bool = False) -> None:
        if is_data_script(script):
            return  # provably unspendable: nodes never index OP_RETURN outputs
        sh = hashlib.sha256(script).digest()
        bucket = self.by_script.get(sh)
        if bucket is None:
            self.by_script[sh] = [script, op]
        else:
            script = bucket[0]  # type: ignore[assignment]  # share one bytes object per script
            members = bucket[1]
            if type(members) is bytes:
                if members != op:
                    bucket[1] = {members: None, op: None}
            else:
                members[op] = None  # type: ignore[index]
        self.utxos[op] = (value, script, height, coinbase)

    def remove_utxo(self, op: bytes) -> Utxo | None:
        u = self.utxos.pop(op, None)
        if u is None:
            return None
        sh = hashlib.sha256(u[1]).digest()
        bucket = self.by_script.get(sh)
        if bucket is not None:
            members = bucket[1]
            if type(members) is bytes:
                if members == op:
                    del self.by_script[sh]
            else:
                members.pop(op, None)  # type: ignore[attr-defined]
                if not members:
                    del self.by_script[sh]
        return u

    def set_utxo_height(self, op: bytes, height: int) -> None:
        u = self.utxos.get(op)
        if u is not None:
            self.utxos[op] = (u[0], u[1], height, u[3])

    def script_outpoints(self, script_hash: bytes) -> tuple[bytes | None, list[bytes]]:
        """(script, outpoints) for a sha256 script hash; (None, []) when nothing is unspent."""
        bucket = self.by_script.get(script_hash)
        if bucket is None:
            return None, []
        script = bucket[0]
        members = bucket[1]
        assert isinstance(script, bytes)
        if type(members) is bytes:
            return script, [members]
        assert isinstance(members, dict)
        return script, list(members)

    def output_of(self, op: bytes) -> tuple[int, bytes] | None:
        """Value and script of an outpoint, spent or not, when its transaction is known."""
        u = self.utxos.get(op)
        if u is not None:
            return u[0], u[1]
        rec = self.txs.get(op[:32])
        if rec is None:
            return None
        vout = int.from_bytes(op[32:], "little")
        outs = parse_one(rec.raw).outputs
        if vout >= len(outs):
            return None
        return outs[vout]

    # ---- mempool -----------------------------------------------------------------------------

    def add_to_mempool(self, rec: TxRecord, tx: ParsedTx) -> None:
        txid = rec.txid
        spends = self.mempool_spends
        for op in rec.inputs:
            spends[op] = txid
        add = self.add_utxo
        for i, (value, script) in enumerate(tx.outputs):
            add(txid + i.to_bytes(4, "little"), value, script, UNCONFIRMED)
        self.mempool[txid] = None
        rec.node = NodeState.MEMPOOL
        self.changes += 1

    def remove_from_mempool(self, rec: TxRecord) -> None:
        """Undo ``add_to_mempool`` (the caller removes descendants first)."""
        for op in rec.inputs:
            if self.mempool_spends.get(op) == rec.txid:
                del self.mempool_spends[op]
        for i in range(rec.n_out):
            self.remove_utxo(rec.txid + i.to_bytes(4, "little"))
        self.mempool.pop(rec.txid, None)
        self.changes += 1

    def mempool_children(self, rec: TxRecord) -> list[TxRecord]:
        out: list[TxRecord] = []
        seen: set[bytes] = set()
        for i in range(rec.n_out):
            spender = self.mempool_spends.get(rec.txid + i.to_bytes(4, "little"))
            if spender is not None and spender not in seen:
                seen.add(spender)
                out.append(self.txs[spender])
        return out

    def descendants(self, rec: TxRecord) -> list[TxRecord]:
        """Mempool descendants of ``rec`` in an order that lists children after parents."""
        order: list[TxRecord] = []
        seen: set[bytes] = set()
        stack = self.mempool_children(rec)
        while stack:
            child = stack.pop()
            if child.txid in seen:
                continue
            seen.add(child.txid)
            order.append(child)
            stack.extend(self.mempool_children(child))
        if len(order) > 1:
            rank = {t: i for i, t in enumerate(self.mempool)}
            order.sort(key=lambda r: rank.get(r.txid, -1))
        return order

    def mempool_records(self) -> Iterator[TxRecord]:
        txs = self.txs
        for t in list(self.mempool):
            yield txs[t]

    # ---- orphans -----------------------------------------------------------------------------

    def add_orphan(self, rec: TxRecord, missing: list[bytes], expiry: float) -> None:
        rec.node = NodeState.ORPHAN
        self.orphans[rec.txid] = expiry
        for op in missing:
            self.orphan_waits.setdefault(op, set()).add(rec.txid)
        self.changes += 1

    def drop_orphan(self, rec: TxRecord) -> None:
        self.orphans.pop(rec.txid, None)
        for op in rec.inputs:
            waiting = self.orphan_waits.get(op)
            if waiting is not None:
                waiting.discard(rec.txid)
                if not waiting:
                    del self.orphan_waits[op]
        self.changes += 1

    def orphans_waiting_on(self, txid: bytes, n_out: int) -> list[bytes]:
        if not self.orphan_waits:
            return []
        found: list[bytes] = []
        for i in range(n_out):
            waiting = self.orphan_waits.get(txid + i.to_bytes(4, "little"))
            if waiting:
                found.extend(waiting)
        return found

    # ---- statuses ----------------------------------------------------------------------------

    def set_status(
        self,
        rec: TxRecord,
        status: ArcStatus,
        extra_info: str | None = None,
        *,
        force: bool = False,
    ) -> bool:
        """Move ``rec`` to ``status`` (forward only unless ``force``); notify listeners on change."""
        old = rec.status
        if force:
            rec.stuck = None
        elif rec.stuck is not None:
            status = min(status, rec.stuck, key=int)
            if status <= old:
                return False
        elif status < old:
            return False
        if extra_info is not None:
            rec.extra_info = extra_info
        if status == old and extra_info is None:
            return False
        rec.status = status
        self.changes += 1
        for listener in self.listeners:
            listener(rec, old)
        return True

    def add_competitor(self, rec: TxRecord, other: bytes) -> None:
        if rec.competing is None:
            rec.competing = []
        if other not in rec.competing:
            rec.competing.append(other)

    def describe(self) -> dict[str, object]:
        return {
            "height": self.height,
            "tip": self.tip.hash_hex if self.chain else None,
            "mempool": len(self.mempool),
            "orphans": len(self.orphans),
            "competitors": sum(1 for r in self.txs.values() if r.node == NodeState.COMPETITOR),
            "utxos": len(self.utxos),
            "transactions": len(self.txs),
            "blocks": len(self.chain),
            "stale_blocks": sum(1 for b in self.blocks.values() if b.stale),
        }


def display(txid: bytes) -> str:
    return txid_hex(txid)
