"""The HTTP endpoint ARC calls back (X-CallbackUrl): status changes of our transactions."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from proofline_kit.chain import ArcTxStatus, ChainUnavailable, callback_authorized, parse_callback
from proofline_kit.chain.jsonshape import ShapeError
from proofline_kit.logging import get_logger

CALLBACK_PATH = "/v1/arc/callback"

StatusHandler = Callable[[Sequence[ArcTxStatus], str], Awaitable[int]]


class CallbackServer:
    """POST CALLBACK_PATH with `Authorization: Bearer <token>`: 200 once applied; 401 for a wrong
    token; 400 for a body that is not a callback; 503 when the chain could not be asked (ARC
    retries non-2xx answers, and polling is the backup anyway)."""

    def __init__(self, host: str, port: int, token: str, timeout_s: float = 4.0) -> None:
        self._host = host
        self._port = port
        self._token = token
        self._handle: StatusHandler | None = None
        self._timeout_s = timeout_s
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._log = get_logger("publisher.callbacks")

    def attach(self, handle: StatusHandler) -> None:
        """Where callbacks go (the port is bound first: ARC must be told the URL)."""
        self._handle = handle

    async def start(self) -> int:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post(CALLBACK_PATH, self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _receive(self, request: web.Request) -> web.Response:
        if not callback_authorized(request.headers.get("Authorization"), self._token):
            return web.json_response({"error": "unauthorized"}, status=401)
        if self._handle is None:
            return web.json_response({"error": "starting"}, status=503)
        try:
            statuses = parse_callback(await request.json())
        except (ValueError, ShapeError) as error:
            return web.json_response({"error": f"not an ARC callback: {error}"}, status=400)
        request_id = f"callback-{uuid.uuid4().hex[:16]}"
        try:
            changed = await asyncio.wait_for(self._handle(statuses, request_id), self._timeout_s)
        except (ChainUnavailable, TimeoutError) as error:
            self._log.info("callback.deferred", txids=len(statuses), detail=str(error))
            return web.json_response({"error": "try again later"}, status=503)
        return web.json_response({"received": len(statuses), "changed": changed})
