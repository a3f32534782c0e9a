"""WhatsOnChain answers -> typed results (pure functions over bodies; arc-woc.md §5).

WoC relays node errors as non-2xx plain text, mostly HTTP 500 ("unexpected response code 500:
Missing inputs"), so a 500 is only a transient failure when its text is not a node verdict.
"""

from __future__ import annotations

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
