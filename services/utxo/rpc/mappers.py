"""Translation between utxo protos and domain objects."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from proofline.common.v1 import common_pb2
from proofline.utxo.v1 import utxo_pb2

from proofline_kit.errors import invalid_argument
from proofline_kit.wire import Outpoint
from services.utxo.domain.models import (
    AcceptedResult,
    AddressComparison,
    BroadcastOutcome,
    ChainComparison,
    CommitResult,
    ComparisonState,
    ConflictKind,
    ConflictReport,
    ConflictResult,
    Lease,
    LeaseRequest,
    LeaseState,
    MaintenanceAction,
    MaintenanceOutcome,
    MaintenanceResult,
    MaintenanceTx,
    OutputSpec,
    PlannedOutput,
    PoolHealth,
    Purpose,
    ReleaseResult,
    Spend,
    SplitRequest,
    Strategy,
    SweepRequest,
    SyncSummary,
    Utxo,
    UtxoFilter,
    UtxoStatus,
)

ERROR_DOMAIN = "proofline.utxo"

_PURPOSES = {
    utxo_pb2.UTXO_PURPOSE_PUBLISH: Purpose.PUBLISH,
    utxo_pb2.UTXO_PURPOSE_FUNDING: Purpose.FUNDING,
    utxo_pb2.UTXO_PURPOSE_CHANGE: Purpose.CHANGE,
    utxo_pb2.UTXO_PURPOSE_WALLET: Purpose.WALLET,
}
_PURPOSES_OUT = {v: k for k, v in _PURPOSES.items()}
_STATUSES = {
    utxo_pb2.UTXO_STATUS_UNCONFIRMED: UtxoStatus.UNCONFIRMED,
    utxo_pb2.UTXO_STATUS_AVAILABLE: UtxoStatus.AVAILABLE,
    utxo_pb2.UTXO_STATUS_RESERVED: UtxoStatus.RESERVED,
    utxo_pb2.UTXO_STATUS_SPENT: UtxoStatus.SPENT,
    utxo_pb2.UTXO_STATUS_DIRTY: UtxoStatus.DIRTY,
    utxo_pb2.UTXO_STATUS_INVALID: UtxoStatus.INVALID,
}
_STATUSES_OUT = {v: k for k, v in _STATUSES.items()}
_STRATEGIES = {
    utxo_pb2.LEASE_STRATEGY_SMALLEST_FIRST: Strategy.SMALLEST_FIRST,
    utxo_pb2.LEASE_STRATEGY_LARGEST_FIRST: Strategy.LARGEST_FIRST,
}
_LEASE_STATES = {
    LeaseState.LIVE: utxo_pb2.LEASE_STATE_LIVE,
    LeaseState.EXPIRED: utxo_pb2.LEASE_STATE_EXPIRED,
    LeaseState.CLOSED: utxo_pb2.LEASE_STATE_CLOSED,
}
_CONFLICTS = {
    utxo_pb2.CONFLICT_KIND_DOUBLE_SPEND: ConflictKind.DOUBLE_SPEND,
    utxo_pb2.CONFLICT_KIND_MISSING_INPUTS: ConflictKind.MISSING_INPUTS,
    utxo_pb2.CONFLICT_KIND_REJECTED: ConflictKind.REJECTED,
}
_COMPARISONS = {
    ComparisonState.NOT_REQUESTED: utxo_pb2.CHAIN_COMPARISON_STATE_NOT_REQUESTED,
    ComparisonState.OK: utxo_pb2.CHAIN_COMPARISON_STATE_OK,
    ComparisonState.UNAVAILABLE: utxo_pb2.CHAIN_COMPARISON_STATE_UNAVAILABLE,
}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


def purpose_from_proto(value: int) -> Purpose | None:
    return _PURPOSES.get(cast(utxo_pb2.UtxoPurpose.ValueType, value))


def optional_purpose_from_proto(value: int, field: str = "purpose") -> Purpose | None:
    """UNSPECIFIED = no filter; unknown values are refused."""
    purpose = purpose_from_proto(value)
    if value and purpose is None:
        raise invalid_argument("PURPOSE_INVALID", field, "not a known UtxoPurpose")
    return purpose


def purpose_to_proto(value: Purpose) -> utxo_pb2.UtxoPurpose.ValueType:
    return _PURPOSES_OUT[value]


def status_from_proto(value: int) -> UtxoStatus | None:
    return _STATUSES.get(cast(utxo_pb2.UtxoStatus.ValueType, value))


def conflict_kind_from_proto(value: int) -> ConflictKind | None:
    return _CONFLICTS.get(cast(utxo_pb2.ConflictKind.ValueType, value))


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    return _timestamp(value)


def _timestamp(value: datetime) -> Timestamp:
    # Direct fields: Timestamp.FromDatetime is pure Python and showed up as a hot spot in batch answers.
    return Timestamp(seconds=(value - _EPOCH) // _SECOND, nanos=value.microsecond * 1000)


def duration(value: timedelta | None) -> Duration | None:
    if value is None:
        return None
    result = Duration()
    result.FromTimedelta(value)
    return result


def duration_from_proto(value: Duration, present: bool) -> timedelta | None:
    """None for an unset or zero duration (= the server default)."""
    if not present or (value.seconds == 0 and value.nanos == 0):
        return None
    return timedelta(seconds=value.seconds, microseconds=value.nanos // 1000)


def outpoint_from_proto(value: common_pb2.Outpoint) -> Outpoint:
    return Outpoint(value.txid, value.vout)


def outpoint_to_proto(value: Outpoint) -> common_pb2.Outpoint:
    return common_pb2.Outpoint(txid=value.txid, vout=value.vout)


def utxo_to_proto(value: Utxo) -> utxo_pb2.Utxo:
    return utxo_pb2.Utxo(**_utxo_fields(value, {}))


def _utxo_fields(value: Utxo, stamps: dict[datetime, Timestamp]) -> dict[str, Any]:
    """The Utxo message's fields, defaults left out. `stamps` memoizes timestamps across one answer:
    the rows of a batch mostly share their times (one statement's now(), one lease's expiry)."""
    outpoint = value.outpoint
    fields: dict[str, Any] = {
        "outpoint": common_pb2.Outpoint(txid=outpoint.txid, vout=outpoint.vout),
        "satoshis": value.satoshis,
        "locking_script": value.locking_script,
        "owner_key_id": value.owner_key_id,
        "purpose": _PURPOSES_OUT[value.purpose],
        "status": _STATUSES_OUT[value.status],
        "create_time": _stamp(stamps, value.created_at),
        "update_time": _stamp(stamps, value.updated_at),
    }
    if value.block_height:
        fields["block_height"] = value.block_height
    if value.confirmations:
        fields["confirmations"] = value.confirmations
    if value.lease_id:
        fields["lease_id"] = value.lease_id
    expires = value.lease_expires_at
    if expires is not None and value.status is UtxoStatus.RESERVED:
        fields["lease_expire_time"] = _stamp(stamps, expires)
    if value.spent_by_txid:
        fields["spent_by_txid"] = value.spent_by_txid
    if value.competing_txids:
        fields["competing_txids"] = value.competing_txids
    if value.status_reason:
        fields["status_reason"] = value.status_reason
    if value.unconfirmed_depth:
        fields["unconfirmed_depth"] = value.unconfirmed_depth
    return fields


def _stamp(stamps: dict[datetime, Timestamp], value: datetime) -> Timestamp:
    stamp = stamps.get(value)
    if stamp is None:
        stamp = stamps[value] = _timestamp(value)
    return stamp


def _add_utxos(target: Any, values: Sequence[Utxo], stamps: dict[datetime, Timestamp]) -> None:
    """Append Utxo messages to a repeated field. The rows of a batch answer differ mostly in their
    outpoint, value and spending txid: each message is copied from a template of its other fields
    (built once per distinct set), then those three are set; 2.5x cheaper than building each."""
    add = target.add
    templates: dict[tuple[object, ...], utxo_pb2.Utxo] = {}
    for value in values:
        key = (
            value.locking_script,
            value.owner_key_id,
            value.purpose,
            value.status,
            value.block_height,
            value.confirmations,
            value.lease_id,
            value.lease_expires_at,
            value.created_at,
            value.updated_at,
            value.competing_txids,
            value.status_reason,
            value.unconfirmed_depth,
        )
        template = templates.get(key)
        if template is None:
            fields = _utxo_fields(value, stamps)
            del fields["outpoint"], fields["satoshis"]
            fields.pop("spent_by_txid", None)
            template = templates[key] = utxo_pb2.Utxo(**fields)
        message = add()
        message.CopyFrom(template)
        outpoint = message.outpoint
        outpoint.txid = value.outpoint.txid
        outpoint.vout = value.outpoint.vout
        message.satoshis = value.satoshis
        if value.spent_by_txid:
            message.spent_by_txid = value.spent_by_txid


def lease_to_proto(value: Lease, stamps: dict[datetime, Timestamp] | None = None) -> utxo_pb2.Lease:
    stamps = {} if stamps is None else stamps
    message = utxo_pb2.Lease(
        lease_id=value.lease_id,
        fencing_token=value.fencing_token,
        state=_LEASE_STATES[value.state],
        holder=value.holder,
        caller_id=value.caller_id,
        create_time=timestamp(value.created_at),
        expire_time=timestamp(value.expires_at),
        total_satoshis=value.total_satoshis,
    )
    _add_utxos(message.utxos, value.utxos, stamps)
    return message


def lease_request_from_proto(request: utxo_pb2.LeaseUtxosRequest) -> LeaseRequest:
    quantity = request.WhichOneof("quantity")
    if request.strategy and request.strategy not in _STRATEGIES:
        raise invalid_argument("STRATEGY_INVALID", "strategy", "not a known LeaseStrategy")
    return LeaseRequest(
        purpose=purpose_from_proto(request.purpose),
        owner_key_id=request.owner_key_id,
        count=request.count if quantity == "count" else None,
        target_satoshis=request.target_satoshis if quantity == "target_satoshis" else None,
        outpoints=(
            tuple([outpoint_from_proto(o) for o in request.outpoints.outpoints]) if quantity == "outpoints" else None
        ),
        strategy=_STRATEGIES.get(request.strategy),
        duration=duration_from_proto(request.lease_duration, request.HasField("lease_duration")),
        allow_partial=request.allow_partial,
        min_satoshis=request.min_satoshis,
        fee_rate_satoshis_per_kb=request.fee_rate_satoshis_per_kb,
        max_count=request.max_count,
        holder=request.holder,
        max_unconfirmed_depth=request.max_unconfirmed_depth,
    )


def spends_from_proto(spends: list[utxo_pb2.Spend]) -> list[Spend]:
    return [
        Spend(
            txid=s.txid,
            inputs=tuple([Outpoint(i.txid, i.vout) for i in s.inputs]),
            outputs=tuple(
                [
                    OutputSpec(
                        Outpoint(s.txid, o.vout),
                        o.satoshis,
                        o.locking_script,
                        o.owner_key_id,
                        purpose_from_proto(o.purpose),
                    )
                    for o in s.outputs
                ]
            )
            if s.outputs
            else (),
        )
        for s in spends
    ]


def new_outputs_from_proto(outputs: list[utxo_pb2.NewOutput]) -> list[OutputSpec]:
    return [
        OutputSpec(
            outpoint_from_proto(o.outpoint),
            o.satoshis,
            o.locking_script,
            o.owner_key_id,
            purpose_from_proto(o.purpose),
        )
        for o in outputs
    ]


def commit_to_proto(result: CommitResult) -> utxo_pb2.CommitSpendResponse:
    stamps: dict[datetime, Timestamp] = {}
    message = utxo_pb2.CommitSpendResponse(
        released=[outpoint_to_proto(o) for o in result.released], lease=lease_to_proto(result.lease, stamps)
    )
    _add_utxos(message.spent, result.spent, stamps)
    _add_utxos(message.added, result.added, stamps)
    return message


def release_to_proto(result: ReleaseResult) -> utxo_pb2.ReleaseLeaseResponse:
    return utxo_pb2.ReleaseLeaseResponse(
        released=[outpoint_to_proto(o) for o in result.released], lease=lease_to_proto(result.lease)
    )


def conflict_report_from_proto(request: utxo_pb2.ReportConflictRequest) -> ConflictReport:
    kind = conflict_kind_from_proto(request.kind)
    if kind is None:
        raise invalid_argument("KIND_INVALID", "kind", "required: DOUBLE_SPEND, MISSING_INPUTS or REJECTED")
    return ConflictReport(
        outpoints=tuple(outpoint_from_proto(o) for o in request.outpoints),
        kind=kind,
        lease_id=request.lease_id,
        fencing_token=request.fencing_token,
        spending_txid=request.spending_txid,
        competing_txids=tuple(request.competing_txids),
        detail=request.detail,
    )


def conflict_to_proto(result: ConflictResult) -> utxo_pb2.ReportConflictResponse:
    return utxo_pb2.ReportConflictResponse(
        dirty=[utxo_to_proto(u) for u in result.dirty],
        invalidated=[utxo_to_proto(u) for u in result.invalidated],
        invalidated_txids=result.invalidated_txids,
    )


def accepted_to_proto(result: AcceptedResult) -> utxo_pb2.ReportAcceptedResponse:
    message = utxo_pb2.ReportAcceptedResponse(skipped_txids=result.skipped_txids)
    _add_utxos(message.available, result.available, {})
    return message


def filter_from_proto(request: utxo_pb2.ListUtxosRequest) -> UtxoFilter:
    statuses: list[UtxoStatus] = []
    for index, value in enumerate(request.statuses):
        status = status_from_proto(value)
        if status is None:
            raise invalid_argument("STATUSES_INVALID", f"statuses[{index}]", "not a known UtxoStatus")
        statuses.append(status)
    return UtxoFilter(
        owner_key_id=request.owner_key_id,
        purpose=optional_purpose_from_proto(request.purpose),
        statuses=tuple(statuses),
        lease_id=request.lease_id,
        txid=request.txid,
        min_satoshis=request.min_satoshis,
        max_satoshis=request.max_satoshis,
    )


def _comparison(value: AddressComparison) -> utxo_pb2.AddressComparison:
    return utxo_pb2.AddressComparison(
        owner_key_id=value.owner_key_id,
        address=value.address,
        chain_utxos=value.chain_utxos,
        chain_satoshis=value.chain_satoshis,
        pool_utxos=value.pool_utxos,
        pool_satoshis=value.pool_satoshis,
        only_on_chain=value.only_on_chain,
        only_in_pool=value.only_in_pool,
    )


def chain_to_proto(value: ChainComparison) -> utxo_pb2.ChainComparison:
    return utxo_pb2.ChainComparison(
        state=_COMPARISONS[value.state],
        tip_height=value.tip_height,
        addresses=[_comparison(a) for a in value.addresses],
        detail=value.detail,
    )


def health_to_proto(value: PoolHealth) -> utxo_pb2.GetPoolHealthResponse:
    runway = value.runway
    maintenance = value.maintenance
    return utxo_pb2.GetPoolHealthResponse(
        observe_time=timestamp(value.observed_at),
        buckets=[
            utxo_pb2.PoolBucket(
                purpose=_PURPOSES_OUT[b.purpose], status=_STATUSES_OUT[b.status], count=b.count, satoshis=b.satoshis
            )
            for b in value.buckets
        ],
        leases=utxo_pb2.LeaseStats(
            live_leases=value.leases.live_leases,
            live_reserved_utxos=value.leases.live_reserved_utxos,
            expired_leases=value.leases.expired_leases,
            expired_reserved_utxos=value.leases.expired_reserved_utxos,
            oldest_live_lease_create_time=timestamp(value.leases.oldest_live_lease_created_at),
        ),
        runway=utxo_pb2.Runway(
            fee_rate_satoshis_per_kb=runway.fee_rate_satoshis_per_kb,
            publish_tx_size_bytes=runway.publish_tx_size_bytes,
            publish_fee_satoshis=runway.publish_fee_satoshis,
            ready_publishes=runway.ready_publishes,
            funded_publishes=runway.funded_publishes,
            funded_publishes_with_funding=runway.funded_publishes_with_funding,
            spends_last_hour=runway.spends_last_hour,
            estimated_remaining=duration(runway.estimated_remaining),
        ),
        maintenance=utxo_pb2.MaintenanceStatus(
            low_water_utxos=maintenance.low_water_utxos,
            below_low_water=maintenance.below_low_water,
            last_sync_time=timestamp(maintenance.last_sync_at),
            last_split_time=timestamp(maintenance.last_split_at),
            last_sweep_time=timestamp(maintenance.last_sweep_at),
            split_cooldown_until=timestamp(maintenance.split_cooldown_until),
            maintenance_holder=maintenance.holder,
        ),
        chain=chain_to_proto(value.chain),
    )


_ACTIONS = {
    utxo_pb2.MAINTENANCE_ACTION_SYNC: MaintenanceAction.SYNC,
    utxo_pb2.MAINTENANCE_ACTION_SWEEP: MaintenanceAction.SWEEP,
    utxo_pb2.MAINTENANCE_ACTION_SPLIT: MaintenanceAction.SPLIT,
    utxo_pb2.MAINTENANCE_ACTION_REAP_LEASES: MaintenanceAction.REAP_LEASES,
    utxo_pb2.MAINTENANCE_ACTION_PASS: MaintenanceAction.PASS,
}
_ACTIONS_OUT = {v: k for k, v in _ACTIONS.items()}
_OUTCOMES = {
    MaintenanceOutcome.DONE: utxo_pb2.MAINTENANCE_OUTCOME_DONE,
    MaintenanceOutcome.NOTHING_TO_DO: utxo_pb2.MAINTENANCE_OUTCOME_NOTHING_TO_DO,
    MaintenanceOutcome.SKIPPED_COOLDOWN: utxo_pb2.MAINTENANCE_OUTCOME_SKIPPED_COOLDOWN,
}
_BROADCASTS = {
    BroadcastOutcome.NOT_BROADCAST: utxo_pb2.BROADCAST_OUTCOME_NOT_BROADCAST,
    BroadcastOutcome.ACCEPTED: utxo_pb2.BROADCAST_OUTCOME_ACCEPTED,
    BroadcastOutcome.REJECTED: utxo_pb2.BROADCAST_OUTCOME_REJECTED,
    BroadcastOutcome.PENDING: utxo_pb2.BROADCAST_OUTCOME_PENDING,
}


def action_from_proto(value: int) -> MaintenanceAction | None:
    return _ACTIONS.get(cast(utxo_pb2.MaintenanceAction.ValueType, value))


def split_from_proto(request: utxo_pb2.SplitRequest) -> SplitRequest:
    return SplitRequest(
        funding_key_id=request.funding_key_id,
        output_key_id=request.output_key_id,
        output_count=request.output_count,
        output_satoshis=request.output_satoshis,
        fee_rate_satoshis_per_kb=request.fee_rate_satoshis_per_kb,
        ignore_cooldown=request.ignore_cooldown,
    )


def sweep_from_proto(request: utxo_pb2.SweepRequest) -> SweepRequest:
    return SweepRequest(
        change_address=request.change_address,
        change_key_id=request.change_key_id,
        destination_address=request.destination_address,
        max_inputs_per_transaction=request.max_inputs_per_transaction,
        max_transactions=request.max_transactions,
        fee_rate_satoshis_per_kb=request.fee_rate_satoshis_per_kb,
    )


def _maintenance_output(value: PlannedOutput) -> utxo_pb2.MaintenanceOutput:
    return utxo_pb2.MaintenanceOutput(
        vout=value.vout,
        satoshis=value.satoshis,
        address=value.address,
        locking_script=value.locking_script,
        owner_key_id=value.owner_key_id,
        purpose=_PURPOSES_OUT[value.purpose] if value.purpose else utxo_pb2.UTXO_PURPOSE_UNSPECIFIED,
    )


def _maintenance_tx(value: MaintenanceTx) -> utxo_pb2.MaintenanceTransaction:
    return utxo_pb2.MaintenanceTransaction(
        inputs=[utxo_to_proto(u) for u in value.inputs],
        outputs=[_maintenance_output(o) for o in value.outputs],
        input_satoshis=value.input_satoshis,
        output_satoshis=value.output_satoshis,
        fee_satoshis=value.fee_satoshis,
        fee_rate_satoshis_per_kb=value.fee_rate_satoshis_per_kb,
        size_bytes=value.size_bytes,
        txid=value.txid,
        broadcast_outcome=_BROADCASTS[value.outcome],
        broadcast_detail=value.detail,
        broadcast_attempts=value.attempts,
    )


def _sync_summary(value: SyncSummary) -> utxo_pb2.SyncSummary:
    return utxo_pb2.SyncSummary(
        added=value.added,
        confirmed=value.confirmed,
        marked_spent=value.marked_spent,
        dirty_to_available=value.dirty_to_available,
        dirty_to_spent=value.dirty_to_spent,
        invalidated=value.invalidated,
        unchanged=value.unchanged,
        tip_height=value.tip_height,
        changes=[
            utxo_pb2.UtxoChange(
                outpoint=outpoint_to_proto(c.outpoint),
                satoshis=c.satoshis,
                from_status=_STATUSES_OUT[c.from_status] if c.from_status else utxo_pb2.UTXO_STATUS_UNSPECIFIED,
                to_status=_STATUSES_OUT[c.to_status],
                reason=c.reason,
            )
            for c in value.changes
        ],
        changes_truncated=value.changes_truncated,
    )


def result_to_proto(value: MaintenanceResult) -> utxo_pb2.MaintenanceResult:
    return utxo_pb2.MaintenanceResult(
        action=_ACTIONS_OUT[value.action],
        outcome=_OUTCOMES[value.outcome],
        dry_run=value.dry_run,
        transactions=[_maintenance_tx(t) for t in value.transactions],
        total_fee_satoshis=value.total_fee_satoshis,
        sync=_sync_summary(value.sync) if value.sync else None,
        reaped_leases=value.reaped_leases,
        reaped_utxos=value.reaped_utxos,
        next_allowed_time=timestamp(value.next_allowed_at),
        detail=value.detail,
    )
