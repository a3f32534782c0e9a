"""ARC answers -> typed results. Pure functions over parsed bodies, so recorded responses test them.

ARC reports node verdicts as HTTP 200 with a txStatus (REJECTED, DOUBLE_SPEND_ATTEMPTED,
SEEN_IN_ORPHAN_MEMPOOL...) and only its own pre-validation as 4xx/46x; ``POST /v1/txs`` answers a
bare array, successes first, so entries are matched to requests by txid (arc-woc.md §2.4-§2.7).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from .fees import FeeRate
from .jsonshape import (
    ShapeError,
    as_list,
    as_object,
    opt_bool,
    opt_int,
    opt_str,
    parse_json,
    req_int,
    req_str,
    str_tuple,
)
from .outcomes import ArcStatus, BroadcastOutcome, OutcomeKind, Provider, unavailable
from .rejections import classify_node_text


@dataclass(frozen=True, slots=True)
class ArcTxStatus:
    """ARC's view of one transaction (``GET /v1/tx/{txid}``, POST results, callbacks)."""

    txid: str
    status: ArcStatus | None  # None: a status name this client does not know yet
    status_name: str
    extra_info: str = ""
    competing_txids: tuple[str, ...] = ()
    block_hash: str | None = None
    block_height: int | None = None
    merkle_path: str | None = None
    timestamp: str | None = None


@dataclass(frozen=True, slots=True)
class ArcPolicy:
    fee_rate: FeeRate
    max_tx_size: int | None = None
    max_script_size: int | None = None
    max_tx_sigops: int | None = None
    standard_format_supported: bool | None = None


@dataclass(frozen=True, slots=True)
class ArcHealth:
    healthy: bool
    version: str | None
    reason: str | None


_ACCEPTED = frozenset(
    {
        ArcStatus.QUEUED,
        ArcStatus.RECEIVED,
        ArcStatus.STORED,
        ArcStatus.ANNOUNCED_TO_NETWORK,
        ArcStatus.REQUESTED_BY_NETWORK,
        ArcStatus.SENT_TO_NETWORK,
        ArcStatus.ACCEPTED_BY_NETWORK,
        ArcStatus.SEEN_ON_NETWORK,
        # Its block was orphaned, but the tx is still valid and ARC re-broadcasts it.
        ArcStatus.MINED_IN_STALE_BLOCK,
        ArcStatus.MINED,
    }
)

_INVALID_CODES = frozenset({400, 422, 461, 462, 463, 464, 467, 468, 471, 472, 474, 475})
_FEE_CODES = frozenset({465, 473})


def parse_tx_status(value: Any) -> ArcTxStatus:
    obj = as_object(value, "ARC transaction status")
    name = req_str(obj, "txStatus")
    height = opt_int(obj, "blockHeight")
    return ArcTxStatus(
        txid=req_str(obj, "txid").lower(),
        status=ArcStatus.from_name(name),
        status_name=name,
        extra_info=opt_str(obj, "extraInfo") or "",
        competing_txids=tuple(t.lower() for t in str_tuple(obj, "competingTxs")),
        block_hash=opt_str(obj, "blockHash") or None,
        block_height=height or None,  # ARC sends 0 for "not mined"
        merkle_path=opt_str(obj, "merklePath") or None,
        timestamp=opt_str(obj, "timestamp"),
    )


def outcome_from_status(st: ArcTxStatus, http_status: int | None = 200) -> BroadcastOutcome:
    status = st.status
    if status is None or status is ArcStatus.UNKNOWN:
        return unavailable(st.txid, Provider.ARC, f"unrecognised ARC status {st.status_name!r}", http_status)
    if status in _ACCEPTED:
        kind = OutcomeKind.ACCEPTED
    elif status is ArcStatus.SEEN_IN_ORPHAN_MEMPOOL:
        kind = OutcomeKind.MISSING_INPUTS
    elif status is ArcStatus.DOUBLE_SPEND_ATTEMPTED:
        kind = OutcomeKind.DOUBLE_SPEND
    else:  # REJECTED: the reason tells a lost double spend or an expired orphan from a plain rejection
        named = classify_node_text(st.extra_info)
        kind = OutcomeKind.INVALID if named in (None, OutcomeKind.ACCEPTED) else named
    return BroadcastOutcome(
        kind,
        st.txid,
        Provider.ARC,
        status=status,
        competing_txids=st.competing_txids,
        reason=st.extra_info,
        http_status=http_status,
        block_hash=st.block_hash,
        block_height=st.block_height,
        merkle_path=st.merkle_path,
    )


