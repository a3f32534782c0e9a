"""Save the chain to disk and load it back (``CHAINSIM_SNAPSHOT``), so ``make run`` keeps its chain.

The file holds blocks, transaction records and the mempool/orphan order as JSON; the UTXO set and
all indexes are rebuilt on load by replaying the longest chain and the mempool.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from services.chainsim.chain.clock import Clock
from services.chainsim.chain.state import Block, CallbackTarget, ChainState, NodeState, TxRecord
from services.chainsim.chain.status import ArcStatus
from services.chainsim.chain.txcodec import outpoint, parse_one

FORMAT = 1


class SnapshotError(ValueError):
    """The snapshot file is unreadable or inconsistent."""


def _h(b: bytes) -> str:
    return b[::-1].hex()


def _b(h: str) -> bytes:
    return bytes.fromhex(h)[::-1]


def dump(state: ChainState, clock: Clock) -> bytes:
    blocks = sorted(state.blocks.values(), key=lambda b: b.height)
    txs: list[dict[str, Any]] = []
    for rec in state.txs.values():
        txs.append(
            {
                "raw": rec.raw.hex(),
                "fee": rec.fee,
                "node": int(rec.node),
                "status": int(rec.status),
                "extra": rec.extra_info,
                "competing": None if rec.competing is None else [_h(t) for t in rec.competing],
                "first_seen": rec.first_seen,
                "last_submitted": rec.last_submitted,
                "callbacks": [[c.url, c.token, c.batch] for c in rec.callbacks or ()],
                "full": rec.full_updates,
                "origin": rec.origin,
                "coinbase": rec.coinbase,
                "stuck": None if rec.stuck is None else int(rec.stuck),
                "stale_block": None if rec.stale_block is None else rec.stale_block.hash_hex,
            }
        )
    doc = {
        "format": FORMAT,
        "clock_offset": clock.offset_s,
        "fund_counter": state.fund_counter,
        "block_nonce": state.block_nonce,
        "blocks": [
            {
                "hash": b.hash_hex,
                "height": b.height,
                "prev": _h(b.prev),
                "time": b.time,
                "version": b.version,
                "bits": b.bits,
                "nonce": b.nonce,
                "size": b.size,
                "stale": b.stale,
                "txids": [_h(t) for t in b.txids],
            }
            for b in blocks
        ],
        "chain": [b.hash_hex for b in state.chain],
        "txs": txs,
        "mempool": [_h(t) for t in state.mempool],
        "orphans": {_h(t): exp for t, exp in state.orphans.items()},
    }
    return orjson.dumps(doc)


def save(path: Path, state: ChainState, clock: Clock) -> None:
    """Write atomically: a crash never leaves a half-written snapshot."""
    data = dump(state, clock)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load(data: bytes, state: ChainState, clock: Clock) -> None:
    """Rebuild ``state`` (already cleared) from a snapshot without firing status listeners."""
    try:
        doc = orjson.loads(data)
        if doc.get("format") != FORMAT:
            raise SnapshotError(f"unsupported snapshot format {doc.get('format')!r}")
        _load(doc, state, clock)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, SnapshotError):
            raise
        raise SnapshotError(f"corrupt snapshot: {exc}") from exc


def _load(doc: dict[str, Any], state: ChainState, clock: Clock) -> None:
    clock.offset_s = float(doc["clock_offset"])
    state.fund_counter = int(doc["fund_counter"])
    state.block_nonce = int(doc["block_nonce"])
    for item in doc["txs"]:
        raw = bytes.fromhex(item["raw"])
        tx = parse_one(raw)
        rec = TxRecord(
            tx.txid,
            raw,
            tuple(i[0] for i in tx.inputs),
            len(tx.outputs),
            int(item["fee"]),
            NodeState(item["node"]),
            ArcStatus(item["status"]),
            float(item["first_seen"]),
            str(item["origin"]),
            str(item["extra"]),
            bool(item["coinbase"]),
        )
        rec.last_submitted = float(item["last_submitted"])
        rec.competing = None if item["competing"] is None else [_b(t) for t in item["competing"]]
        rec.callbacks = [CallbackTarget(u, t, bool(b)) for u, t, b in item["callbacks"]] or None
        rec.full_updates = bool(item["full"])
        rec.stuck = None if item["stuck"] is None else ArcStatus(item["stuck"])
        state.txs[tx.txid] = rec
    stale_refs: dict[bytes, str] = {}
    for item in doc["txs"]:
        if item["stale_block"] is not None:
            stale_refs[parse_one(bytes.fromhex(item["raw"])).txid] = item["stale_block"]
    for item in doc["blocks"]:
        block = Block(
            int(item["height"]),
            _b(item["prev"]),
            [_b(t) for t in item["txids"]],
            int(item["time"]),
            int(item["version"]),
            int(item["bits"]),
            int(item["nonce"]),
            int(item["size"]),
        )
        if block.hash_hex != item["hash"]:
            raise SnapshotError(f"block {item['hash']} does not hash to itself")
        block.stale = bool(item["stale"])
        state.blocks[block.hash] = block
    for txid, block_hash in stale_refs.items():
        state.txs[txid].stale_block = state.blocks[_b(block_hash)]
    for block_hash in doc["chain"]:
        block = state.blocks[_b(block_hash)]
        state.chain.append(block)
        for txid in block.txids:
            rec = state.txs[txid]
            rec.block = block
            if not rec.coinbase:
                for op in rec.inputs:
                    state.remove_utxo(op)
                    state.block_spends[op] = txid
            for i, (value, script) in enumerate(parse_one(rec.raw).outputs):
                state.add_utxo(outpoint(txid, i), value, script, block.height, rec.coinbase)
    for txid_hex in doc["mempool"]:
        rec = state.txs[_b(txid_hex)]
        state.add_to_mempool(rec, parse_one(rec.raw))
    for txid_hex, expiry in doc["orphans"].items():
        rec = state.txs[_b(txid_hex)]
        missing = [op for op in rec.inputs if op not in state.utxos]
        state.add_orphan(rec, missing, float(expiry))
    mem = state.mempool
    for t in mem:
        rec = state.txs[t]
        rec.depth = max((state.txs[op[:32]].depth + 1 for op in rec.inputs if op[:32] in mem), default=0)
    state.changes = 0
