"""A real local HTTP server speaking the external KMS contract of seed 000, with fault modes."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from aiohttp import web
from bsv import PrivateKey
from bsv.curve import curve
from bsv.utils import deserialize_ecdsa_der


def _high_s(der: bytes) -> bytes:
    r, s = deserialize_ecdsa_der(der)
    s = curve.n - s

    def enc(x: int) -> bytes:
        b = x.to_bytes(32, "big").lstrip(b"\x00")
        if b[0] & 0x80:
            b = b"\x00" + b
        return b"\x02" + bytes([len(b)]) + b

    body = enc(r) + enc(s)
    return b"\x30" + bytes([len(body)]) + body


@dataclass
class FakeKms:
    """Keys by identifier; `mode` switches behaviour: ok, high_s, wrong_key, wrong_pubkey, short, garbage."""

    keys: dict[str, PrivateKey] = field(default_factory=dict)
    mode: str = "ok"
    failures_before_success: int = 0
    api_key: str | None = None
    requests: list[list[dict[str, str]]] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    def add_key(self, key_id: str) -> PrivateKey:
        key = PrivateKey()
        self.keys[key_id] = key
        return key

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/sign", self._sign)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.url = f"http://127.0.0.1:{port}/sign"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _sign(self, request: web.Request) -> web.Response:
        if self.api_key is not None and request.headers.get("X-API-Key") != self.api_key:
            return web.json_response({"error": "unauthorized"}, status=401)
        body = await request.json()
        self.requests.append(body)
        if self.failures_before_success > 0:
            self.failures_before_success -= 1
            return web.json_response({"error": "busy"}, status=503)
        if self.mode == "garbage":
            return web.Response(text="not json", status=200)
        answers = []
        for item in body:
            key = self.keys.get(item["keyIdentifier"])
            if key is None:
                return web.json_response({"error": "unknown key"}, status=404)
            digest = bytes.fromhex(item["sighash"])
            signer = PrivateKey() if self.mode == "wrong_key" else key
            der = signer.sign(digest, hasher=None)
            if self.mode == "high_s":
                der = _high_s(der)
            pub = PrivateKey().public_key() if self.mode == "wrong_pubkey" else key.public_key()
            answers.append({"signatureHex": der.hex(), "pubKeyHex": pub.hex()})
        if self.mode == "short":
            answers = answers[:-1]
        return web.json_response(answers)
