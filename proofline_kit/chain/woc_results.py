"""WhatsOnChain answers -> typed results (pure functions over bodies; arc-woc.md §5).

WoC relays node errors as non-2xx plain text, mostly HTTP 500 ("unexpected response code 500:
Missing inputs"), so a 500 is only a transient failure when its text is not a node verdict.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

import httpx

from proofline_kit.outbound.retry import is_retryable_status
from proofline_kit.wire import Outpoint

from .jsonshape import ShapeError, as_list, as_object, opt_bool, opt_int, opt_str, req_int, req_str
from .outcomes import BroadcastOutcome, OutcomeKind, Provider, unavailable
from .rejections import classify_node_text

# "16: mandatory-script-verify-flag-failed", "258: txn-mempool-conflict": a node reject code.
_NODE_REJECT_CODE = re.compile(r"(?:^|:\s)\d{1,3}: \S")
# WoC's wrapper around the node's JSON-RPC error, which bitcoind-style nodes answer with HTTP 500.
_RELAYED_RPC_ERROR = "unexpected response code 500:"


class UtxoScope(Enum):
    ALL = "unspent/all"
    CONFIRMED = "confirmed/unspent"
    UNCONFIRMED = "unconfirmed/unspent"


@dataclass(frozen=True, slots=True)
class Utxo:
    txid: str
    vout: int
    satoshis: int
    height: int | None  # None while unconfirmed
    spent_in_mempool: bool  # a mempool tx already spends it: do not hand it out
    script_hex: str | None = None  # WoC includes it for unconfirmed outputs only

    @property
    def confirmed(self) -> bool:
        return self.height is not None


@dataclass(frozen=True, slots=True)
class UtxoPage:
    utxos: tuple[Utxo, ...]
    next_token: str | None


@dataclass(frozen=True, slots=True)
class ChainTip:
    height: int
    block_hash: str


@dataclass(frozen=True, slots=True)
class BlockHeader:
    block_hash: str
    height: int
    merkle_root: str
    previous_hash: str | None
    time: int | None
    confirmations: int | None


@dataclass(frozen=True, slots=True)
class BlockSummary:
    """``GET /block/hash/{hash}`` or ``/block/height/{height}``: the header, how many transactions
    the block holds, the txids WoC lists in ``tx`` (all of them up to 1000, else the first 100,
    per docs.taal.com/core-products/whatsonchain/block) and the pages it links for the rest."""

    header: BlockHeader
    tx_count: int
    txids: tuple[str, ...]
    pages: tuple[int, ...]  # page numbers from ``pages.uri``, in the order given
    page_size: int | None


@dataclass(frozen=True, slots=True)
class BlockTxids:
    """A block's header and every one of its txids, in block order (the coinbase first)."""

    header: BlockHeader
    txids: tuple[str, ...]


class TxChainState(Enum):
    MINED = "mined"
    MEMPOOL = "mempool"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class TxChainStatus:
    txid: str
    state: TxChainState
    block_hash: str | None = None
    block_height: int | None = None
    confirmations: int | None = None


class SpendState(Enum):
    SPENT = "spent"
    UNSPENT = "unspent"
    UNKNOWN = "unknown"  # WoC does not know the output (no such transaction or index)


@dataclass(frozen=True, slots=True)
class OutpointSpend:
    """What ``POST /utxos/spent`` says of one outpoint: who spends it (txid and input index) when
    it is spent, in the mempool or in a block."""

    outpoint: Outpoint
    state: SpendState
    spender_txid: str | None = None
    spender_vin: int | None = None
    # The spender is mined ("confirmed") or in the mempool; None when WoC does not say.
    spender_confirmed: bool | None = None


@dataclass(frozen=True, slots=True)
class TscProof:
    """A TSC merkle proof (``/tx/{txid}/proof/tsc``): ``nodes`` bottom-up, "*" = duplicate."""

    index: int
    tx_or_id: str
    target: str
    nodes: tuple[str, ...]


# ---- broadcast ------------------------------------------------------------------------------


def _is_node_verdict(text: str) -> bool:
    return (
        classify_node_text(text) is not None
        or _NODE_REJECT_CODE.search(text) is not None
        or _RELAYED_RPC_ERROR in text.lower()
    )


def broadcast_should_retry(response: httpx.Response) -> bool:
    """Retry 429 and 5xx, except a 5xx carrying the node's verdict (that answer will not change)."""
    if not is_retryable_status(response.status_code):
        return False
    return response.status_code == 429 or not _is_node_verdict(response.text)


