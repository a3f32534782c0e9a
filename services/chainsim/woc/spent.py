"""WoC spent-output lookups: ``/tx/{txid}/{vout}/*spent`` and ``POST /utxos/spent``.

Public WoC docs ("(Un)Spent Transaction Outputs"): single lookups answer {"txid", "vin", "status"}, 404 when the
output is known and unspent, 400 when it is unknown; the bulk lookup (at most 20) answers
[{"utxo": {"txid", "vout"}, "spentIn": {...} | null, "error": ""}] in request order.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.chainsim.woc.base import BadRequest, NotFound, WocBase, json_response


class SpentEndpoints(WocBase):
    def _outpoint_known(self, op: bytes) -> bool:
        rec = self.state.txs.get(op[:32])
        if rec is None or not self._visible(rec):
            return False
        return int.from_bytes(op[32:], "little") < rec.n_out

    def _spender(self, op: bytes, mode: str) -> dict[str, Any] | None:
        """Who spends ``op`` in the mempool ("unconfirmed") or the longest chain ("confirmed")."""
        if mode in ("any", "unconfirmed"):
            spender = self.state.mempool_spends.get(op)
            if spender is not None:
                rec = self.state.txs[spender]
                if not self._lagging(rec):
                    return {"txid": rec.txid_hex, "vin": rec.inputs.index(op), "status": "unconfirmed"}
        if mode in ("any", "confirmed"):
            spender = self.state.block_spends.get(op)
            if spender is not None:
                rec = self.state.txs[spender]
                return {"txid": rec.txid_hex, "vin": rec.inputs.index(op), "status": "confirmed"}
        return None

    async def _spent(self, request: web.Request, mode: str) -> web.Response:
        txid = self._txid(request)
        vout = request.match_info["vout"]
        if not vout.isdigit() or int(vout) > 0xFFFFFFFF:
            raise NotFound
        op = txid + int(vout).to_bytes(4, "little")
        if not self._outpoint_known(op):
            raise BadRequest("unknown utxo")
        found = self._spender(op, mode)
        if found is None:
            raise NotFound
        return json_response(found)

    async def spent_any(self, request: web.Request) -> web.Response:
        return await self._spent(request, "any")

    async def spent_confirmed(self, request: web.Request) -> web.Response:
        return await self._spent(request, "confirmed")

    async def spent_unconfirmed(self, request: web.Request) -> web.Response:
        return await self._spent(request, "unconfirmed")

    async def bulk_spent(self, request: web.Request) -> web.Response:
        items = await self._json_body(request, "utxos")
        asked: list[tuple[str, int, bytes | None]] = []
        for item in items:
            vout = item.get("vout") if isinstance(item, dict) else None
            txid = item.get("txid") if isinstance(item, dict) else None
            if not isinstance(txid, str) or not isinstance(vout, int) or isinstance(vout, bool):
                raise BadRequest("each utxo needs a txid (hex string) and a vout (integer)")
            try:
                key = bytes.fromhex(txid)[::-1]
            except ValueError:
                key = b""
            valid = len(key) == 32 and 0 <= vout <= 0xFFFFFFFF
            asked.append((txid, vout, key + vout.to_bytes(4, "little") if valid else None))
        out: list[dict[str, Any]] = []
        for txid, vout, op in asked:
            known = op is not None and self._outpoint_known(op)
            spent = self._spender(op, "any") if op is not None and known else None
            out.append(
                {
                    "utxo": {"txid": txid, "vout": vout},
                    "spentIn": spent,
                    "error": "" if known else "unknown",
                }
            )
        return json_response(out)