def outcome_from_error(txid: str, http_status: int, payload: Any, text: str = "") -> BroadcastOutcome:
    """An ARC error object (RFC 7807-like, or Echo's ``{"message"}``) or any non-200 answer."""
    code = http_status
    reason = text.strip()[:500]
    if isinstance(payload, dict):
        status_field = payload.get("status")
        if isinstance(status_field, int) and not isinstance(status_field, bool):
            code = status_field
        for key in ("extraInfo", "detail", "title", "message"):
            value = payload.get(key)
            if isinstance(value, str) and value:
                reason = value
                break
    if code == 460:
        # Raw tx whose parents ARC could not find anywhere; otherwise a format the ARC refuses.
        kind = OutcomeKind.MISSING_INPUTS if "parent" in reason.lower() else OutcomeKind.INVALID
    elif code in _FEE_CODES:
        kind = OutcomeKind.FEE_TOO_LOW
    elif code == 466:
        kind = OutcomeKind.DOUBLE_SPEND
    elif code in _INVALID_CODES:
        kind = OutcomeKind.INVALID
    else:  # 401/403 gateway, 404, 409 generic, 469 chain-tracker failure...: no verdict on the tx
        kind = OutcomeKind.UNAVAILABLE
        reason = f"ARC error {code}: {reason}" if reason else f"ARC error {code}"
    return BroadcastOutcome(kind, txid, Provider.ARC, reason=reason, arc_code=code, http_status=http_status)


def outcome_from_response(response: httpx.Response, txid: str) -> BroadcastOutcome:
    """The outcome of ``POST /v1/tx`` for ``txid``."""
    try:
        payload = parse_json(response)
    except ShapeError:
        payload = None
    if response.status_code != 200:
        return outcome_from_error(txid, response.status_code, payload, response.text)
    try:
        st = parse_tx_status(payload)
    except ShapeError as exc:
        return unavailable(txid, Provider.ARC, f"unreadable ARC answer: {exc}", 200)
    if st.txid != txid:
        return unavailable(txid, Provider.ARC, f"ARC answered for another txid {st.txid}", 200)
    return outcome_from_status(st)


def outcomes_from_batch(response: httpx.Response, txids: Sequence[str]) -> dict[str, BroadcastOutcome]:
    """Outcomes of ``POST /v1/txs`` keyed by txid, in request order; a txid ARC did not answer for is
    UNAVAILABLE (never guessed from positions)."""
    try:
        payload = parse_json(response)
    except ShapeError:
        payload = None
    if response.status_code != 200:
        return {t: outcome_from_error(t, response.status_code, payload, response.text) for t in txids}
    if isinstance(payload, dict) and "transactions" in payload:  # the shape ARC's OpenAPI file declares
        payload = payload["transactions"]
    try:
        entries = as_list(payload, "ARC batch answer")
    except ShapeError as exc:
        return {t: unavailable(t, Provider.ARC, f"unreadable ARC answer: {exc}", 200) for t in txids}
    wanted = set(txids)
    found: dict[str, BroadcastOutcome] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("txid"), str):
            continue
        txid = entry["txid"].lower()
        if txid not in wanted or txid in found:
            continue
        if "txStatus" in entry:
            try:
                found[txid] = outcome_from_status(parse_tx_status(entry))
            except ShapeError as exc:
                found[txid] = unavailable(txid, Provider.ARC, f"unreadable ARC answer: {exc}", 200)
        else:
            found[txid] = outcome_from_error(txid, 200, entry)
    missing = "ARC's batch answer has no entry for this txid"
    return {t: found.get(t) or unavailable(t, Provider.ARC, missing, 200) for t in txids}


def parse_policy(payload: Any) -> ArcPolicy:
    policy = as_object(as_object(payload, "ARC policy answer").get("policy"), "policy")
    fee_obj = policy.get("miningFee")
    if fee_obj is None and isinstance(policy.get("fees"), dict):
        fee_obj = policy["fees"].get("miningFee")
    fee = as_object(fee_obj, "policy.miningFee")
    try:
        rate = FeeRate(req_int(fee, "satoshis"), req_int(fee, "bytes"))
    except ValueError as exc:
        raise ShapeError(f"policy.miningFee: {exc}") from exc
    return ArcPolicy(
        fee_rate=rate,
        max_tx_size=opt_int(policy, "maxtxsizepolicy"),
        max_script_size=opt_int(policy, "maxscriptsizepolicy"),
        max_tx_sigops=opt_int(policy, "maxtxsigopscountspolicy"),
        standard_format_supported=opt_bool(policy, "standardFormatSupported"),
    )


def parse_health(payload: Any) -> ArcHealth:
    obj = as_object(payload, "ARC health answer")
    healthy = opt_bool(obj, "healthy")
    if healthy is None:
        raise ShapeError("healthy is missing")
    return ArcHealth(healthy, opt_str(obj, "version"), opt_str(obj, "reason"))
