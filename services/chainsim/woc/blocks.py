"""WoC chain, block and mempool endpoints: ``/chain/*``, ``/block/*``, ``/mempool/info``, ``/mempool/raw``."""

from __future__ import annotations

import statistics
from typing import Any

from aiohttp import web

from services.chainsim.chain.state import Block
from services.chainsim.woc.base import NotFound, WocBase, json_response

_DIFFICULTY = 4.656542373906925e-10
# WhatsOnChain lists every txid of a block up to this many transactions, else the first _TX_PREVIEW
# plus page links (docs.taal.com/core-products/whatsonchain/block).
_FULL_TX_LIST = 1000
_TX_PREVIEW = 100


class BlockEndpoints(WocBase):
    def _block(self, ident: str) -> Block:
        if ident.isdigit() and len(ident) != 64:  # a height; a hash has 64 digits
            height = int(ident)
            if height > self.state.height:
                raise NotFound
            return self.state.chain[height]
        try:
            key = bytes.fromhex(ident)[::-1]
        except ValueError as exc:
            raise NotFound from exc
        block = self.state.blocks.get(key)
        if block is None:
            raise NotFound
        return block

    def _chainwork(self, height: int) -> str:
        return f"{2 * (height + 1):064x}"

    def _median_time(self, block: Block) -> int:
        if block.stale:
            return block.time
        start = max(0, block.height - 10)
        return int(statistics.median(b.time for b in self.state.chain[start : block.height + 1]))

    def _header_json(self, block: Block) -> dict[str, Any]:
        chain = self.state.chain
        nxt = None
        if not block.stale and block.height + 1 < len(chain):
            nxt = chain[block.height + 1].hash_hex
        return {
            "hash": block.hash_hex,
            "confirmations": -1 if block.stale else self.state.height - block.height + 1,
            "height": block.height,
            "version": block.version,
            "versionHex": f"{block.version:08x}",
            "merkleroot": block.merkle_root[::-1].hex(),
            "time": block.time,
            "mediantime": self._median_time(block),
            "nonce": block.nonce,
            "bits": f"{block.bits:08x}",
            "difficulty": _DIFFICULTY,
            "chainwork": self._chainwork(block.height),
            "previousblockhash": block.prev[::-1].hex() if block.height else None,
            "nextblockhash": nxt,
            "nTx": len(block.txids),
            "num_tx": len(block.txids),
        }

    # ---- basics ------------------------------------------------------------------------------
    async def chain_info(self, request: web.Request) -> web.Response:
        tip = self.state.tip
        return json_response(
            {
                "chain": self.settings.network,
                "blocks": tip.height,
                "headers": tip.height,
                "bestblockhash": tip.hash_hex,
                "difficulty": _DIFFICULTY,
                "mediantime": self._median_time(tip),
                "verificationprogress": 1,
                "pruned": False,
                "chainwork": self._chainwork(tip.height),
            }
        )

    async def chain_tips(self, request: web.Request) -> web.Response:
        tips: list[dict[str, Any]] = [
            {"height": self.state.height, "hash": self.state.tip.hash_hex, "branchlen": 0, "status": "active"}
        ]
        stale = [b for b in self.state.blocks.values() if b.stale]
        parents = {b.prev for b in stale}
        for block in stale:
            if block.hash in parents:
                continue
            length = 0
            cursor: Block | None = block
            while cursor is not None and cursor.stale:
                length += 1
                cursor = self.state.blocks.get(cursor.prev)
            tips.append({"height": block.height, "hash": block.hash_hex, "branchlen": length, "status": "valid-fork"})
        return json_response(tips)

    async def block_headers(self, request: web.Request) -> web.Response:
        chain = self.state.chain
        return json_response([self._header_json(b) for b in reversed(chain[-10:])])

    async def block_header(self, request: web.Request) -> web.Response:
        return json_response(self._header_json(self._block(request.match_info["id"])))

    def _block_details(self, block: Block) -> dict[str, Any]:
        """``GET /block/hash/{hash}`` and ``/block/height/{height}`` as WhatsOnChain answers them
        (docs.taal.com/core-products/whatsonchain/block, "Get by Hash"): every txid when the block
        has at most 1000 transactions; above that only the first 100 in ``tx`` and a ``pages``
        object whose ``uri`` list names every page of ``size`` txids (go-whatsonchain's recorded
        answer for block 604,648: 2,417 txs, 100 in ``tx``, ``{"uri": [".../page/1"], "size":
        50000}``). Blocks at most 1000 txs long carry no ``pages``."""
        body = self._header_json(block)
        count = len(block.txids)
        shown = block.txids if count <= _FULL_TX_LIST else block.txids[:_TX_PREVIEW]
        body.update({"size": block.size, "txcount": count, "tx": [t[::-1].hex() for t in shown]})
        if count > _FULL_TX_LIST:
            size = self.settings.woc_block_page_size
            pages = (count + size - 1) // size
            body["pages"] = {
                "size": size,
                "uri": [f"/block/hash/{block.hash_hex}/page/{n}" for n in range(1, pages + 1)],
            }
        return body

    async def block_page(self, request: web.Request) -> web.Response:
        """``GET /block/hash/{hash}/page/{page}``: a bare JSON array of the txids of page ``page``
        (1-based; page n holds block positions ``(n - 1) * size`` to ``n * size - 1``, in block
        order), as go-whatsonchain's ``GetBlockPages`` reads it. Unknown blocks and pages past the
        last are 404."""
        ident = request.match_info["hash"]
        page = request.match_info["page"]
        if len(ident) != 64 or not page.isdigit() or int(page) < 1:
            raise NotFound
        block = self._block(ident)
        size = self.settings.woc_block_page_size
        start = (int(page) - 1) * size
        if start >= len(block.txids):
            raise NotFound
        return json_response([t[::-1].hex() for t in block.txids[start : start + size]])

    async def block_by_hash(self, request: web.Request) -> web.Response:
        return json_response(self._block_details(self._block(request.match_info["hash"])))

    async def block_by_height(self, request: web.Request) -> web.Response:
        ident = request.match_info["height"]
        if not ident.isdigit():
            raise NotFound
        return json_response(self._block_details(self._block(ident)))

    async def mempool_info(self, request: web.Request) -> web.Response:
        size = sum(self.state.txs[t].size for t in self.state.mempool)
        return json_response(
            {
                "size": len(self.state.mempool),
                "bytes": size,
                "usage": size,
                "maxmempool": 64_000_000_000,
                "mempoolminfee": self.settings.node_fee_sat_per_kb / 1e8,
            }
        )

    async def mempool_raw(self, request: web.Request) -> web.Response:
        """``GET /mempool/raw``: a bare JSON array of the mempool's txids (docs.taal.com/core-products/
        whatsonchain/mempool, "Get Mempool Transactions"; go-whatsonchain ``GetMempoolTransactions``
        reads ``[]string``), in arrival order, fresh ones hidden during the indexing lag."""
        txs = self.state.txs
        visible = self._visible
        return json_response([t[::-1].hex() for t in self.state.mempool if visible(txs[t])])
