"""WoC UTXO lists and balances by address or script hash, single and bulk (``/address*``, ``/script*``)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

import orjson
from aiohttp import web

from services.chainsim.chain.state import Utxo
from services.chainsim.woc.base import BadRequest, WocBase, json_response


class UtxoEndpoints(WocBase):
    def _script_hash(self, given: str) -> bytes:
        try:
            raw = bytes.fromhex(given)
        except ValueError as exc:
            raise BadRequest("invalid script hash") from exc
        if len(raw) != 32:
            raise BadRequest("invalid script hash")
        if raw in self.state.by_script or raw[::-1] not in self.state.by_script:
            return raw
        return raw[::-1]  # accept the reversed (Electrum-style) order too

    def _entries(self, script_hash: bytes, mode: str) -> list[tuple[bytes, Utxo]]:
        _, ops = self.state.script_outpoints(script_hash)
        utxos = self.state.utxos
        entries = [(op, utxos[op]) for op in ops]
        confirmed = [e for e in entries if e[1][2] >= 0] if mode != "unconfirmed" else []
        confirmed.sort(key=lambda e: e[1][2])
        unconfirmed = [e for e in entries if e[1][2] < 0] if mode != "confirmed" else []
        if unconfirmed and self.settings.woc_index_lag_ms:
            txs = self.state.txs
            unconfirmed = [e for e in unconfirmed if not self._lagging(txs[e[0][:32]])]
        return confirmed + unconfirmed

    def _entry_json(self, op: bytes, u: Utxo, with_hex: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {}
        confirmed = u[2] >= 0
        if confirmed:
            out["height"] = u[2]
        out["tx_pos"] = int.from_bytes(op[32:], "little")
        out["tx_hash"] = op[31::-1].hex()
        out["value"] = u[0]
        out["isSpentInMempoolTx"] = op in self.state.mempool_spends
        out["status"] = "confirmed" if confirmed else "unconfirmed"
        if not confirmed and with_hex:
            out["hex"] = u[1].hex()
        return out

    def _page(
        self, request: web.Request, entries: list[tuple[bytes, Utxo]]
    ) -> tuple[list[tuple[bytes, Utxo]], str | None]:
        offset = 0
        token = request.query.get("token")
        if token:
            try:
                offset = int(orjson.loads(base64.urlsafe_b64decode(token.encode()))["o"])
            except (ValueError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
                raise BadRequest("invalid token") from exc
        end = offset + self.page_size
        nxt = None
        if end < len(entries):
            nxt = base64.urlsafe_b64encode(orjson.dumps({"o": end})).decode()
        return entries[offset:end], nxt

    def _listing(self, request: web.Request, script_hash: bytes, mode: str, head: dict[str, Any]) -> web.Response:
        page, nxt = self._page(request, self._entries(script_hash, mode))
        body = {**head, "result": [self._entry_json(op, u) for op, u in page], "error": ""}
        if nxt is not None:
            body["nextPageToken"] = nxt
        return json_response(body)

    def _address_listing(self, request: web.Request, mode: str) -> web.Response:
        address = request.match_info["address"]
        script = self._address_script(address)
        sh = hashlib.sha256(script).digest()
        return self._listing(request, sh, mode, {"address": address, "script": sh.hex()})

    async def address_unspent_all(self, request: web.Request) -> web.Response:
        return self._address_listing(request, "all")

    async def address_unspent_confirmed(self, request: web.Request) -> web.Response:
        return self._address_listing(request, "confirmed")

    async def address_unspent_unconfirmed(self, request: web.Request) -> web.Response:
        return self._address_listing(request, "unconfirmed")

    async def address_unspent_legacy(self, request: web.Request) -> web.Response:
        script = self._address_script(request.match_info["address"])
        entries = self._entries(hashlib.sha256(script).digest(), "all")
        return json_response(
            [
                {
                    "height": max(u[2], 0),
                    "tx_pos": int.from_bytes(op[32:], "little"),
                    "tx_hash": op[31::-1].hex(),
                    "value": u[0],
                }
                for op, u in entries
            ]
        )

    def _script_listing(self, request: web.Request, mode: str) -> web.Response:
        given = request.match_info["script"]
        return self._listing(request, self._script_hash(given), mode, {"script": given})

    async def script_unspent_all(self, request: web.Request) -> web.Response:
        return self._script_listing(request, "all")

    async def script_unspent_confirmed(self, request: web.Request) -> web.Response:
        return self._script_listing(request, "confirmed")

    async def script_unspent_unconfirmed(self, request: web.Request) -> web.Response:
        return self._script_listing(request, "unconfirmed")

    async def _bulk_listing(self, request: web.Request, key: str, mode: str) -> web.Response:
        items = await self._json_body(request, key)
        out: list[dict[str, Any]] = []
        for item in items:
            name = "address" if key == "addresses" else "script"
            try:
                if key == "addresses":
                    sh = hashlib.sha256(self._address_script(str(item))).digest()
                else:
                    sh = self._script_hash(str(item))
            except BadRequest as exc:
                out.append({name: item, "unspent": [], "error": str(exc)})
                continue
            entries = self._entries(sh, mode)
            unspent = []
            for op, u in entries:
                e = self._entry_json(op, u)
                e.pop("status", None)
                unspent.append(e)
            out.append({name: item, "unspent": unspent, "error": ""})
        return json_response(out)

    async def bulk_address_confirmed(self, request: web.Request) -> web.Response:
        return await self._bulk_listing(request, "addresses", "confirmed")

    async def bulk_address_unconfirmed(self, request: web.Request) -> web.Response:
        return await self._bulk_listing(request, "addresses", "unconfirmed")

    async def bulk_script_confirmed(self, request: web.Request) -> web.Response:
        return await self._bulk_listing(request, "scripts", "confirmed")

    async def bulk_script_unconfirmed(self, request: web.Request) -> web.Response:
        return await self._bulk_listing(request, "scripts", "unconfirmed")

    def _balance(self, request: web.Request) -> tuple[str, bytes, int, int]:
        address = request.match_info["address"]
        sh = hashlib.sha256(self._address_script(address)).digest()
        confirmed = 0
        unconfirmed = 0
        spends = self.state.mempool_spends
        for op, u in self._entries(sh, "all"):
            if u[2] >= 0:
                confirmed += u[0]
            else:
                unconfirmed += u[0]
            if op in spends:
                unconfirmed -= u[0]
        return address, sh, confirmed, unconfirmed

    async def address_balance(self, request: web.Request) -> web.Response:
        _, _, confirmed, unconfirmed = self._balance(request)
        return json_response({"confirmed": confirmed, "unconfirmed": unconfirmed})

    async def address_balance_confirmed(self, request: web.Request) -> web.Response:
        address, sh, confirmed, _ = self._balance(request)
        return json_response({"address": address, "script": sh.hex(), "confirmed": confirmed, "error": ""})

    async def address_balance_unconfirmed(self, request: web.Request) -> web.Response:
        address, sh, _, unconfirmed = self._balance(request)
        return json_response({"address": address, "script": sh.hex(), "unconfirmed": unconfirmed, "error": ""})
