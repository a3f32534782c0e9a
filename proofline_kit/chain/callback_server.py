"""The HTTP endpoint ARC calls back (X-CallbackUrl): status changes of our transactions.

One implementation for every service that registers callbacks (the publisher, the wallet): the
service hands in what to do with the parsed statuses; the endpoint checks the token and the shape.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from proofline_kit.logging import get_logger

from .arc_results import ArcTxStatus
from .callbacks import callback_authorized, parse_callback
from .errors import ChainUnavailable
from .jsonshape import ShapeError

CALLBACK_PATH = "/v1/arc/callback"

# (the statuses of one callback, a request id naming it) -> how many the service changed.
StatusHandler = Callable[[Sequence[ArcTxStatus], str], Awaitable[int]]


class CallbackServer:
    """POST CALLBACK_PATH with `Authorization: Bearer <token>`: 200 once applied; 401 for a wrong
    token; 400 for a body that is not a callback; 503 when the handler could not finish now (the
    chain could not be asked, or it timed out: ARC retries non-2xx answers, and polling is the
    backup anyway)."""

    def __init__(self, host: str, port: int, token: str, *, logger_name: str, timeout_s: float = 4.0) -> None:
        self._host = host
        self._port = port
        self._token = token
        self._handle: StatusHandler | None = None
        self._timeout_s = timeout_s
        self._runner: web.AppRunner | None = None
        self.port = 0
        # What came in since start: statuses handed to the handler, and requests refused (401).
        self.received = 0
        self.unauthorized = 0
        self._log = get_logger(logger_name)

    def attach(self, handle: StatusHandler) -> None:
        """Where callbacks go (the port is bound first: ARC must be told the URL)."""
        self._handle = handle

    def url(self, public_url: str | None = None) -> str:
        """What ARC is told to call: `public_url` (behind a proxy), else this server's own address."""
        return public_url or f"http://{self._host}:{self.port}{CALLBACK_PATH}"

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
            self.unauthorized += 1
            # info, not warning: after a restart ARC keeps calling with the earlier process's token.
            self._log.info("callback.unauthorized", remote=request.remote)
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
        self.received += len(statuses)
        self._log.debug("callback.applied", txids=len(statuses), changed=changed, request_id=request_id)
        return web.json_response({"received": len(statuses), "changed": changed})
