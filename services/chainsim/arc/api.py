"""The ARC face: ``/v1/tx``, ``/v1/txs``, ``/v1/tx/{txid}``, ``/v1/policy``, ``/v1/health`` (§2, §6.3)."""

from __future__ import annotations

import asyncio
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import urlparse

import orjson
from aiohttp import web

from services.chainsim.arc.beef import decode_beef, fill_prevouts, verify_bumps
from services.chainsim.arc.callbacks import CallbackDispatcher
from services.chainsim.arc.views import queued_response, tx_response, tx_status
from services.chainsim.arc.waiters import StatusWaiters
from services.chainsim.chain.clock import Clock
from services.chainsim.chain.state import CallbackTarget, ChainState, NodeState, TxRecord
from services.chainsim.chain.status import ArcError, ArcStatus
from services.chainsim.chain.txcodec import ParsedTx, TxDecodeError, is_beef, parse_one, parse_stream
from services.chainsim.chain.validation import ArcValidator, NodeAcceptor, Outcome, SubmitOptions
from services.chainsim.control.faults import FaultInjector, FaultRule
from services.chainsim.settings import ChainsimSettings

_BOOL_HEADERS: Mapping[str, str] = MappingProxyType(
    {
        "X-CallbackBatch": "batch",
        "X-FullStatusUpdates": "full",
        "X-SkipFeeValidation": "skip_fee",
        "X-SkipScriptValidation": "skip_script",
        "X-SkipTxValidation": "skip_tx",
        "X-ForceValidation": "force",
        "X-CumulativeFeeValidation": "cumulative",
    }
)
_MAX_TEXT_LINE = 64 * 1024


class SchemaError(Exception):
    """A request the OpenAPI middleware rejects (Echo's ``{"message": ...}`` 400 shape)."""


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def error_response(err: ArcError) -> web.Response:
    return json_response(err.body(), err.code if 400 <= err.code <= 599 else 409)


@dataclass(slots=True)
class RequestOptions:
    wait_for: ArcStatus
    timeout_s: float
    callback: CallbackTarget | None
    full: bool
    submit: SubmitOptions


@dataclass(slots=True)
class Item:
    """One submitted element: a transaction (raw/EF) or a BEEF bundle."""

    tx: ParsedTx
    beef: Any = None  # BeefBundle


