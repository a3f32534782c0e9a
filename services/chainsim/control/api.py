"""The control API under ``/_sim`` (arc-woc.md §6.7): fund, mine, reorg, fork, faults, clock, state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from services.chainsim.arc.callbacks import CallbackDispatcher
from services.chainsim.chain import addresses
from services.chainsim.chain.clock import Clock
from services.chainsim.chain.mining import Miner, MiningError
from services.chainsim.chain.reorg import Reorganizer
from services.chainsim.chain.scriptcheck import p2pkh_script
from services.chainsim.chain.state import Block, ChainState, NodeState
from services.chainsim.chain.status import ArcStatus
from services.chainsim.chain.validation import NodeAcceptor
from services.chainsim.control.faults import FaultConfigError, FaultInjector

Handler = Callable[[web.Request], Awaitable[web.Response]]


class ControlError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _block_json(block: Block) -> dict[str, Any]:
    return {"height": block.height, "hash": block.hash_hex, "txids": [t[::-1].hex() for t in block.txids]}


def _txids(value: object, name: str) -> list[bytes]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(t, str) and len(t) == 64 for t in value):
        raise ControlError(f"{name} must be a list of txids")
    try:
        return [bytes.fromhex(t)[::-1] for t in value]
    except ValueError as exc:
        raise ControlError(f"{name} must be a list of hex txids") from exc


def _locking_script(body: dict[str, Any], address_key: str, script_key: str) -> bytes | None:
    """The locking script a body names: a P2PKH ``address_key`` (main or test prefix) or a raw
    ``script_key`` hex; None when it names neither."""
    if address_key in body and script_key in body:
        raise ControlError(f"give {address_key} or {script_key}, not both")
    if address_key in body:
        try:
            pkh, _ = addresses.decode(str(body[address_key]))
        except addresses.AddressError as exc:
            raise ControlError(f"invalid {address_key}: {exc}") from exc
        return p2pkh_script(pkh)
    if script_key in body:
        value = body[script_key]
        try:
            script = bytes.fromhex(value) if isinstance(value, str) else None
        except ValueError:
            script = None
        if script is None:
            raise ControlError(f"{script_key} must be hex")
        return script
    return None


def _int(body: dict[str, Any], name: str, default: int | None) -> int | None:
    value = body.get(name, default)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ControlError(f"{name} must be an integer")
    return value


class ControlFace:
    def __init__(
        self,
        state: ChainState,
        clock: Clock,
        miner: Miner,
        reorganizer: Reorganizer,
        acceptor: NodeAcceptor,
        callbacks: CallbackDispatcher,
        faults: FaultInjector,
        reset: Callable[[], None],
        save_snapshot: Callable[[], str | None],
    ) -> None:
        self.state = state
        self.clock = clock
        self.miner = miner
        self.reorganizer = reorganizer
        self.acceptor = acceptor
        self.callbacks = callbacks
        self.faults = faults
        self._reset = reset
        self._save_snapshot = save_snapshot

    def routes(self) -> list[web.RouteDef]:
        table: list[tuple[str, str, Handler]] = [
            ("POST", "/_sim/fund", self.fund),
            ("POST", "/_sim/mine", self.mine),
            ("POST", "/_sim/reorg", self.reorg),
            ("POST", "/_sim/fork", self.fork),
            ("POST", "/_sim/tx/{txid}/evict", self.evict),
            ("POST", "/_sim/tx/{txid}/status", self.force_status),
            ("GET", "/_sim/faults", self.get_faults),
            ("POST", "/_sim/faults", self.set_faults),
            ("DELETE", "/_sim/faults", self.clear_faults),
            ("POST", "/_sim/clock", self.clock_advance),
            ("GET", "/_sim/state", self.get_state),
            ("GET", "/_sim/callbacks", self.get_callbacks),
            ("POST", "/_sim/reset", self.reset),
            ("POST", "/_sim/snapshot", self.snapshot),
        ]
        return [web.route(method, path, self._wrap(handler)) for method, path, handler in table]

    def _wrap(self, handler: Handler) -> Handler:
        async def run(request: web.Request) -> web.Response:
            try:
                return await handler(request)
            except ControlError as exc:
                return _json({"error": str(exc)}, exc.status)
            except (MiningError, FaultConfigError) as exc:
                return _json({"error": str(exc)}, 400)

        return run

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ControlError("body must be JSON") from exc
        if not isinstance(doc, dict):
            raise ControlError("body must be a JSON object")
        return doc

    def _record(self, request: web.Request) -> Any:
        ids = _txids([request.match_info["txid"]], "txid")
        rec = self.state.txs.get(ids[0])
        if rec is None:
            raise ControlError("unknown transaction", 404)
        return rec

    # ---- chain -------------------------------------------------------------------------------

    async def fund(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        script = _locking_script(body, "address", "script_hex")
        if script is None:
            raise ControlError("address or script_hex is required")
        satoshis = _int(body, "satoshis", 100_000)
        count = _int(body, "count", 1)
        assert satoshis is not None and count is not None
        confirm = body.get("confirm", True)
        if not isinstance(confirm, bool):
            raise ControlError("confirm must be a boolean")
        rec, tx, block = self.miner.fund(script, satoshis, count, confirm)
        out: dict[str, Any] = {
            "txid": rec.txid_hex,
            "raw_hex": rec.raw.hex(),
            "outputs": [{"vout": i, "satoshis": v, "script_hex": s.hex()} for i, (v, s) in enumerate(tx.outputs)],
        }
        if block is not None:
            out.update(block_hash=block.hash_hex, block_height=block.height)
        return _json(out)

    async def mine(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        blocks = _int(body, "blocks", 1)
        assert blocks is not None
        txids = _txids(body.get("txids"), "txids") if "txids" in body else None
        when = _int(body, "time", None)
        coinbase = _locking_script(body, "coinbase_address", "coinbase_script_hex")
        mined = self.miner.mine(blocks, txids, _txids(body.get("exclude_txids"), "exclude_txids"), when, coinbase)
        return _json([_block_json(b) for b in mined])

    async def reorg(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        depth = _int(body, "depth", 1)
        assert depth is not None
        result = self.reorganizer.reorg(
            depth,
            _int(body, "new_blocks", None),
            _txids(body.get("drop_txids"), "drop_txids"),
            _txids(body.get("include_txids"), "include_txids"),
        )
        return _json(
            {
                "stale": [_block_json(b) for b in result.stale],
                "new": [_block_json(b) for b in result.new],
                "remined": [t[::-1].hex() for t in result.remined],
                "stale_only": [t[::-1].hex() for t in result.stale_only],
                "tip": {"height": self.state.height, "hash": self.state.tip.hash_hex},
            }
        )

    async def fork(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        depth = _int(body, "depth", 1)
        blocks = _int(body, "blocks", 1)
        assert depth is not None and blocks is not None
        made = self.reorganizer.fork(depth, blocks, _txids(body.get("txids"), "txids"))
        return _json([_block_json(b) for b in made])

    # ---- transactions ------------------------------------------------------------------------

    async def evict(self, request: web.Request) -> web.Response:
        rec = self._record(request)
        body = await self._body(request)
        reason = str(body.get("reason") or "evicted")
        victims = self.acceptor.evict(rec, f"discarded from mempool: {reason}")
        return _json({"evicted": [v.txid_hex for v in victims]})

    async def force_status(self, request: web.Request) -> web.Response:
        rec = self._record(request)
        body = await self._body(request)
        status = ArcStatus.parse(str(body.get("txStatus", "")))
        if status is None:
            raise ControlError("txStatus must be an ARC status name")
        if "competingTxs" in body:
            rec.competing = _txids(body["competingTxs"], "competingTxs") or None
        extra = body.get("extraInfo")
        self.state.set_status(rec, status, None if extra is None else str(extra), force=True)
        return _json({"txid": rec.txid_hex, "txStatus": rec.status.name, "extraInfo": rec.extra_info})

    # ---- faults, clock, state ----------------------------------------------------------------

    async def get_faults(self, request: web.Request) -> web.Response:
        return _json(self.faults.as_json())

    async def set_faults(self, request: web.Request) -> web.Response:
        self.faults.configure(await self._body(request))
        return _json(self.faults.as_json())

    async def clear_faults(self, request: web.Request) -> web.Response:
        self.faults.reset()
        return _json(self.faults.as_json())

    async def clock_advance(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        value = body.get("advance_s", 0)
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise ControlError("advance_s must be a number >= 0")
        self.clock.advance(float(value))
        expired = self.acceptor.expire_orphans()
        return _json({"now": self.clock.now(), "offset_s": self.clock.offset_s, "expired_orphans": expired})

    async def get_state(self, request: web.Request) -> web.Response:
        body = self.state.describe()
        body["now"] = self.clock.now()
        body["mempool_txids"] = [t[::-1].hex() for t in list(self.state.mempool)[:1000]]
        body["orphan_txids"] = [t[::-1].hex() for t in list(self.state.orphans)[:1000]]
        body["competitor_txids"] = [r.txid_hex for r in self.state.txs.values() if r.node == NodeState.COMPETITOR][
            :1000
        ]
        return _json(body)

    async def get_callbacks(self, request: web.Request) -> web.Response:
        return _json(self.callbacks.log(request.query.get("txid")))

    async def reset(self, request: web.Request) -> web.Response:
        self._reset()
        return _json(self.state.describe())

    async def snapshot(self, request: web.Request) -> web.Response:
        path = self._save_snapshot()
        if path is None:
            raise ControlError("no CHAINSIM_SNAPSHOT path is configured", 409)
        return _json({"saved": path})
