"""The WhatsOnChain face under ``/v1/bsv/{network}`` (arc-woc.md §5, §6.4): the route table over the endpoint
families, each in its own module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from services.chainsim.chain.mining import MiningError
from services.chainsim.woc.base import BadRequest, NotFound, text_response
from services.chainsim.woc.blocks import BlockEndpoints
from services.chainsim.woc.broadcast import BroadcastEndpoints
from services.chainsim.woc.spent import SpentEndpoints
from services.chainsim.woc.txs import TxEndpoints
from services.chainsim.woc.utxos import UtxoEndpoints

NETWORKS = ("main", "test", "stn")
Handler = Callable[[web.Request], Any]


class WocFace(BlockEndpoints, UtxoEndpoints, BroadcastEndpoints, TxEndpoints, SpentEndpoints):
    def routes(self) -> list[web.RouteDef]:
        b = "/v1/bsv/{network}"
        table: list[tuple[str, str, Handler]] = [
            ("GET", "/woc", self.woc),
            ("GET", "", self.woc),
            ("GET", "/chain/info", self.chain_info),
            ("GET", "/chain/tips", self.chain_tips),
            ("GET", "/block/headers", self.block_headers),
            ("GET", "/block/hash/{hash}", self.block_by_hash),
            ("GET", "/block/hash/{hash}/page/{page}", self.block_page),
            ("GET", "/block/height/{height}", self.block_by_height),
            ("GET", "/block/{id}/header", self.block_header),
            ("GET", "/address/{address}/unspent/all", self.address_unspent_all),
            ("GET", "/address/{address}/confirmed/unspent", self.address_unspent_confirmed),
            ("GET", "/address/{address}/unconfirmed/unspent", self.address_unspent_unconfirmed),
            ("GET", "/address/{address}/unspent", self.address_unspent_legacy),
            ("GET", "/address/{address}/balance", self.address_balance),
            ("GET", "/address/{address}/confirmed/balance", self.address_balance_confirmed),
            ("GET", "/address/{address}/unconfirmed/balance", self.address_balance_unconfirmed),
            ("POST", "/addresses/confirmed/unspent", self.bulk_address_confirmed),
            ("POST", "/addresses/unconfirmed/unspent", self.bulk_address_unconfirmed),
            ("GET", "/script/{script}/unspent/all", self.script_unspent_all),
            ("GET", "/script/{script}/confirmed/unspent", self.script_unspent_confirmed),
            ("GET", "/script/{script}/unconfirmed/unspent", self.script_unspent_unconfirmed),
            ("POST", "/scripts/confirmed/unspent", self.bulk_script_confirmed),
            ("POST", "/scripts/unconfirmed/unspent", self.bulk_script_unconfirmed),
            ("POST", "/tx/raw", self.post_raw),
            ("GET", "/tx/hash/{txid}", self.tx_details),
            ("GET", "/tx/{txid}/hex", self.tx_hex),
            ("GET", "/tx/{txid}/proof/tsc", self.tx_proof_tsc),
            ("GET", "/tx/{txid}/{vout}/spent", self.spent_any),
            ("GET", "/tx/{txid}/{vout}/confirmed/spent", self.spent_confirmed),
            ("GET", "/tx/{txid}/{vout}/unconfirmed/spent", self.spent_unconfirmed),
            ("GET", "/tx/{txid}", self.tx_details),
            ("POST", "/txs/hex", self.bulk_hex),
            ("POST", "/txs/status", self.bulk_status),
            ("POST", "/txs", self.bulk_details),
            ("POST", "/utxos/spent", self.bulk_spent),
            ("GET", "/mempool/info", self.mempool_info),
            ("GET", "/mempool/raw", self.mempool_raw),
            ("GET", "/faucet/send/{address}", self.faucet),
        ]
        return [web.route(method, b + path, self._wrap(handler)) for method, path, handler in table]

    def _wrap(self, handler: Handler) -> Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            if request.match_info.get("network") not in NETWORKS:
                return text_response("Not Found", 404)
            try:
                response: web.StreamResponse = await handler(request)
                return response
            except NotFound:
                return text_response("Not Found", 404)
            except BadRequest as exc:
                return text_response(str(exc) or "Bad Request", 400)

        return run

    async def woc(self, request: web.Request) -> web.Response:
        return text_response("Whats On Chain")

    async def faucet(self, request: web.Request) -> web.Response:
        script = self._address_script(request.match_info["address"])
        try:
            rec, _, _ = self.miner.fund(script, 100_000, 1, confirm=True)
        except MiningError as exc:
            raise BadRequest(str(exc)) from exc
        return text_response(rec.txid_hex)
