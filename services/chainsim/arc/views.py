"""JSON shapes shared by the ARC face and the callback sender (arc-woc.md §2.5, §2.8)."""

from __future__ import annotations

from typing import Any

from services.chainsim.chain.state import Block, TxRecord
from services.chainsim.chain.status import ArcStatus


def shown_block(rec: TxRecord) -> Block | None:
    """The block ARC reports: the chain block when MINED, the stale one when MINED_IN_STALE_BLOCK."""
    if rec.status == ArcStatus.MINED:
        return rec.block
    if rec.status == ArcStatus.MINED_IN_STALE_BLOCK:
        return rec.stale_block
    return None


def tx_status(rec: TxRecord, timestamp: str) -> dict[str, Any]:
    """``GET /v1/tx/{txid}`` body (also the core of POST results and callbacks)."""
    block = shown_block(rec)
    if block is not None:
        block_hash = block.hash_hex
        block_height = block.height
        merkle_path = block.merkle_path(rec.txid).hex()
    else:
        block_hash, block_height, merkle_path = "", 0, ""
    competing = rec.competing
    return {
        "txid": rec.txid[::-1].hex(),
        "txStatus": rec.status.name,
        "blockHash": block_hash,
        "blockHeight": block_height,
        "merklePath": merkle_path,
        "extraInfo": rec.extra_info,
        "competingTxs": None if competing is None else [t[::-1].hex() for t in competing],
        "timestamp": timestamp,
    }


def tx_response(rec: TxRecord, timestamp: str) -> dict[str, Any]:
    """A ``POST /v1/tx`` / ``/v1/txs`` success object: all keys present, status 200, title OK."""
    body = tx_status(rec, timestamp)
    body["status"] = 200
    body["title"] = "OK"
    return body


def queued_response(txid_hex: str, timestamp: str) -> dict[str, Any]:
    return {
        "txid": txid_hex,
        "txStatus": ArcStatus.QUEUED.name,
        "status": 200,
        "title": "OK",
        "blockHash": "",
        "blockHeight": 0,
        "merklePath": "",
        "extraInfo": "",
        "competingTxs": None,
        "timestamp": timestamp,
    }