def outcome_from_broadcast(response: httpx.Response, txid: str) -> BroadcastOutcome:
    """The outcome of ``POST /tx/raw`` for ``txid``."""
    status = response.status_code
    text = response.text.strip()
    if status == 200:
        answered = text.strip('"').strip().lower()
        if answered == txid:
            return BroadcastOutcome(OutcomeKind.ACCEPTED, txid, Provider.WOC, http_status=200)
        return unavailable(txid, Provider.WOC, f"WoC answered {text[:100]!r} instead of the txid", 200)
    kind = classify_node_text(text)
    if kind is None:
        if status in (401, 403, 404, 408) or (is_retryable_status(status) and not _is_node_verdict(text)):
            return unavailable(txid, Provider.WOC, f"WoC HTTP {status}: {text[:200]}", status)
        kind = OutcomeKind.INVALID
    return BroadcastOutcome(kind, txid, Provider.WOC, reason=text[:500], http_status=status)


# ---- lookups --------------------------------------------------------------------------------


def _no_error(obj: dict[str, Any], what: str) -> None:
    error = obj.get("error")
    if error:
        raise ShapeError(f"{what}: WoC reported error {error!r}")


def parse_utxo(value: Any) -> Utxo:
    obj = as_object(value, "utxo")
    satoshis = req_int(obj, "value")
    vout = req_int(obj, "tx_pos")
    if satoshis < 0 or vout < 0:
        raise ShapeError("utxo value and tx_pos must not be negative")
    height = opt_int(obj, "height")
    if obj.get("status") == "unconfirmed" or (height is not None and height <= 0):
        height = None  # the legacy list reports mempool outputs at height 0
    return Utxo(
        txid=req_str(obj, "tx_hash").lower(),
        vout=vout,
        satoshis=satoshis,
        height=height,
        spent_in_mempool=opt_bool(obj, "isSpentInMempoolTx") or False,
        script_hex=opt_str(obj, "hex"),
    )


def parse_utxo_page(payload: Any) -> UtxoPage:
    """Either the ``{result, nextPageToken, error}`` envelope or a bare array (tolerated)."""
    if isinstance(payload, list):
        return UtxoPage(tuple(parse_utxo(u) for u in payload), None)
    obj = as_object(payload, "unspent list")
    _no_error(obj, "unspent list")
    result = as_list(obj.get("result") or [], "result")
    return UtxoPage(tuple(parse_utxo(u) for u in result), opt_str(obj, "nextPageToken") or None)


def parse_chain_tip(payload: Any) -> ChainTip:
    obj = as_object(payload, "chain info")
    return ChainTip(height=req_int(obj, "blocks"), block_hash=req_str(obj, "bestblockhash").lower())


def parse_header(payload: Any) -> BlockHeader:
    obj = as_object(payload, "block header")
    return BlockHeader(
        block_hash=req_str(obj, "hash").lower(),
        height=req_int(obj, "height"),
        merkle_root=req_str(obj, "merkleroot").lower(),
        previous_hash=(opt_str(obj, "previousblockhash") or "").lower() or None,
        time=opt_int(obj, "time"),
        confirmations=opt_int(obj, "confirmations"),
    )


def parse_tx_status(value: Any) -> TxChainStatus:
    obj = as_object(value, "tx status")
    txid = req_str(obj, "txid").lower()
    if obj.get("error"):
        return TxChainStatus(txid, TxChainState.UNKNOWN)
    block_hash = opt_str(obj, "blockhash")
    if not block_hash:
        return TxChainStatus(txid, TxChainState.MEMPOOL)
    return TxChainStatus(
        txid,
        TxChainState.MINED,
        block_hash=block_hash.lower(),
        block_height=opt_int(obj, "blockheight"),
        confirmations=opt_int(obj, "confirmations"),
    )


def parse_tsc_proof(payload: Any) -> TscProof:
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise ShapeError("empty TSC proof list")
    obj = as_object(items[0], "TSC proof")
    nodes = obj.get("nodes")
    if not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes):
        raise ShapeError("TSC proof nodes must be a list of strings")
    return TscProof(
        index=req_int(obj, "index"),
        tx_or_id=req_str(obj, "txOrId").lower(),
        target=req_str(obj, "target").lower(),
        nodes=tuple(n.lower() for n in nodes),
    )


def _spend_outpoint(obj: dict[str, Any]) -> Outpoint:
    source = as_object(obj["utxo"], "utxo") if "utxo" in obj else obj
    vout = req_int(source, "vout")
    if vout < 0:
        raise ShapeError("vout must not be negative")
    return Outpoint(req_str(source, "txid").lower(), vout)


def parse_outpoint_spend(value: Any) -> OutpointSpend:
    """One entry of the bulk spent answer. WoC documents ``{"utxo": {txid, vout}, "spentIn":
    {txid, vin, status} | null, "error"}``; go-whatsonchain reads ``{txid, vout, spent: {txid,
    vin} | null}``, which is tolerated."""
    obj = as_object(value, "spent entry")
    outpoint = _spend_outpoint(obj)
    spender = obj.get("spentIn") if "spentIn" in obj else obj.get("spent")
    if spender is None:
        state = SpendState.UNKNOWN if obj.get("error") else SpendState.UNSPENT
        return OutpointSpend(outpoint, state)
    spent = as_object(spender, "spentIn")
    vin = req_int(spent, "vin")
    if vin < 0:
        raise ShapeError("spentIn.vin must not be negative")
    status = opt_str(spent, "status")
    return OutpointSpend(
        outpoint,
        SpendState.SPENT,
        spender_txid=req_str(spent, "txid").lower(),
        spender_vin=vin,
        spender_confirmed=None if status is None else status == "confirmed",
    )


