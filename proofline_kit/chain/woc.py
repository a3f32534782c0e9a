"""Async WhatsOnChain client: broadcast, chain tip, headers, blocks with their txids, mempool txids,
UTXOs by address, tx status, raw transactions, spenders, proofs."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from proofline_kit.outbound import Sleep
from proofline_kit.outbound.deadline import Clock, Deadline
from proofline_kit.outbound.retry import RetryPolicy
from proofline_kit.wire import Outpoint

from .errors import ChainResponseError, ChainUnavailable
from .jsonshape import ShapeError, as_list, parse_json
from .outcomes import BroadcastOutcome, Provider, unavailable
from .transport import provider_caller
from .txbytes import PreparedTx, require_txid
from .woc_results import (
    BlockHeader,
    BlockSummary,
    BlockTxids,
    ChainTip,
    OutpointSpend,
    TscProof,
    TxChainStatus,
    Utxo,
    UtxoPage,
    UtxoScope,
    assemble_block_txids,
    broadcast_should_retry,
    outcome_from_broadcast,
    parse_block,
    parse_chain_tip,
    parse_header,
    parse_outpoint_spend,
    parse_raw_tx,
    parse_tsc_proof,
    parse_tx_status,
    parse_txids,
    parse_utxo_page,
)

# What a bulk endpoint is asked about (a txid, an outpoint) and what it answers for each.
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# WoC's bulk endpoints take at most this many ids per request.
WOC_BULK_LIMIT = 20
T = TypeVar("T")


async def _bounded(run: Callable[[T], Awaitable[V]], items: list[T], limit: int) -> list[V]:
    """``run`` over ``items`` with at most ``limit`` in flight, results in item order; the first
    failure cancels the rest and is raised as it is."""
    gate = asyncio.Semaphore(limit)

    async def one(item: T) -> V:
        async with gate:
            return await run(item)

    tasks = [asyncio.ensure_future(one(item)) for item in items]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


@dataclass(frozen=True, slots=True)
class WocConfig:
    base_url: str = "https://api.whatsonchain.com"
    network: str = "main"  # main | test | stn
    api_key: str | None = field(default=None, repr=False)
    attempt_timeout_s: float = 10.0
    default_budget_s: float = 20.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Pause between consecutive requests of one paged/bulk call (the free tier allows ~3 req/s).
    page_pause_s: float = 0.0
    # Requests of one bulk call (chunks of WOC_BULK_LIMIT ids), or of one block's txid pages, in
    # flight at once. 1 keeps them in sequence with page_pause_s between; more needs a plan whose
    # rate allows it.
    bulk_concurrency: int = 1


class WocClient:
    """Talks to WhatsOnChain (or chainsim's WoC face) through an injected ``httpx.AsyncClient``."""

    provider = Provider.WOC

    def __init__(
        self,
        http: httpx.AsyncClient,
        config: WocConfig,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self._clock = clock
        self._sleep = sleep
        self._root = f"{config.base_url.rstrip('/')}/v1/bsv/{config.network}"
        self._caller = provider_caller(
            http, Provider.WOC, config.retry, attempt_timeout_s=config.attempt_timeout_s, sleep=sleep, rand=rand
        )
        headers = {"Accept": "application/json, text/plain"}
        if config.api_key:
            # go-whatsonchain and most apps use woc-api-key; ARC's own WoC client sends Authorization.
            headers["woc-api-key"] = config.api_key
            headers["Authorization"] = config.api_key
        self._headers: Mapping[str, str] = headers

    def _deadline(self, deadline: Deadline | None) -> Deadline:
        return deadline if deadline is not None else Deadline.after(self.config.default_budget_s, self._clock)

    # ---- broadcast ---------------------------------------------------------------------------

    async def broadcast(self, tx: PreparedTx, *, deadline: Deadline | None = None) -> BroadcastOutcome:
        """Submit the raw bytes. "Already in the mempool"/"already known" count as accepted, so
        re-sending the same transaction is safe."""
        try:
            response = await self._caller.request(
                "POST",
                f"{self._root}/tx/raw",
                deadline=self._deadline(deadline),
                headers=self._headers,
                json={"txhex": tx.raw.hex()},
                should_retry=broadcast_should_retry,
            )
        except ChainUnavailable as exc:
            return unavailable(tx.txid, Provider.WOC, exc.message, exc.http_status)
        return outcome_from_broadcast(response, tx.txid)

    # ---- plumbing for lookups ----------------------------------------------------------------

    async def _fetch(
        self, method: str, path: str, deadline: Deadline, *, json: Any = None, allow_404: bool = False
    ) -> httpx.Response | None:
        response = await self._caller.request(
            method, self._root + path, deadline=deadline, headers=self._headers, json=json
        )
        if response.status_code == 404 and allow_404:
            return None
        if response.status_code != 200:
            raise ChainUnavailable(
                Provider.WOC,
                f"{method} {path}: HTTP {response.status_code}: {response.text[:200]}",
                http_status=response.status_code,
                attempts=1,
            )
        return response

    async def _json(
        self, method: str, path: str, deadline: Deadline, *, json: Any = None, allow_404: bool = False
    ) -> Any:
        response = await self._fetch(method, path, deadline, json=json, allow_404=allow_404)
        if response is None:
            return None
        try:
            return parse_json(response)
        except ShapeError as exc:
            raise ChainResponseError(Provider.WOC, f"{method} {path}: {exc}") from exc

    def _bad(self, what: str, exc: ShapeError) -> ChainResponseError:
        return ChainResponseError(Provider.WOC, f"{what}: {exc}")

    # ---- chain -------------------------------------------------------------------------------

    async def chain_tip(self, *, deadline: Deadline | None = None) -> ChainTip:
        payload = await self._json("GET", "/chain/info", self._deadline(deadline))
        try:
            return parse_chain_tip(payload)
        except ShapeError as exc:
            raise self._bad("chain info", exc) from exc

    async def block_header(self, block: int | str, *, deadline: Deadline | None = None) -> BlockHeader | None:
        """The header of the longest-chain block at a height (int) or with a hash (str); None if
        there is none."""
        if isinstance(block, int):
            if block < 0:
                raise ValueError("block height must not be negative")
            ident = str(block)
        else:
            ident = require_txid(block)  # block hashes have the same shape as txids
        payload = await self._json("GET", f"/block/{ident}/header", self._deadline(deadline), allow_404=True)
        if payload is None:
            return None
        try:
            return parse_header(payload)
        except ShapeError as exc:
            raise self._bad("block header", exc) from exc

    async def block(self, block: int | str, *, deadline: Deadline | None = None) -> BlockSummary | None:
        """``GET /block/height/{height}`` (int) or ``/block/hash/{hash}`` (str): the header, the
        transaction count, the txids WoC lists (all up to 1000, else the first 100) and the pages
        it links for the rest; None when there is no such block."""
        if isinstance(block, int):
            if block < 0:
                raise ValueError("block height must not be negative")
            path = f"/block/height/{block}"
        else:
            path = f"/block/hash/{require_txid(block)}"
        payload = await self._json("GET", path, self._deadline(deadline), allow_404=True)
        if payload is None:
            return None
        try:
            return parse_block(payload)
        except ShapeError as exc:
            raise self._bad("block", exc) from exc

    async def block_page(
        self, block_hash: str, page: int, *, deadline: Deadline | None = None
    ) -> tuple[str, ...] | None:
        """``GET /block/hash/{hash}/page/{page}``: the txids of one page (1-based); None when WoC
        has no such page."""
        if page < 1:
            raise ValueError("block pages are numbered from 1")
        path = f"/block/hash/{require_txid(block_hash)}/page/{page}"
        payload = await self._json("GET", path, self._deadline(deadline), allow_404=True)
        if payload is None:
            return None
        try:
            return parse_txids(payload, "block page")
        except ShapeError as exc:
            raise self._bad("block page", exc) from exc

    async def block_txids(self, block: int | str, *, deadline: Deadline | None = None) -> BlockTxids | None:
        """Every txid of a block, in block order, with its header: the block and then each page it
        links (one deadline for all of them); None when there is no such block. The count must
        match WoC's ``txcount``; the caller checks the merkle root against the header."""
        budget = self._deadline(deadline)
        summary = await self.block(block, deadline=budget)
        if summary is None:
            return None

        async def fetch(page: int) -> tuple[str, ...]:
            txids = await self.block_page(summary.header.block_hash, page, deadline=budget)
            if txids is None:
                raise ChainResponseError(Provider.WOC, f"block {summary.header.block_hash} links page {page}: 404")
            return txids

        pages: list[tuple[str, ...]] = []
        if self.config.bulk_concurrency <= 1 or len(summary.pages) <= 1:
            for number, page in enumerate(summary.pages):
                if number and self.config.page_pause_s:
                    await self._sleep(self.config.page_pause_s)
                pages.append(await fetch(page))
        else:
            pages = await _bounded(fetch, list(summary.pages), self.config.bulk_concurrency)
        try:
            return BlockTxids(summary.header, assemble_block_txids(summary, pages))
        except ShapeError as exc:
            raise self._bad("block txids", exc) from exc

    async def mempool_txids(self, *, deadline: Deadline | None = None) -> tuple[str, ...]:
        """``GET /mempool/raw``: the txids in the node's mempool."""
        payload = await self._json("GET", "/mempool/raw", self._deadline(deadline))
        try:
            return parse_txids(payload, "mempool txids")
        except ShapeError as exc:
            raise self._bad("mempool txids", exc) from exc

    # ---- UTXOs -------------------------------------------------------------------------------

    async def unspent_page(
        self,
        address: str,
        scope: UtxoScope = UtxoScope.ALL,
        *,
        token: str | None = None,
        deadline: Deadline | None = None,
    ) -> UtxoPage:
        """One page of ``address``'s unspent outputs; pass the previous page's ``next_token``."""
        return await self._page(address, scope, token, self._deadline(deadline))

    async def list_unspent(
        self,
        address: str,
        scope: UtxoScope = UtxoScope.ALL,
        *,
        deadline: Deadline | None = None,
        max_pages: int = 1000,
    ) -> list[Utxo]:
        """Every unspent output of ``address`` in ``scope``, following ``nextPageToken``."""
        budget = self._deadline(deadline)
        utxos: list[Utxo] = []
        seen_tokens: set[str] = set()
        token: str | None = None
        for page_number in range(max_pages):
            if page_number and self.config.page_pause_s:
                await self._sleep(self.config.page_pause_s)
            page = await self._page(address, scope, token, budget)
            utxos.extend(page.utxos)
            token = page.next_token
            if token is None:
                return utxos
            if token in seen_tokens:
                raise ChainResponseError(Provider.WOC, "unspent list paging loops (a page token came back twice)")
            seen_tokens.add(token)
        raise ChainResponseError(Provider.WOC, f"unspent list of {address} has more than {max_pages} pages")

    async def _page(self, address: str, scope: UtxoScope, token: str | None, deadline: Deadline) -> UtxoPage:
        if not address.isalnum():
            raise ValueError("an address is base58 (letters and digits only)")
        url = f"{self._root}/address/{address}/{scope.value}"
        if token is not None:
            url = str(httpx.URL(url, params={"token": token}))
        response = await self._caller.request("GET", url, deadline=deadline, headers=self._headers)
        if response.status_code != 200:
            raise ChainUnavailable(
                Provider.WOC,
                f"unspent list: HTTP {response.status_code}: {response.text[:200]}",
                http_status=response.status_code,
                attempts=1,
            )
        try:
            return parse_utxo_page(parse_json(response))
        except ShapeError as exc:
            raise self._bad("unspent list", exc) from exc

    # ---- transactions ------------------------------------------------------------------------

    async def tx_statuses(self, txids: Sequence[str], *, deadline: Deadline | None = None) -> dict[str, TxChainStatus]:
        """Mined / mempool / unknown for each txid (``POST /txs/status`` in chunks of 20), keyed
        by txid; a txid WoC's answer leaves out is absent from the result."""
        wanted = list(dict.fromkeys(require_txid(t) for t in txids))
        return await self._bulk(
            "/txs/status",
            wanted,
            lambda chunk: {"txids": chunk},
            "tx status list",
            parse_tx_status,
            lambda status: status.txid,
            self._deadline(deadline),
        )

    async def spenders(
        self, outpoints: Sequence[Outpoint], *, deadline: Deadline | None = None
    ) -> dict[Outpoint, OutpointSpend]:
        """Who spends each outpoint (``POST /utxos/spent`` in chunks of 20, mempool and mined
        spends alike), keyed by outpoint in the order asked; an outpoint WoC's answer leaves out is
        absent from the result. One deadline bounds all chunks; each request retries as the others."""
        wanted = list(dict.fromkeys(Outpoint(require_txid(o.txid), o.vout) for o in outpoints))
        if any(not 0 <= o.vout <= 0xFFFFFFFF for o in wanted):
            raise ValueError("an output index is between 0 and 2^32 - 1")
        return await self._bulk(
            "/utxos/spent",
            wanted,
            lambda chunk: {"utxos": [{"txid": o.txid, "vout": o.vout} for o in chunk]},
            "spent list",
            parse_outpoint_spend,
            lambda spend: spend.outpoint,
            self._deadline(deadline),
        )

    async def _bulk(
        self,
        path: str,
        wanted: list[K],
        body_of: Callable[[list[K]], object],
        what: str,
        parse: Callable[[Any], V],
        key_of: Callable[[V], K],
        budget: Deadline,
    ) -> dict[K, V]:
        """A bulk POST endpoint asked in chunks of WOC_BULK_LIMIT; answers keyed as asked, the first
        answer for a key kept, keys the answer leaves out (or that were not asked) absent."""
        chunks = [wanted[start : start + WOC_BULK_LIMIT] for start in range(0, len(wanted), WOC_BULK_LIMIT)]

        async def fetch(chunk: list[K]) -> list[V]:
            payload = await self._json("POST", path, budget, json=body_of(chunk))
            try:
                return [parse(entry) for entry in as_list(payload, what)]
            except ShapeError as exc:
                raise self._bad(what, exc) from exc

        answers: list[list[V]] = []
        if self.config.bulk_concurrency <= 1 or len(chunks) <= 1:
            for number, chunk in enumerate(chunks):
                if number and self.config.page_pause_s:
                    await self._sleep(self.config.page_pause_s)
                answers.append(await fetch(chunk))
        else:
            answers = await _bounded(fetch, chunks, self.config.bulk_concurrency)
        found: dict[K, V] = {}
        for chunk, answer in zip(chunks, answers, strict=True):
            asked = set(chunk)
            for value in answer:
                key = key_of(value)
                if key in asked:
                    found.setdefault(key, value)
        return {k: found[k] for k in wanted if k in found}

    async def raw_txs(self, txids: Sequence[str], *, deadline: Deadline | None = None) -> dict[str, bytes]:
        """The raw bytes of each txid WoC knows (``POST /txs/hex`` in chunks of 20, mempool and mined
        alike, coinbases included), keyed by txid in the order asked; unknown ones are absent. Each
        answer is checked to hash to its txid."""
        wanted = list(dict.fromkeys(require_txid(t) for t in txids))
        found = await self._bulk(
            "/txs/hex",
            wanted,
            lambda chunk: {"txids": chunk},
            "raw tx list",
            parse_raw_tx,
            lambda entry: entry[0],
            self._deadline(deadline),
        )
        return {txid: raw for txid, (_, raw) in found.items() if raw is not None}

    async def raw_tx(self, txid: str, *, deadline: Deadline | None = None) -> bytes | None:
        response = await self._fetch("GET", f"/tx/{require_txid(txid)}/hex", self._deadline(deadline), allow_404=True)
        if response is None:
            return None
        try:
            return bytes.fromhex(response.text.strip().strip('"'))
        except ValueError as exc:
            raise ChainResponseError(Provider.WOC, "raw tx: body is not hex") from exc

    async def tsc_proof(self, txid: str, *, deadline: Deadline | None = None) -> TscProof | None:
        """The TSC merkle proof of a mined tx; None when WoC has none (unknown or unconfirmed)."""
        path = f"/tx/{require_txid(txid)}/proof/tsc"
        payload = await self._json("GET", path, self._deadline(deadline), allow_404=True)
        if payload is None or payload == []:
            return None
        try:
            return parse_tsc_proof(payload)
        except ShapeError as exc:
            raise self._bad("TSC proof", exc) from exc
