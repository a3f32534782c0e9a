"""What every WoC endpoint family shares: the face's collaborators, responses, and which transactions the node shows."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from services.chainsim.chain import addresses
from services.chainsim.chain.clock import Clock
from services.chainsim.chain.mining import Miner
from services.chainsim.chain.scriptcheck import p2pkh_script
from services.chainsim.chain.state import ChainState, NodeState, TxRecord
from services.chainsim.chain.validation import NodeAcceptor
from services.chainsim.control.faults import FaultInjector
from services.chainsim.settings import ChainsimSettings

MAX_BULK = 20


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def text_response(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/plain")


class NotFound(Exception):
    pass


class BadRequest(Exception):
    pass


class WocBase:
    def __init__(
        self,
        state: ChainState,
        settings: ChainsimSettings,
        clock: Clock,
        acceptor: NodeAcceptor,
        miner: Miner,
        faults: FaultInjector,
    ) -> None:
        self.state = state
        self.settings = settings
        self.clock = clock
        self.acceptor = acceptor
        self.miner = miner
        self.faults = faults
        self.page_size = settings.woc_page_size

    def _net(self, request: web.Request) -> str:
        net = request.match_info["network"]
        return net if net in addresses.PREFIX else self.settings.network

    @staticmethod
    def _txid(request: web.Request) -> bytes:
        raw = request.match_info["txid"]
        try:
            key = bytes.fromhex(raw)[::-1]
        except ValueError as exc:
            raise NotFound from exc
        if len(key) != 32:
            raise NotFound
        return key

    def _record(self, request: web.Request) -> TxRecord:
        rec = self.state.txs.get(self._txid(request))
        if rec is None or not self._visible(rec):
            raise NotFound
        return rec

    def _visible(self, rec: TxRecord) -> bool:
        """The node (and so WoC) only knows mempool and mined transactions; mempool ones only once the
        configured indexing lag has passed."""
        if rec.node == NodeState.MEMPOOL:
            return not self._lagging(rec)
        return rec.node == NodeState.MINED and not (rec.coinbase and rec.block is None)

    def _lagging(self, rec: TxRecord) -> bool:
        lag = self.settings.woc_index_lag_ms
        return bool(lag) and (self.clock.now() - rec.first_seen) * 1000 < lag

    @staticmethod
    async def _json_body(request: web.Request, key: str) -> list[Any]:
        try:
            doc = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            raise BadRequest("invalid JSON body") from exc
        items = doc.get(key) if isinstance(doc, dict) else None
        if not isinstance(items, list):
            raise BadRequest(f"body must be an object with a {key!r} list")
        if len(items) > MAX_BULK:
            raise BadRequest(f"too many items: at most {MAX_BULK}")
        return items

    def _address_script(self, address: str) -> bytes:
        try:
            pkh, _ = addresses.decode(address)
        except addresses.AddressError as exc:
            raise BadRequest(f"invalid address: {address}") from exc
        return p2pkh_script(pkh)
