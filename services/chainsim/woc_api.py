"""The WhatsOnChain face under ``/v1/bsv/{network}`` (arc-woc.md §5, §6.4)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import statistics
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from services.chainsim import addresses
from services.chainsim.clock import Clock
from services.chainsim.faults import FaultInjector
from services.chainsim.mining import Miner, MiningError
from services.chainsim.scriptcheck import is_p2pkh, p2pkh_script
from services.chainsim.settings import Settings
from services.chainsim.state import Block, ChainState, NodeState, TxRecord, Utxo
from services.chainsim.txcodec import TxDecodeError, is_data_script, parse_one
from services.chainsim.validation import NodeAcceptor, Outcome

NETWORKS = ("main", "test", "stn")
MAX_BULK = 20
_DIFFICULTY = 4.656542373906925e-10
Handler = Callable[[web.Request], Any]


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _text(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/plain")


class _NotFound(Exception):
    pass


class _BadRequest(Exception):
    pass


class WocFace:
    def __init__(
        self,
        state: ChainState,
        settings: Settings,
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

    def routes(self) -> list[web.RouteDef]:
        b = "/v1/bsv/{network}"
        table: list[tuple[str, str, Handler]] = [
            ("GET", "/woc", self.woc),
            ("GET", "", self.woc),
            ("GET", "/chain/info", self.chain_info),
            ("GET", "/chain/tips", self.chain_tips),
            ("GET", "/block/headers", self.block_headers),
            ("GET", "/block/hash/{hash}", self.block_by_hash),
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
            ("GET", "/faucet/send/{address}", self.faucet),
        ]
        return [web.route(method, b + path, self._wrap(handler)) for method, path, handler in table]

    def _wrap(self, handler: Handler) -> Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            if request.match_info.get("network") not in NETWORKS:
                return _text("Not Found", 404)
            try:
                response: web.StreamResponse = await handler(request)
                return response
            except _NotFound:
                return _text("Not Found", 404)
            except _BadRequest as exc:
                return _text(str(exc) or "Bad Request", 400)

        return run

    # ---- helpers -----------------------------------------------------------------------------

    def _net(self, request: web.Request) -> str:
        net = request.match_info["network"]
        return net if net in addresses.PREFIX else self.settings.network

    @staticmethod
    def _txid(request: web.Request) -> bytes:
        raw = request.match_info["txid"]
        try:
            key = bytes.fromhex(raw)[::-1]
        except ValueError as exc:
            raise _NotFound from exc
        if len(key) != 32:
            raise _NotFound
        return key

    def _record(self, request: web.Request) -> TxRecord:
        rec = self.state.txs.get(self._txid(request))
        if rec is None or not self._visible(rec):
            raise _NotFound
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
            raise _BadRequest("invalid JSON body") from exc
        items = doc.get(key) if isinstance(doc, dict) else None
        if not isinstance(items, list):
            raise _BadRequest(f"body must be an object with a {key!r} list")
        if len(items) > MAX_BULK:
            raise _BadRequest(f"too many items: at most {MAX_BULK}")
        return items

    def _block(self, ident: str) -> Block:
        if ident.isdigit():
            height = int(ident)
            if height > self.state.height:
                raise _NotFound
            return self.state.chain[height]
        try:
            key = bytes.fromhex(ident)[::-1]
        except ValueError as exc:
            raise _NotFound from exc
        block = self.state.blocks.get(key)
        if block is None:
            raise _NotFound
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

    async def woc(self, request: web.Request) -> web.Response:
        return _text("Whats On Chain")

    async def chain_info(self, request: web.Request) -> web.Response:
        tip = self.state.tip
        return _json(
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
        return _json(tips)

    async def block_headers(self, request: web.Request) -> web.Response:
        chain = self.state.chain
        return _json([self._header_json(b) for b in reversed(chain[-10:])])

    async def block_header(self, request: web.Request) -> web.Response:
        return _json(self._header_json(self._block(request.match_info["id"])))

    def _block_details(self, block: Block) -> dict[str, Any]:
        body = self._header_json(block)
        txids = [t[::-1].hex() for t in block.txids]
        body.update({"size": block.size, "txcount": len(txids), "tx": txids[:1000]})
        if len(txids) > 1000:
            pages = (len(txids) + 999) // 1000
            body["pages"] = {"size": 1000, "uri": [f"/block/hash/{block.hash_hex}/page/{i}" for i in range(1, pages)]}
        return body

    async def block_by_hash(self, request: web.Request) -> web.Response:
        return _json(self._block_details(self._block(request.match_info["hash"])))

    async def block_by_height(self, request: web.Request) -> web.Response:
        ident = request.match_info["height"]
        if not ident.isdigit():
            raise _NotFound
        return _json(self._block_details(self._block(ident)))

    async def mempool_info(self, request: web.Request) -> web.Response:
        size = sum(self.state.txs[t].size for t in self.state.mempool)
        return _json(
            {
                "size": len(self.state.mempool),
                "bytes": size,
                "usage": size,
                "maxmempool": 64_000_000_000,
                "mempoolminfee": self.settings.node_fee_sat_per_kb / 1e8,
            }
        )

    # ---- UTXO lists --------------------------------------------------------------------------

    def _address_script(self, address: str) -> bytes:
        try:
            pkh, _ = addresses.decode(address)
        except addresses.AddressError as exc:
            raise _BadRequest(f"invalid address: {address}") from exc
        return p2pkh_script(pkh)

    def _script_hash(self, given: str) -> bytes:
        try:
            raw = bytes.fromhex(given)
        except ValueError as exc:
            raise _BadRequest("invalid script hash") from exc
        if len(raw) != 32:
            raise _BadRequest("invalid script hash")
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
                raise _BadRequest("invalid token") from exc
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
        return _json(body)

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
        return _json(
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
            except _BadRequest as exc:
                out.append({name: item, "unspent": [], "error": str(exc)})
                continue
            entries = self._entries(sh, mode)
            unspent = []
            for op, u in entries:
                e = self._entry_json(op, u)
                e.pop("status", None)
                unspent.append(e)
            out.append({name: item, "unspent": unspent, "error": ""})
        return _json(out)

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
        return _json({"confirmed": confirmed, "unconfirmed": unconfirmed})

    async def address_balance_confirmed(self, request: web.Request) -> web.Response:
        address, sh, confirmed, _ = self._balance(request)
        return _json({"address": address, "script": sh.hex(), "confirmed": confirmed, "error": ""})

    async def address_balance_unconfirmed(self, request: web.Request) -> web.Response:
        address, sh, _, unconfirmed = self._balance(request)
        return _json({"address": address, "script": sh.hex(), "unconfirmed": unconfirmed, "error": ""})

    # ---- broadcast ---------------------------------------------------------------------------

    def _woc_error(self, message: str) -> web.Response:
        code = self.settings.woc_error_status
        return _text(f"unexpected response code {code}: {message}", code)

    async def post_raw(self, request: web.Request) -> web.Response:
        try:
            doc = orjson.loads(await request.read())
            txhex = doc["txhex"] if isinstance(doc, dict) else None
        except (orjson.JSONDecodeError, KeyError):
            txhex = None
        if not isinstance(txhex, str):
            return _text("txhex is required", 400)
        try:
            tx = parse_one(binascii.unhexlify(txhex.strip()))
        except (binascii.Error, ValueError, TxDecodeError):
            return self._woc_error("16: TX decode failed")
        rule = self.faults.tx_rule("woc", tx.txid_hex) if self.faults.rules else None
        if rule is not None:
            if rule.kind == "hang":
                await asyncio.sleep(3600)
            if rule.kind == "http":
                return _text(f"injected fault http:{rule.arg}", int(rule.arg))
            if rule.kind == "reject":
                return self._woc_error(f"16: {rule.arg or 'injected rejection'}")
            if rule.kind == "orphan":
                return self._woc_error("Missing inputs")
            if rule.kind == "double_spend":
                return self._woc_error("258: txn-mempool-conflict")
        result = self.acceptor.submit(tx, "woc", store_failures=False)
        if result.kind == Outcome.ACCEPTED:
            return _text(tx.txid_hex)
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

    # ---- transactions ------------------------------------------------------------------------

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
        return _json(self._details(self._record(request), self._net(request)))

    async def tx_hex(self, request: web.Request) -> web.Response:
        return _text(self._record(request).raw.hex())

    async def tx_proof_tsc(self, request: web.Request) -> web.Response:
        rec = self._record(request)
        block = rec.block
        if block is None:
            raise _NotFound
        levels = block.levels()
        index = block.position(rec.txid)
        nodes: list[str] = []
        for h in range(len(levels) - 1):
            sib = (index >> h) ^ 1
            nodes.append(levels[h][sib][::-1].hex() if sib < len(levels[h]) else "*")
        return _json([{"index": index, "txOrId": rec.txid_hex, "target": block.hash_hex, "nodes": nodes}])

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
        return _json(out)

    async def bulk_hex(self, request: web.Request) -> web.Response:
        out: list[dict[str, Any]] = []
        for txid, rec in self._bulk_ids(await self._json_body(request, "txids")):
            if rec is None:
                out.append({"txid": txid, "error": "unknown"})
            else:
                out.append({"txid": txid, "hex": rec.raw.hex(), **self._block_fields(rec)})
        return _json(out)

    async def bulk_details(self, request: web.Request) -> web.Response:
        net = self._net(request)
        out: list[dict[str, Any]] = []
        for txid, rec in self._bulk_ids(await self._json_body(request, "txids")):
            out.append({"txid": txid, "error": "unknown"} if rec is None else self._details(rec, net))
        return _json(out)

    # ---- spent lookups -----------------------------------------------------------------------
    # Public WoC docs ("(Un)Spent Transaction Outputs"): single lookups answer
    # {"txid", "vin", "status"}, 404 when the output is known and unspent, 400 when it is unknown;
    # the bulk lookup (at most 20) answers [{"utxo": {"txid", "vout"}, "spentIn": {...} | null,
    # "error": ""}] in request order.

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
            raise _NotFound
        op = txid + int(vout).to_bytes(4, "little")
        if not self._outpoint_known(op):
            raise _BadRequest("unknown utxo")
        found = self._spender(op, mode)
        if found is None:
            raise _NotFound
        return _json(found)

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
                raise _BadRequest("each utxo needs a txid (hex string) and a vout (integer)")
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
        return _json(out)

    # ---- faucet ------------------------------------------------------------------------------

    async def faucet(self, request: web.Request) -> web.Response:
        script = self._address_script(request.match_info["address"])
        try:
            rec, _, _ = self.miner.fund(script, 100_000, 1, confirm=True)
        except MiningError as exc:
            raise _BadRequest(str(exc)) from exc
        return _text(rec.txid_hex)