class ArcFace:
    def __init__(
        self,
        state: ChainState,
        settings: ChainsimSettings,
        clock: Clock,
        validator: ArcValidator,
        acceptor: NodeAcceptor,
        waiters: StatusWaiters,
        callbacks: CallbackDispatcher,
        faults: FaultInjector,
    ) -> None:
        self.state = state
        self.settings = settings
        self.clock = clock
        self.validator = validator
        self.acceptor = acceptor
        self.waiters = waiters
        self.callbacks = callbacks
        self.faults = faults
        self.bearer_tokens = settings.arc_bearer_tokens

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/tx", self.post_tx),
            web.post("/v1/txs", self.post_txs),
            web.get("/v1/tx/{txid}", self.get_tx),
            web.get("/v1/policy", self.get_policy),
            web.get("/v1/health", self.get_health),
        ]

    # ---- simple endpoints --------------------------------------------------------------------

    def _auth(self, request: web.Request) -> web.Response | None:
        if not self.bearer_tokens:
            return None
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer ") and header[7:] in self.bearer_tokens:
            return None
        return error_response(ArcError(401, "missing or invalid bearer token", prefixed=False))

    async def get_policy(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        policy = self.validator.policy.as_json()
        return json_response({"timestamp": self.clock.rfc3339_nanos(), "policy": policy})

    async def get_health(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        unhealthy = self.faults.health_unhealthy
        return json_response(
            {
                "healthy": not unhealthy,
                "version": self.settings.version,
                "reason": "metamorph is not reachable (injected fault)" if unhealthy else None,
            }
        )

    async def get_tx(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        txid = request.match_info["txid"]
        try:
            key = bytes.fromhex(txid)[::-1]
            if len(key) != 32:
                raise ValueError
        except ValueError:
            return error_response(ArcError(409, f"invalid txid: {txid}", prefixed=False))
        rec = self.state.txs.get(key)
        if rec is None:
            return error_response(ArcError(404, "transaction not found", prefixed=False))
        return json_response(tx_status(rec, self.clock.rfc3339_nanos()))

    # ---- submissions -------------------------------------------------------------------------

    async def post_tx(self, request: web.Request) -> web.Response:
        return await self._post(request, batch=False)

    async def post_txs(self, request: web.Request) -> web.Response:
        return await self._post(request, batch=True)

    async def _post(self, request: web.Request, batch: bool) -> web.Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        try:
            opts = self._options(request)
            body = await request.read()
            items = self._parse(request.headers.get("Content-Type", ""), body, batch)
        except SchemaError as exc:
            return json_response({"message": str(exc)}, 400)
        except ArcError as exc:
            return error_response(exc)
        try:
            results = self._process(items, opts)
        except _HttpFault as fault:
            return await self._http_fault(request, fault.rule)
        records = [r for r in results if isinstance(r, TxRecord)]
        if opts.wait_for != ArcStatus.QUEUED and records:
            await self.waiters.wait_all(records, opts.wait_for, opts.timeout_s)
        now = self.clock.rfc3339_nanos()
        successes: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        for r in results:
            if isinstance(r, TxRecord):
                successes.append(tx_response(r, now))
            elif isinstance(r, ArcError):
                failures.append(r.body())
            else:
                successes.append(queued_response(r, now))
        if batch:
            return json_response(successes + failures)
        if successes:
            return json_response(successes[0])
        return json_response(failures[0], failures[0]["status"])

    async def _http_fault(self, request: web.Request, rule: FaultRule) -> web.Response:
        if rule.kind == "hang":
            await asyncio.sleep(3600)
        if rule.kind == "drop" and request.transport is not None:
            request.transport.abort()
        code = int(rule.arg) if rule.kind == "http" else 503
        return error_response(ArcError(code, f"injected fault http:{code}", prefixed=False))

    def _options(self, request: web.Request) -> RequestOptions:
        headers = request.headers
        flags: dict[str, bool] = {}
        for header, name in _BOOL_HEADERS.items():
            raw = headers.get(header)
            if raw is None:
                continue
            if raw not in ("true", "false"):
                raise SchemaError(
                    f'parameter "{header}" in header has an error: value {raw}: an invalid boolean: invalid syntax'
                )
            flags[name] = raw == "true"
        timeout_s = float(self.settings.default_max_timeout_s)
        raw_timeout = headers.get("X-MaxTimeout")
        if raw_timeout is not None:
            try:
                timeout = int(raw_timeout)
            except ValueError as exc:
                raise SchemaError(
                    f'parameter "X-MaxTimeout" in header has an error: value {raw_timeout}: an invalid integer'
                ) from exc
            if timeout > self.settings.max_timeout_s:
                raise ArcError(400, f"max timeout can not be higher than {self.settings.max_timeout_s}", prefixed=False)
            if timeout < 0:
                raise SchemaError('parameter "X-MaxTimeout" in header has an error: number must be at least 0')
            timeout_s = float(timeout)
        wait_for = ArcStatus.SEEN_ON_NETWORK
        raw_wait = headers.get("X-WaitFor")
        if raw_wait is not None:
            parsed = ArcStatus.parse(raw_wait)
            if parsed is None:
                raise ArcError(400, f"status not supported\nstatus: {raw_wait}", prefixed=False)
            wait_for = parsed
        callback: CallbackTarget | None = None
        url = headers.get("X-CallbackUrl")
        if url is not None:
            parts = urlparse(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ArcError(400, f"invalid callback URL\nparse {url!r}: invalid URI for request", prefixed=False)
            if any(s in url for s in self.settings.reject_callback_substrings):
                raise ArcError(400, "callback URL not acceptable", prefixed=False)
            callback = CallbackTarget(url, headers.get("X-CallbackToken") or None, flags.get("batch", False))
        force = flags.get("force", False)
        submit = SubmitOptions(
            skip_fee=flags.get("skip_fee", False),
            skip_script=flags.get("skip_script", False),
            skip_tx=flags.get("skip_tx", False) and not force,
            force=force,
            cumulative=flags.get("cumulative", False),
        )
        return RequestOptions(wait_for, timeout_s, callback, flags.get("full", False), submit)

    def _parse(self, content_type: str, body: bytes, batch: bool) -> list[Item]:
        ctype = content_type.lower()
        prefix = "error parsing transactions from request: "
        if not body:
            raise ArcError(400, prefix + "no transaction found - empty request body", prefixed=False)
        chunks: list[bytes]
        try:
            if "application/json" in ctype:
                try:
                    doc = orjson.loads(body)
                except orjson.JSONDecodeError as exc:
                    raise ArcError(400, prefix + str(exc), prefixed=False) from exc
                elements = doc if batch else [doc]
                if not isinstance(elements, list):
                    raise SchemaError("request body has an error: doesn't match schema: value must be an array")
                chunks = []
                for el in elements:
                    if not isinstance(el, dict) or not isinstance(el.get("rawTx"), str):
                        raise SchemaError(
                            'request body has an error: doesn\'t match schema: property "rawTx" is missing'
                        )
                    chunks.append(binascii.unhexlify(el["rawTx"]))
            elif "text/plain" in ctype:
                text = body.decode("ascii", errors="replace")
                if batch:
                    lines = text.split("\n")
                    if any(len(line) > _MAX_TEXT_LINE for line in lines):
                        raise ArcError(400, prefix + "bufio.Scanner: token too long", prefixed=False)
                    chunks = [binascii.unhexlify(line.strip()) for line in lines if line.strip()]
                else:
                    chunks = [binascii.unhexlify(text.strip())]
            elif "application/octet-stream" in ctype:
                chunks = [body]
            else:
                raise ArcError(
                    400,
                    prefix + f"given content-type {content_type} does not match any of the allowed content-types",
                    prefixed=False,
                )
        except (binascii.Error, ValueError) as exc:
            if isinstance(exc, ArcError):
                raise
            raise ArcError(400, prefix + f"encoding/hex: {exc}", prefixed=False) from exc
        if not any(chunks):
            raise ArcError(400, prefix + "no transaction found - empty request body", prefixed=False)
        items: list[Item] = []
        for chunk in chunks:
            if not chunk:
                continue
            if is_beef(chunk):
                bundle = decode_beef(chunk)
                items.append(Item(bundle.latest, bundle))
                continue
            try:
                if batch:
                    items.extend(Item(tx) for tx in parse_stream(chunk))
                else:
                    items.append(Item(parse_one(chunk)))
            except TxDecodeError as exc:
                raise ArcError(400, str(exc), prefixed=False) from exc
        return items

    # ---- pipeline ----------------------------------------------------------------------------

    def _process(self, items: list[Item], opts: RequestOptions) -> list[TxRecord | ArcError | str]:
        out: list[TxRecord | ArcError | str] = []
        deferred: list[tuple[ParsedTx, Any]] = []
        faults_on = bool(self.faults.rules)
        txs = self.state.txs
        for item in items:
            tx = item.tx
            rule = self.faults.tx_rule("arc", tx.txid_hex) if faults_on else None
            if rule is not None and rule.kind in ("http", "hang", "drop"):
                raise _HttpFault(rule)
            known = txs.get(tx.txid)
            if known is not None and not opts.submit.force:
                self._resubmitted(known, opts)
                out.append(known)
                continue
            try:
                verified = self._validate(item, opts.submit)
            except ArcError as err:
                if err.txid is None:
                    err.txid = tx.txid_hex
                out.append(err)
                continue
            if known is not None:
                self._resubmitted(known, opts)
                out.append(known)
                continue
            if opts.wait_for == ArcStatus.QUEUED:
                deferred.append((tx, (item, verified, rule)))
                out.append(tx.txid_hex)
                continue
            out.append(self._submit(item, verified, rule, opts))
        if deferred:
            asyncio.get_running_loop().call_soon(self._submit_deferred, deferred, opts)
        return out

    def _submit_deferred(self, deferred: list[tuple[ParsedTx, Any]], opts: RequestOptions) -> None:
        for tx, (item, verified, rule) in deferred:
            if tx.txid not in self.state.txs:
                self._submit(item, verified, rule, opts)

    def _validate(self, item: Item, submit: SubmitOptions) -> list[tuple[int, bytes]] | None:
        if item.beef is None:
            return self.validator.validate(item.tx, submit)
        bundle = item.beef
        if not submit.skip_tx:
            verify_bumps(bundle, self.state)
        verified: list[tuple[int, bytes]] | None = None
        for tx, given in bundle.unmined:
            tx.ef = fill_prevouts(tx, given, self.state)
            try:
                verified = self.validator.validate(tx, submit)
            except ArcError as err:
                err.txid = tx.txid_hex
                raise
        return verified

    def _resubmitted(self, rec: TxRecord, opts: RequestOptions) -> None:
        rec.last_submitted = self.clock.now()
        if opts.full and not rec.full_updates:
            rec.full_updates = True
        cb = opts.callback
        if cb is not None and (rec.callbacks is None or cb not in rec.callbacks):
            if rec.callbacks is None:
                rec.callbacks = [cb]
            else:
                rec.callbacks.append(cb)
            self.callbacks.registered(rec, cb)

    def _submit(
        self, item: Item, verified: list[tuple[int, bytes]] | None, rule: FaultRule | None, opts: RequestOptions
    ) -> TxRecord:
        if item.beef is not None:
            for tx, _ in item.beef.unmined[:-1]:
                if tx.txid not in self.state.txs:
                    self.acceptor.submit(tx, "arc")
        tx = item.tx
        if rule is not None and rule.kind in ("reject", "orphan", "double_spend"):
            return self._faulted(tx, rule, opts)
        result = self.acceptor.submit(tx, "arc", verified=verified, callback=opts.callback, full_updates=opts.full)
        rec = result.record
        assert rec is not None
        if result.kind == Outcome.KNOWN:
            self._resubmitted(rec, opts)
        if rule is not None and rule.kind == "stuck":
            stuck = ArcStatus.parse(rule.arg)
            assert stuck is not None
            self.state.set_status(rec, stuck, force=True)
            rec.stuck = stuck
        return rec

    def _faulted(self, tx: ParsedTx, rule: FaultRule, opts: RequestOptions) -> TxRecord:
        """Store ``tx`` with the outcome a reject/orphan/double_spend rule dictates (no UTXO effect)."""
        state = self.state
        rec = TxRecord(
            tx.txid,
            tx.raw,
            tuple(i[0] for i in tx.inputs),
            len(tx.outputs),
            0,
            NodeState.REJECTED,
            ArcStatus.UNKNOWN,
            self.clock.now(),
            "arc",
        )
        state.txs[tx.txid] = rec
        if opts.callback is not None:
            rec.callbacks = [opts.callback]
        rec.full_updates = opts.full
        if rule.kind == "reject":
            state.set_status(rec, ArcStatus.REJECTED, f"invalid transaction: {rule.arg or 'injected rejection'}")
        elif rule.kind == "orphan":
            rec.node = NodeState.ORPHAN
            state.orphans[tx.txid] = self.clock.now() + self.settings.orphan_ttl_s
            state.set_status(rec, ArcStatus.SEEN_IN_ORPHAN_MEMPOOL)
        else:
            rec.node = NodeState.COMPETITOR
            rec.competing = [bytes.fromhex(rule.arg)[::-1]]
            state.set_status(rec, ArcStatus.DOUBLE_SPEND_ATTEMPTED)
        return rec


class _HttpFault(Exception):
    def __init__(self, rule: FaultRule) -> None:
        super().__init__(rule.kind)
        self.rule = rule