# ---- blocks, mempool and raw transactions (what a wallet following blocks reads) ------------

# "/block/hash/<hash>/page/<n>", optionally under "/v1/bsv/<network>" (go-whatsonchain's mocks show both).
_PAGE_URI = re.compile(r"(?:/v1/bsv/[a-z]+)?/block/hash/([0-9a-fA-F]{64})/page/(\d{1,9})")


def parse_txids(payload: Any, what: str) -> tuple[str, ...]:
    """A JSON array of txids (a block page, ``/mempool/raw``, a block's ``tx``), lower-cased; every
    entry must be 64 hex digits. Checked in one pass: this runs over whole blocks."""
    items = as_list(payload, what)
    if not all(type(t) is str and len(t) == 64 for t in items):
        raise ShapeError(f"{what} must be a list of 64-digit txids")
    joined = "".join(items)
    try:
        if joined and not (joined.isascii() and joined.isalnum()):  # fromhex alone lets spaces through
            raise ValueError("not hex")
        bytes.fromhex(joined)
    except ValueError as exc:
        raise ShapeError(f"{what} holds a txid that is not hex") from exc
    return tuple(items) if joined == joined.lower() else tuple(t.lower() for t in items)


def _page_numbers(obj: dict[str, Any], block_hash: str) -> tuple[tuple[int, ...], int | None]:
    pages = obj.get("pages")
    if pages is None:
        return (), None
    pages = as_object(pages, "pages")
    numbers: list[int] = []
    for uri in as_list(pages.get("uri") or [], "pages.uri"):
        match = _PAGE_URI.fullmatch(uri) if isinstance(uri, str) else None
        if match is None or match.group(1).lower() != block_hash:
            raise ShapeError(f"pages.uri entry {uri!r} is not a page of block {block_hash}")
        numbers.append(int(match.group(2)))
    size = opt_int(pages, "size")
    if size is not None and size < 1:
        raise ShapeError("pages.size must be positive")
    return tuple(numbers), size


def parse_block(payload: Any) -> BlockSummary:
    obj = as_object(payload, "block")
    header = parse_header(obj)
    count = req_int(obj, "txcount")
    txids = parse_txids(obj.get("tx") or [], "tx")
    if count < 1 or len(txids) > count:
        raise ShapeError(f"block txcount {count} does not fit its {len(txids)} listed txids")
    pages, size = _page_numbers(obj, header.block_hash)
    return BlockSummary(header, count, txids, pages, size)


def assemble_block_txids(block: BlockSummary, pages: list[tuple[str, ...]]) -> tuple[str, ...]:
    """Every txid of ``block`` from its summary and its pages (fetched in ``block.pages`` order).

    WoC documents that a block over 1000 transactions lists 100 txids and links pages for "the
    remaining ids", but not where page 1 starts. Both readings are accepted: pages that hold all
    ``tx_count`` txids (page 1 repeating the 100), or pages that hold the rest after them; anything
    else (a count that fits neither, or a first page that does not continue the listed ones) is an
    answer we cannot read."""
    if not block.pages:
        if len(block.txids) != block.tx_count:
            raise ShapeError(f"block lists {len(block.txids)} of {block.tx_count} txids and links no pages")
        return block.txids
    paged = tuple(t for page in pages for t in page)
    if len(paged) == block.tx_count and paged[: len(block.txids)] == block.txids:
        return paged
    if len(block.txids) + len(paged) == block.tx_count:
        return block.txids + paged
    raise ShapeError(
        f"block {block.header.block_hash}: {len(block.txids)} listed and {len(paged)} paged txids "
        f"do not make its {block.tx_count}"
    )


def parse_raw_tx(value: Any) -> tuple[str, bytes | None]:
    """One entry of ``POST /txs/hex``: ``{"txid", "hex", ...}`` or ``{"txid", "error": "unknown"}``
    (arc-woc.md §5.2; ARC's ``WocRawTx``). The bytes must hash to the txid: a wallet credits what
    it reads here to that txid."""
    obj = as_object(value, "raw tx")
    txid = req_str(obj, "txid").lower()
    raw_hex = opt_str(obj, "hex")
    if obj.get("error") or not raw_hex:
        return txid, None
    try:
        raw = bytes.fromhex(raw_hex)
    except ValueError as exc:
        raise ShapeError(f"raw tx {txid}: hex is not hex") from exc
    if hashlib.sha256(hashlib.sha256(raw).digest()).digest()[::-1].hex() != txid:
        raise ShapeError(f"raw tx {txid}: the bytes WoC returned hash to another txid")
    return txid, raw
