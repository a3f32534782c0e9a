"""Composition root: builds every chainsim component, the HTTP app and the background loops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from proofline_kit.loops import BackgroundLoops, Loop
from services.chainsim.arc.api import ArcFace
from services.chainsim.arc.callbacks import CallbackDispatcher
from services.chainsim.arc.waiters import StagedProgression, StatusWaiters
from services.chainsim.chain import snapshot
from services.chainsim.chain.clock import Clock
from services.chainsim.chain.mining import Miner
from services.chainsim.chain.reorg import Reorganizer
from services.chainsim.chain.scriptcheck import make_verifier
from services.chainsim.chain.state import ChainState
from services.chainsim.chain.status import ArcStatus
from services.chainsim.chain.validation import ArcValidator, NodeAcceptor
from services.chainsim.control.api import ControlFace
from services.chainsim.control.faults import FaultInjector
from services.chainsim.settings import ChainsimSettings, Progression
from services.chainsim.woc.api import WocFace

log = logging.getLogger("chainsim")
_MAX_BODY = 256 * 1024 * 1024
_HANG_S = 3600.0


class ChainSim:
    """One simulated chain with its ARC, WhatsOnChain and control faces on one HTTP port."""

    def __init__(self, settings: ChainsimSettings) -> None:
        self.settings = settings
        self.clock = Clock()
        self.state = ChainState()
        verifier = make_verifier(settings.script_verify.value)
        self.validator = ArcValidator(self.state, settings.policy, verifier)
        self.acceptor = NodeAcceptor(self.state, settings, verifier, self.clock)
        self.progression: StagedProgression | None = None
        if settings.progression == Progression.STAGED:
            self.acceptor.accepted_status = ArcStatus.STORED
            self.progression = StagedProgression(self.state, settings.stage_delay_ms / 1000)
        self.miner = Miner(self.state, settings, self.clock, self.acceptor)
        self.reorganizer = Reorganizer(self.state, self.miner, self.acceptor)
        self.waiters = StatusWaiters(self.state)
        self.callbacks = CallbackDispatcher(self.state, settings, self.clock)
        self.faults = FaultInjector(settings.woc_rate_limit_rps)
        self.arc = ArcFace(
            self.state, settings, self.clock, self.validator, self.acceptor, self.waiters, self.callbacks, self.faults
        )
        self.woc = WocFace(self.state, settings, self.clock, self.acceptor, self.miner, self.faults)
        self.control = ControlFace(
            self.state,
            self.clock,
            self.miner,
            self.reorganizer,
            self.acceptor,
            self.callbacks,
            self.faults,
            self.reset,
            self.save_snapshot,
        )
        self.app = web.Application(middlewares=[self._faults_middleware], client_max_size=_MAX_BODY)
        self.app.add_routes(self.arc.routes())
        self.app.add_routes(self.woc.routes())
        self.app.add_routes(self.control.routes())
        self._runner: web.AppRunner | None = None
        self._loops = BackgroundLoops("chainsim.loops")
        self._saved_changes = -1
        self.port = 0
        self._load_or_genesis()

    # ---- state -------------------------------------------------------------------------------

    def _load_or_genesis(self) -> None:
        path = self.settings.snapshot
        if path is not None and path.exists():
            snapshot.load(path.read_bytes(), self.state, self.clock)
            self._saved_changes = self.state.changes
            log.info("chainsim: loaded snapshot %s at height %d", path, self.state.height)
        else:
            self.miner.genesis()

    def reset(self) -> None:
        """Back to a fresh chain with only a genesis block (control API ``/_sim/reset``)."""
        self.state.clear()
        self.callbacks.reset()
        self.faults.reset()
        self.validator.block_height_available = True
        self.clock.offset_s = 0.0
        self.miner.genesis()

    def save_snapshot(self) -> str | None:
        path = self.settings.snapshot
        if path is None:
            return None
        snapshot.save(path, self.state, self.clock)
        self._saved_changes = self.state.changes
        return str(path)

    # ---- HTTP --------------------------------------------------------------------------------

    @web.middleware
    async def _faults_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        path = request.path
        if path.startswith("/v1/bsv/"):
            face = "woc"
        elif path.startswith("/v1/"):
            face = "arc"
        else:
            return await handler(request)
        faults = self.faults
        self.validator.block_height_available = not faults.block_height_unavailable
        self.validator.policy = self.settings.policy.overridden(faults.policy_override)
        if not faults.active:
            return await handler(request)
        delay = faults.latency_s(face)
        if delay:
            await asyncio.sleep(delay)
        keyed = "woc-api-key" in request.headers or "Authorization" in request.headers
        fault = faults.http_fault(face, request.match_info.get("txid"), keyed, path)
        if fault is None:
            return await handler(request)
        if fault.kind == "rate_limited":
            return web.Response(text="Too Many Requests", status=429, content_type="text/plain")
        if fault.kind == "hang":
            await asyncio.sleep(_HANG_S)
            return web.Response(status=504)
        if fault.kind == "drop":
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)
        if face == "arc":
            body = {
                "type": "about:blank",
                "title": "Injected fault",
                "status": fault.status,
                "detail": f"injected HTTP {fault.status}",
                "instance": None,
                "txid": None,
                "extraInfo": f"injected fault http:{fault.status}",
            }
            return web.Response(body=orjson.dumps(body), status=fault.status, content_type="application/json")
        return web.Response(text=f"injected fault http:{fault.status}", status=fault.status, content_type="text/plain")

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    async def start(self) -> int:
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.host, self.settings.port, reuse_address=True)
        await site.start()
        self._runner = runner
        addr = runner.addresses[0]
        self.port = int(addr[1])
        await self.callbacks.start()
        self._loops.add(Loop("orphan-sweep", self._sweep_orphans, 1.0, first_round_after_s=1.0))
        if self.settings.mine_interval_ms > 0:
            interval_s = self.settings.mine_interval_ms / 1000
            self._loops.add(Loop("auto-mine", self._mine_block, interval_s, first_round_after_s=interval_s))
        if self.settings.snapshot is not None and self.settings.snapshot_interval_s > 0:
            interval_s = self.settings.snapshot_interval_s
            self._loops.add(Loop("snapshot", self._snapshot_if_changed, interval_s, first_round_after_s=interval_s))
        self._loops.start()
        return self.port

    async def stop(self) -> None:
        await self._loops.stop(grace_s=0)
        if self.progression is not None:
            self.progression.cancel()
        await self.callbacks.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.settings.snapshot is not None:
            self.save_snapshot()

    # ---- background loops --------------------------------------------------------------------

    # A failed round is logged by the loop runner, and the loop carries on.
    async def _sweep_orphans(self) -> None:
        self.acceptor.expire_orphans()

    async def _mine_block(self) -> None:
        self.miner.mine(1)

    async def _snapshot_if_changed(self) -> None:
        if self.state.changes != self._saved_changes:
            self.save_snapshot()
