"""WoC chain, block and mempool endpoints: ``/chain/*``, ``/block/*``, ``/mempool/info``."""

from __future__ import annotations

import statistics
from typing import Any

from aiohttp import web

from services.chainsim.chain.state import Block
from services.chainsim.woc.base import NotFound, WocBase, json_response

_DIFFICULTY = 4.656542373906925e-10


class BlockEndpoints(WocBase):
    def _block(self, ident: str) -> Block:
        if ident.isdigit():
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
        body = self._header_json(block)
        txids = [t[::-1].hex() for t in block.txids]
        body.update({"size": block.size, "txcount": len(txids), "tx": txids[:1000]})
        if len(txids) > 1000:
            pages = (len(txids) + 999) // 1000
            body["pages"] = {"size": 1000, "uri": [f"/block/hash/{block.hash_hex}/page/{i}" for i in range(1, pages)]}
        return body

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
