"""WoC ``POST /tx/raw``: broadcast to the node, answered with WoC's error texts (and injected tx faults)."""

from __future__ import annotations

import asyncio
import binascii

import orjson
from aiohttp import web

from services.chainsim.chain.state import NodeState
from services.chainsim.chain.txcodec import TxDecodeError, parse_one
from services.chainsim.chain.validation import Outcome
from services.chainsim.woc.base import WocBase, text_response


class BroadcastEndpoints(WocBase):
    def _woc_error(self, message: str) -> web.Response:
        code = self.settings.woc_error_status
        return text_response(f"unexpected response code {code}: {message}", code)

    async def post_raw(self, request: web.Request) -> web.Response:
        try:
            doc = orjson.loads(await request.read())
            txhex = doc["txhex"] if isinstance(doc, dict) else None
        except (orjson.JSONDecodeError, KeyError):
            txhex = None
        if not isinstance(txhex, str):
            return text_response("txhex is required", 400)
        try:
            tx = parse_one(binascii.unhexlify(txhex.strip()))
        except (binascii.Error, ValueError, TxDecodeError):
            return self._woc_error("16: TX decode failed")
        rule = self.faults.tx_rule("woc", tx.txid_hex) if self.faults.rules else None
        if rule is not None:
            if rule.kind == "hang":
                await asyncio.sleep(3600)
            if rule.kind == "http":
                return text_response(f"injected fault http:{rule.arg}", int(rule.arg))
            if rule.kind == "reject":
                return self._woc_error(f"16: {rule.arg or 'injected rejection'}")
            if rule.kind == "orphan":
                return self._woc_error("Missing inputs")
            if rule.kind == "double_spend":
                return self._woc_error("258: txn-mempool-conflict")
        result = self.acceptor.submit(tx, "woc", store_failures=False)
        if result.kind == Outcome.ACCEPTED:
            return text_response(tx.txid_hex)
        if result.kind == Outcome.KNOWN:
            rec = result.record
            assert rec is not None
            if rec.node == NodeState.MINED:
                return self._woc_error("257: txn-already-known")
            if rec.node == NodeState.COMPETITOR:
                return self._woc_error("258: txn-mempool-conflict")
            return self._woc_error("Transaction already in the mempool")
        if result.kind == Outcome.CONFLICT:
            return self._woc_error("258: txn-mempool-conflict")
        if result.kind == Outcome.MISSING:
            return self._woc_error("Missing inputs")
        if result.reason == "mempool min fee not met":
            return self._woc_error("66: mempool min fee not met")
        return self._woc_error(f"16: {result.reason}")
