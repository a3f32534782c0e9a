"""WoC transaction lookups: details, hex, TSC proof, and their bulk forms (``/tx/*``, ``/txs*``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.chainsim.chain import addresses
from services.chainsim.chain.scriptcheck import is_p2pkh
from services.chainsim.chain.state import NodeState, TxRecord
from services.chainsim.chain.txcodec import is_data_script, parse_one
from services.chainsim.woc.base import NotFound, WocBase, json_response, text_response


class TxEndpoints(WocBase):
    def _details(self, rec: TxRecord, network: str) -> dict[str, Any]:
        from bsv import Script

        tx = parse_one(rec.raw)
        vin: list[dict[str, Any]] = []
        for op, script, seq in tx.inputs:
            if rec.coinbase:
                vin.append({"coinbase": script.hex(), "sequence": seq})
                continue
            vin.append(
                {
                    "txid": op[31::-1].hex(),
                    "vout": int.from_bytes(op[32:], "little"),
                    "scriptSig": {"asm": Script(script).to_asm(), "hex": script.hex()},
                    "sequence": seq,
                }
            )
        vout: list[dict[str, Any]] = []
        for n, (value, script) in enumerate(tx.outputs):
            spk: dict[str, Any] = {"asm": Script(script).to_asm(), "hex": script.hex(), "isTruncated": False}
            if is_p2pkh(script):
                spk.update(reqSigs=1, type="pubkeyhash", addresses=[addresses.encode(script[3:23], network)])
            elif is_data_script(script):
                spk.update(type="nulldata", opReturn=None)
            else:
                spk.update(type="nonstandard")
            vout.append({"value": value / 1e8, "n": n, "scriptPubKey": spk})
        body: dict[str, Any] = {
            "txid": rec.txid_hex,
            "hash": rec.txid_hex,
            "version": tx.version,
            "size": len(rec.raw),
            "locktime": tx.locktime,
            "vin": vin,
            "vout": vout,
        }
        block = rec.block if rec.node == NodeState.MINED else None
        if block is not None:
            body.update(
                blockhash=block.hash_hex,
                blockheight=block.height,
                confirmations=self.state.confirmations(block),
                time=block.time,
                blocktime=block.time,
            )
        return body

    async def tx_details(self, request: web.Request) -> web.Response:
        return json_response(self._details(self._record(request), self._net(request)))

    async def tx_hex(self, request: web.Request) -> web.Response:
        return text_response(self._record(request).raw.hex())

    async def tx_proof_tsc(self, request: web.Request) -> web.Response:
        rec = self._record(request)
        block = rec.block
        if block is None:
            raise NotFound
        levels = block.levels()
        index = block.position(rec.txid)
        nodes: list[str] = []
        for h in range(len(levels) - 1):
            sib = (index >> h) ^ 1
            nodes.append(levels[h][sib][::-1].hex() if sib < len(levels[h]) else "*")
        return json_response([{"index": index, "txOrId": rec.txid_hex, "target": block.hash_hex, "nodes": nodes}])

    def _bulk_ids(self, items: list[Any]) -> list[tuple[str, TxRecord | None]]:
        out: list[tuple[str, TxRecord | None]] = []
        for item in items:
            txid = str(item)
            try:
                key = bytes.fromhex(txid)[::-1]
            except ValueError:
                key = b""
            rec = self.state.txs.get(key)
            out.append((txid, rec if rec is not None and self._visible(rec) else None))
        return out

    def _block_fields(self, rec: TxRecord) -> dict[str, Any]:
        block = rec.block if rec.node == NodeState.MINED else None
        if block is None:
            return {}
        return {
            "blockhash": block.hash_hex,
            "blockheight": block.height,
            "blocktime": block.time,
            "confirmations": self.state.confirmations(block),
        }

    async def bulk_status(self, request: web.Request) -> web.Response:
        out: list[dict[str, Any]] = []
        for txid, rec in self._bulk_ids(await self._json_body(request, "txids")):
            if rec is None:
                out.append({"txid": txid, "error": "unknown"})
            else:
                out.append({"txid": txid, **self._block_fields(rec)})
        return json_response(out)

    async def bulk_hex(self, request: web.Request) -> web.Response:
        out: list[dict[str, Any]] = []
        for txid, rec in self._bulk_ids(await self._json_body(request, "txids")):
            if rec is None:
                out.append({"txid": txid, "error": "unknown"})
            else:
                out.append({"txid": txid, "hex": rec.raw.hex(), **self._block_fields(rec)})
        return json_response(out)

    async def bulk_details(self, request: web.Request) -> web.Response:
        net = self._net(request)
        out: list[dict[str, Any]] = []
        for txid, rec in self._bulk_ids(await self._json_body(request, "txids")):
            out.append({"txid": txid, "error": "unknown"} if rec is None else self._details(rec, net))
        return json_response(out)
