"""Wallet-side helpers for chainsim tests: keys, funding through the control API, signed txs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from aiohttp import web
from bsv import P2PKH, OpReturn, PrivateKey, Script, Transaction, TransactionInput, TransactionOutput
from bsv.constants import Network

from services.chainsim.chain.txcodec import hash256, outpoint, parse_one, serialize_tx


@dataclass(frozen=True)
class Key:
    secret: int

    @property
    def priv(self) -> Any:
        return PrivateKey(self.secret)

    @property
    def address(self) -> str:
        return str(self.priv.address(network=Network.TESTNET))

    @property
    def lock(self) -> bytes:
        return bytes(P2PKH().lock(self.address).serialize())


@dataclass(frozen=True)
class Coin:
    """An output we can spend: its parent raw tx travels along for Extended Format."""

    txid: str
    vout: int
    satoshis: int
    script: bytes
    key: Key
    parent_hex: str


def op_return(*items: bytes) -> bytes:
    return bytes(OpReturn().lock(list(items)).serialize())


async def fund(
    client: httpx.AsyncClient, key: Key, satoshis: int = 100_000, count: int = 1, confirm: bool = True
) -> list[Coin]:
    r = await client.post(
        "/_sim/fund", json={"address": key.address, "satoshis": satoshis, "count": count, "confirm": confirm}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    return [
        Coin(body["txid"], o["vout"], o["satoshis"], bytes.fromhex(o["script_hex"]), key, body["raw_hex"])
        for o in body["outputs"]
    ]


def build(
    coins: Sequence[Coin],
    outputs: Sequence[tuple[int, bytes]],
    *,
    fee: int | None = None,
    change: Key | None = None,
    version: int = 1,
) -> Any:
    """A signed bsv-sdk Transaction spending ``coins``; with ``change`` the rest minus ``fee`` (default:
    1 sat/kB rounded up) goes back to that key."""
    inputs = []
    for c in coins:
        parent = Transaction.from_hex(c.parent_hex)
        inp = TransactionInput(
            source_transaction=parent,
            source_txid=c.txid,
            source_output_index=c.vout,
            unlocking_script_template=P2PKH().unlock(c.key.priv),
        )
        inputs.append(inp)
    outs = [TransactionOutput(Script(s), v) for v, s in outputs]
    tx = Transaction(inputs, outs, version=version)
    if change is not None:
        total_in = sum(c.satoshis for c in coins)
        spent = sum(v for v, _ in outputs)
        tx.add_output(TransactionOutput(Script(change.lock), total_in - spent - 1))
        tx.sign()
        needed = fee if fee is not None else (len(tx.serialize()) + 1 + 999) // 1000
        tx.outputs[-1].satoshis = total_in - spent - needed
        tx._invalidate_hash_cache()
        for inp in tx.inputs:
            inp.unlocking_script = None
    tx.sign()
    return tx


def ef_hex(tx: Any) -> str:
    return str(tx.to_ef().hex())


def coins_of(tx: Any, key: Key) -> list[Coin]:
    """The outputs of ``tx`` locked to ``key``."""
    raw = tx.hex()
    return [
        Coin(tx.txid(), i, o.satoshis, bytes(o.locking_script.serialize()), key, raw)
        for i, o in enumerate(tx.outputs)
        if bytes(o.locking_script.serialize()) == key.lock
    ]


def spend(coin: Coin, to: Key | None = None, *, fee: int = 1, data: bytes | None = None) -> Any:
    """One-input tx: optional 0-sat OP_RETURN, then everything minus ``fee`` to ``to`` (or back)."""
    dest = to or coin.key
    outputs: list[tuple[int, bytes]] = []
    if data is not None:
        outputs.append((0, op_return(data)))
    outputs.append((coin.satoshis - fee, dest.lock))
    return build([coin], outputs)


def unsigned_like(
    raw_outputs: Sequence[tuple[int, bytes]], prev_txid: str, vout: int = 0, script_sig: bytes = b"\x51"
) -> bytes:
    """A raw transaction with an arbitrary scriptSig (for structural-failure tests)."""
    op = outpoint(bytes.fromhex(prev_txid)[::-1], vout)
    return serialize_tx(1, [(op, script_sig, 0xFFFFFFFF)], list(raw_outputs))


def txid_of(raw: bytes) -> str:
    return hash256(raw)[::-1].hex()


def ef_from_raw(raw: bytes, prevouts: Sequence[tuple[int, bytes]]) -> bytes:
    """Extended Format bytes for a raw tx given its prevouts."""
    tx = parse_one(raw)
    parts = [raw[:4], b"\x00\x00\x00\x00\x00\xef"]
    from services.chainsim.chain.txcodec import varint

    parts.append(varint(len(tx.inputs)))
    for (op, script, seq), (value, prev_script) in zip(tx.inputs, prevouts, strict=True):
        parts += [
            op,
            varint(len(script)),
            script,
            seq.to_bytes(4, "little"),
            value.to_bytes(8, "little"),
            varint(len(prev_script)),
            prev_script,
        ]
    parts.append(varint(len(tx.outputs)))
    for value, script in tx.outputs:
        parts += [value.to_bytes(8, "little"), varint(len(script)), script]
    parts.append(tx.locktime.to_bytes(4, "little"))
    return b"".join(parts)


class Receiver:
    """A local HTTP endpoint that records callbacks and answers with scripted status codes."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], Any]] = []
        self.script: list[int] = []
        self.port = 0
        self._runner: web.AppRunner | None = None
        self.event = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/callback"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append((dict(request.headers), body))
        self.event.set()
        status = self.script.pop(0) if self.script else 200
        return web.Response(status=status, text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/callback", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def statuses(self, txid: str) -> list[str]:
        out: list[str] = []
        for _, body in self.calls:
            items = body.get("callbacks", [body])
            out += [b["txStatus"] for b in items if b["txid"] == txid]
        return out

    async def wait_for(self, predicate: Any, within_s: float = 5.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting; calls so far: {self.calls}")
            self.event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.event.wait(), remaining)
