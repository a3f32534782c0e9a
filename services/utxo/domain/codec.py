"""Recorded answers of mutating requests (replayed on a retry with the same request_id): compact
JSON (times as integer microseconds), zlib-compressed. A batch answer holds hundreds of outpoints;
sending it to PostgreSQL uncompressed cost more than the rest of the request."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from proofline_kit.wire import Outpoint
from services.utxo.domain.models import (
    AcceptedResult,
    BroadcastOutcome,
    CommitResult,
    ConflictResult,
    Lease,
    LeaseState,
    MaintenanceAction,
    MaintenanceOutcome,
    MaintenanceResult,
    MaintenanceTx,
    PlannedOutput,
    Purpose,
    ReleaseResult,
    SyncSummary,
    Utxo,
    UtxoChange,
    UtxoStatus,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_PURPOSES = {p.value: p for p in Purpose}
_STATUSES = {s.value: s for s in UtxoStatus}


def _time(value: datetime | None) -> int | None:
    return (value - _EPOCH) // _MICROSECOND if value is not None else None


def _parse_time(value: int | None) -> datetime | None:
    return _EPOCH + timedelta(microseconds=value) if value is not None else None


def _required_time(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _dump(value: object) -> bytes:
    return zlib.compress(orjson.dumps(value), 1)


def _load(raw: bytes) -> Any:
    return orjson.loads(zlib.decompress(raw))


def _utxo_back(v: list[Any]) -> Utxo:
    return Utxo(
        row_id=v[0],
        fencing_token=v[1],
        outpoint=Outpoint(v[2], v[3]),
        satoshis=v[4],
        locking_script=bytes.fromhex(v[5]),
        owner_key_id=v[6],
        purpose=_PURPOSES[v[7]],
        status=_STATUSES[v[8]],
        block_height=v[9],
        confirmations=v[10],
        lease_id=v[11],
        lease_expires_at=_parse_time(v[12]),
        spent_by_txid=v[13],
        competing_txids=tuple(v[14]),
        status_reason=v[15],
        created_at=_required_time(v[16]),
        updated_at=_required_time(v[17]),
        # Answers recorded before unconfirmed_depth existed have 18 items: depth 0.
        unconfirmed_depth=v[18] if len(v) > 18 else 0,
    )


def _utxos(values: Sequence[Utxo]) -> list[list[Any]]:
    """Each Utxo as a list (the order `_utxo_back` reads), with the conversions the rows of a batch
    share (times, scripts) done once per distinct value."""
    times: dict[datetime | None, int | None] = {None: None}
    scripts: dict[bytes, str] = {}
    result = []
    for u in values:
        created, updated, expires, script = u.created_at, u.updated_at, u.lease_expires_at, u.locking_script
        if created not in times:
            times[created] = _time(created)
        if updated not in times:
            times[updated] = _time(updated)
        if expires not in times:
            times[expires] = _time(expires)
        if script not in scripts:
            scripts[script] = script.hex()
        result.append(
            [
                u.row_id,
                u.fencing_token,
                u.outpoint.txid,
                u.outpoint.vout,
                u.satoshis,
                scripts[script],
                u.owner_key_id,
                u.purpose.value,
                u.status.value,
                u.block_height,
                u.confirmations,
                u.lease_id,
                times[expires],
                u.spent_by_txid,
                list(u.competing_txids),
                u.status_reason,
                times[created],
                times[updated],
                u.unconfirmed_depth,
            ]
        )
    return result


def _utxos_back(values: list[list[Any]]) -> tuple[Utxo, ...]:
    return tuple(_utxo_back(v) for v in values)


def _outpoints(values: Sequence[Outpoint]) -> list[list[Any]]:
    return [[o.txid, o.vout] for o in values]


def _outpoints_back(values: list[list[Any]]) -> tuple[Outpoint, ...]:
    return tuple(Outpoint(t, v) for t, v in values)


def _lease(lease: Lease) -> dict[str, Any]:
    return {
        "id": lease.lease_id,
        "token": lease.fencing_token,
        "state": lease.state.value,
        "holder": lease.holder,
        "caller": lease.caller_id,
        "created": _time(lease.created_at),
        "expires": _time(lease.expires_at),
        "utxos": _utxos(lease.utxos),
    }


def _lease_back(data: dict[str, Any]) -> Lease:
    return Lease(
        lease_id=data["id"],
        fencing_token=data["token"],
        state=LeaseState(data["state"]),
        holder=data["holder"],
        caller_id=data["caller"],
        created_at=_required_time(data["created"]),
        expires_at=_required_time(data["expires"]),
        utxos=_utxos_back(data["utxos"]),
    )


def lease_to_json(lease: Lease) -> bytes:
    return _dump(_lease(lease))


def lease_from_json(raw: bytes) -> Lease:
    return _lease_back(_load(raw))


def release_to_json(result: ReleaseResult) -> bytes:
    return _dump({"released": _outpoints(result.released), "lease": _lease(result.lease)})


def release_from_json(raw: bytes) -> ReleaseResult:
    data = _load(raw)
    return ReleaseResult(_outpoints_back(data["released"]), _lease_back(data["lease"]))


def commit_to_json(result: CommitResult) -> bytes:
    return _dump(
        {
            "spent": _utxos(result.spent),
            "added": _utxos(result.added),
            "released": _outpoints(result.released),
            "lease": _lease(result.lease),
        }
    )


def commit_from_json(raw: bytes) -> CommitResult:
    data = _load(raw)
    return CommitResult(
        _utxos_back(data["spent"]),
        _utxos_back(data["added"]),
        _outpoints_back(data["released"]),
        _lease_back(data["lease"]),
    )


def conflict_to_json(result: ConflictResult) -> bytes:
    return _dump(
        {
            "dirty": _utxos(result.dirty),
            "invalidated": _utxos(result.invalidated),
            "txids": list(result.invalidated_txids),
        }
    )


def conflict_from_json(raw: bytes) -> ConflictResult:
    data = _load(raw)
    # Answers recorded before the cascade have no "txids".
    return ConflictResult(_utxos_back(data["dirty"]), _utxos_back(data["invalidated"]), tuple(data.get("txids", ())))


def accepted_to_json(result: AcceptedResult) -> bytes:
    return _dump({"available": _utxos(result.available), "skipped": list(result.skipped_txids)})


def accepted_from_json(raw: bytes) -> AcceptedResult:
    data = _load(raw)
    return AcceptedResult(_utxos_back(data["available"]), tuple(data["skipped"]))


def utxos_to_json(values: Sequence[Utxo]) -> bytes:
    return _dump(_utxos(values))


def utxos_from_json(raw: bytes) -> tuple[Utxo, ...]:
    return _utxos_back(_load(raw))


def _planned_output(o: PlannedOutput) -> list[Any]:
    return [
        o.vout,
        o.satoshis,
        o.address,
        o.locking_script.hex(),
        o.owner_key_id,
        o.purpose.value if o.purpose else None,
    ]


def _planned_output_back(v: list[Any]) -> PlannedOutput:
    return PlannedOutput(v[0], v[1], v[2], bytes.fromhex(v[3]), v[4], Purpose(v[5]) if v[5] else None)


def _maintenance_tx(t: MaintenanceTx) -> dict[str, Any]:
    return {
        "inputs": _utxos(t.inputs),
        "outputs": [_planned_output(o) for o in t.outputs],
        "fee": t.fee_satoshis,
        "rate": t.fee_rate_satoshis_per_kb,
        "size": t.size_bytes,
        "txid": t.txid,
        "outcome": t.outcome.value,
        "detail": t.detail,
        "attempts": t.attempts,
    }


def _maintenance_tx_back(d: dict[str, Any]) -> MaintenanceTx:
    return MaintenanceTx(
        inputs=_utxos_back(d["inputs"]),
        outputs=tuple(_planned_output_back(o) for o in d["outputs"]),
        fee_satoshis=d["fee"],
        fee_rate_satoshis_per_kb=d["rate"],
        size_bytes=d["size"],
        txid=d["txid"],
        outcome=BroadcastOutcome(d["outcome"]),
        detail=d["detail"],
        attempts=d["attempts"],
    )


def _sync(s: SyncSummary) -> dict[str, Any]:
    return {
        "counts": [
            s.added,
            s.confirmed,
            s.marked_spent,
            s.dirty_to_available,
            s.dirty_to_spent,
            s.invalidated,
            s.unchanged,
            s.tip_height,
        ],
        "changes": [
            [
                c.outpoint.txid,
                c.outpoint.vout,
                c.satoshis,
                c.from_status.value if c.from_status else None,
                c.to_status.value,
                c.reason,
            ]
            for c in s.changes
        ],
        "truncated": s.changes_truncated,
    }


def _sync_back(d: dict[str, Any]) -> SyncSummary:
    added, confirmed, marked_spent, to_available, to_spent, invalidated, unchanged, tip = d["counts"]
    return SyncSummary(
        added,
        confirmed,
        marked_spent,
        to_available,
        to_spent,
        invalidated,
        unchanged,
        tip,
        changes=tuple(
            UtxoChange(Outpoint(c[0], c[1]), c[2], UtxoStatus(c[3]) if c[3] else None, UtxoStatus(c[4]), c[5])
            for c in d["changes"]
        ),
        changes_truncated=d["truncated"],
    )


def _result(r: MaintenanceResult) -> dict[str, Any]:
    return {
        "action": r.action.value,
        "outcome": r.outcome.value,
        "dry": r.dry_run,
        "txs": [_maintenance_tx(t) for t in r.transactions],
        "sync": _sync(r.sync) if r.sync else None,
        "reaped": [r.reaped_leases, r.reaped_utxos],
        "next": _time(r.next_allowed_at),
        "detail": r.detail,
    }


def _result_back(d: dict[str, Any]) -> MaintenanceResult:
    return MaintenanceResult(
        action=MaintenanceAction(d["action"]),
        outcome=MaintenanceOutcome(d["outcome"]),
        dry_run=d["dry"],
        transactions=tuple(_maintenance_tx_back(t) for t in d["txs"]),
        sync=_sync_back(d["sync"]) if d["sync"] else None,
        reaped_leases=d["reaped"][0],
        reaped_utxos=d["reaped"][1],
        next_allowed_at=_parse_time(d["next"]),
        detail=d["detail"],
    )


def results_to_json(results: Sequence[MaintenanceResult]) -> bytes:
    return _dump([_result(r) for r in results])


def results_from_json(raw: bytes) -> list[MaintenanceResult]:
    return [_result_back(d) for d in _load(raw)]
