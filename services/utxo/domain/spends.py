"""The pool's write use cases besides leases: committing spends, reporting conflicts, tracking outputs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from structlog.typing import FilteringBoundLogger

from proofline_kit.auth import Caller
from proofline_kit.errors import invalid_argument
from proofline_kit.idempotency import check_request_id, request_fingerprint
from proofline_kit.wire import Outpoint
from services.utxo.domain import codec, errors
from services.utxo.domain import validation as check
from services.utxo.domain.models import (
    KEY_ID_PATTERN,
    TXID_PATTERN,
    CommitResult,
    ConflictReport,
    ConflictResult,
    InputState,
    LeaseRow,
    OutputSpec,
    Spend,
    TrackedOutput,
    Utxo,
    UtxoStatus,
)
from services.utxo.domain.pool_access import lease_view, owned_lease, require_pool
from services.utxo.domain.ports import Store, UnitOfWork


class SpendUseCases:
    """Part of UtxoPool (which sets these attributes)."""

    _store: Store
    _log: FilteringBoundLogger
    _on_dirty: Callable[[], Awaitable[None]] | None

    async def commit(
        self,
        caller: Caller,
        request_id: str,
        lease_id: str,
        fencing_token: int,
        spends: Sequence[Spend],
        release_unspent: bool,
        within: Callable[[UnitOfWork], Awaitable[None]] | None = None,
    ) -> CommitResult:
        """`within` runs in the commit's database transaction (maintenance stores its signed bytes)."""
        require_pool(caller)
        check_request_id(request_id)
        check.lease_id(lease_id)
        tracked = _checked_spends(spends)
        fingerprint = request_fingerprint(
            "CommitSpend",
            lease_id,
            fencing_token,
            release_unspent,
            *(
                (s.txid, [str(i) for i in s.inputs], [_output_key(o) for o in outputs])
                for s, outputs in zip(spends, tracked, strict=True)
            ),
        )
        async with self._store.unit_of_work() as uow:
            replay = await uow.find_answer(caller.caller_id, "CommitSpend", request_id, fingerprint)
            if replay is not None:
                return codec.commit_from_json(replay)
            row = await owned_lease(uow, caller, lease_id, lock=False)
            inputs = [(i, s.txid) for s in spends for i in s.inputs]
            # One statement locks the inputs and spends those that carry the lease's token; when not
            # every input was spent, the inputs are judged as found before the change and a refusal
            # rolls the whole transaction (those changes included) back.
            carried_token = row.fencing_token if fencing_token == row.fencing_token else None
            # The lease's remaining outpoints come back from the same statement unless the commit
            # releases them all (then it holds none).
            by_outpoint, states, held = await uow.spend_carried(
                inputs, carried_token, caller.caller_id, None if release_unspent else row
            )
            pending: list[Outpoint] = []
            done_before: list[Outpoint] = []
            if len(by_outpoint) < len(inputs):
                # Inputs already SPENT are judged first: same txid = done before, another txid = refused.
                for outpoint, txid in inputs:
                    found = states.get(outpoint)
                    if found is not None and found.status is UtxoStatus.SPENT:
                        if found.spent_by_txid != txid:
                            raise errors.already_spent(outpoint, found.spent_by_txid)
                        done_before.append(outpoint)
                    else:
                        pending.append(outpoint)
                if pending:
                    await _check_fenced(uow, row, fencing_token, [(o, states.get(o)) for o in pending])
                # Every input that passed the checks carried the token, so the statement spent it.
                assert all(o in by_outpoint for o in pending)
                if done_before:
                    by_outpoint.update(await uow.outpoints(done_before))
            spent = tuple(by_outpoint[o] for o, _ in inputs)
            # A spend all of whose inputs were committed before tracked its outputs then: those still
            # in the pool are checked as before, those retention has deleted since are not re-created.
            outputs_to_track = [o for outputs in tracked for o in outputs]
            if done_before:
                replayed = set(done_before)
                again = [
                    o.outpoint
                    for s, outputs in zip(spends, tracked, strict=True)
                    if replayed.issuperset(s.inputs)
                    for o in outputs
                ]
                if again:
                    known = await uow.outpoints(again)
                    gone = {o for o in again if o not in known}
                    outputs_to_track = [o for o in outputs_to_track if o.outpoint not in gone]
            added = await _track(uow, outputs_to_track, caller.caller_id, "change")
            released: list[Outpoint] = []
            if release_unspent:
                released = await uow.release(row.fencing_token, None, caller.caller_id)
                held = []  # nothing carries the token any more
            result = CommitResult(spent, tuple(added), tuple(released), lease_view(row, held))
            if within is not None:
                await within(uow)
            await uow.record_answer(
                caller.caller_id, "CommitSpend", request_id, fingerprint, codec.commit_to_json(result)
            )
        self._log.info("spend.committed", lease_id=lease_id, inputs=len(spent) - len(done_before), outputs=len(added))
        return result

    async def report_conflict(self, caller: Caller, request_id: str, report: ConflictReport) -> ConflictResult:
        require_pool(caller)
        check_request_id(request_id)
        check.outpoints(report.outpoints, "outpoints")
        if report.lease_id:
            check.lease_id(report.lease_id)
        if report.spending_txid:
            check.txid(report.spending_txid, "spending_txid", "SPENDING_TXID_INVALID")
        if len(report.competing_txids) > check.MAX_ITEMS:
            raise invalid_argument("COMPETING_TXIDS_INVALID", "competing_txids", f"at most {check.MAX_ITEMS}")
        for index, competing in enumerate(report.competing_txids):
            check.txid(competing, f"competing_txids[{index}]", "COMPETING_TXIDS_INVALID")
        check.text(report.detail, "detail", check.MAX_DETAIL_CHARS)
        fingerprint = request_fingerprint(
            "ReportConflict",
            report.lease_id,
            report.fencing_token,
            [str(o) for o in report.outpoints],
            report.kind.value,
            report.spending_txid,
            list(report.competing_txids),
            report.detail,
        )
        async with self._store.unit_of_work() as uow:
            replay = await uow.find_answer(caller.caller_id, "ReportConflict", request_id, fingerprint)
            if replay is not None:
                return codec.conflict_from_json(replay)
            lease: LeaseRow | None = None
            if report.lease_id:
                lease = await owned_lease(uow, caller, report.lease_id, lock=False)
                if report.fencing_token != lease.fencing_token:
                    raise errors.fencing_token_stale(report.lease_id, report.fencing_token)
            now = await uow.now()
            rows = await uow.lock_outpoints(report.outpoints)
            targets: list[Utxo] = []
            for outpoint in report.outpoints:
                found = rows.get(outpoint)
                if found is None:
                    raise errors.utxo_not_found(outpoint)
                if found.status is UtxoStatus.INVALID:
                    # An output of a dead ancestor that the caller's later transaction spent: its
                    # death was reported (and cascaded) already.
                    continue
                _check_reportable(found, lease, report, now)
                targets.append(found)
            dirty = await uow.mark_dirty(
                targets,
                report.kind.value,
                report.spending_txid,
                report.competing_txids,
                report.detail,
                lease.fencing_token if lease else None,
                caller.caller_id,
            )
            invalidated: list[Utxo] = []
            orphaned: list[Utxo] = []
            if report.spending_txid:
                invalidated, orphaned = await uow.invalidate_dead_outputs(
                    report.spending_txid, PARENT_DEAD, PARENT_DEAD, caller.caller_id
                )
            result = ConflictResult(tuple(dirty), tuple(invalidated), descendants(report.spending_txid, invalidated))
            await uow.record_answer(
                caller.caller_id, "ReportConflict", request_id, fingerprint, codec.conflict_to_json(result)
            )
        self._log.info(
            "conflict.reported",
            kind=report.kind.value,
            dirty=len(dirty),
            invalidated=len(invalidated),
            dead_descendants=len(result.invalidated_txids),
            parent_dead=len(orphaned),
        )
        if self._on_dirty is not None:
            await self._on_dirty()
        return result

    async def add_outputs(self, caller: Caller, request_id: str, outputs: Sequence[OutputSpec]) -> tuple[Utxo, ...]:
        require_pool(caller)
        check_request_id(request_id)
        if not 1 <= len(outputs) <= check.MAX_ITEMS:
            raise invalid_argument("OUTPUTS_INVALID", "outputs", f"1 to {check.MAX_ITEMS} outputs")
        tracked = [check.tracked_output(o, f"outputs[{i}]") for i, o in enumerate(outputs)]
        _no_duplicate_outpoints([o.outpoint for o in tracked], "outputs")
        fingerprint = request_fingerprint("AddOutputs", *(_output_key(o) for o in tracked))
        async with self._store.unit_of_work() as uow:
            replay = await uow.find_answer(caller.caller_id, "AddOutputs", request_id, fingerprint)
            if replay is not None:
                return codec.utxos_from_json(replay)
            result = tuple(await _track(uow, tracked, caller.caller_id, "external"))
            await uow.record_answer(
                caller.caller_id, "AddOutputs", request_id, fingerprint, codec.utxos_to_json(result)
            )
        return result


_CARRYING = (UtxoStatus.RESERVED, UtxoStatus.AVAILABLE)
# Why the outputs of a dead transaction (and of its descendants) are INVALID, and why the
# descendants' other inputs are DIRTY.
PARENT_DEAD = "PARENT_DEAD"


def descendants(spending_txid: str, invalidated: Sequence[Utxo]) -> tuple[str, ...]:
    """The dead descendants of `spending_txid`: the transactions that spent its invalidated outputs
    and those of every descendant (each once, in the order of the first output they spent)."""
    found = dict.fromkeys(u.spent_by_txid for u in invalidated if u.spent_by_txid)
    found.pop(spending_txid, None)
    return tuple(found)


def _carries(utxo: Utxo | InputState, fencing_token: int) -> bool:
    return utxo.fencing_token == fencing_token and utxo.status in _CARRYING


async def _check_fenced(
    uow: UnitOfWork, lease: LeaseRow, fencing_token: int, inputs: Sequence[tuple[Outpoint, InputState | None]]
) -> None:
    """Every input must still carry the lease's token; otherwise say whether the lease never had it
    (UTXO_NOT_IN_LEASE) or lost it (FENCING_TOKEN_STALE)."""
    if fencing_token != lease.fencing_token:
        raise errors.fencing_token_stale(lease.lease_id, fencing_token)
    failing = [(o, u) for o, u in inputs if u is None or not _carries(u, fencing_token)]
    if not failing:
        return
    granted = (await uow.lease_history(lease.fencing_token)).granted
    for outpoint, utxo in failing:
        if utxo is None or utxo.row_id not in granted:
            raise errors.utxo_not_in_lease(lease.lease_id, outpoint)
    raise errors.fencing_token_stale(lease.lease_id, fencing_token, failing[0][0])


def _check_reportable(utxo: Utxo, lease: LeaseRow | None, report: ConflictReport, now: datetime) -> None:
    status = utxo.status
    if status is UtxoStatus.SPENT:
        if report.spending_txid != utxo.spent_by_txid:
            raise errors.already_spent(utxo.outpoint, utxo.spent_by_txid)
        return
    if status is UtxoStatus.RESERVED:
        expired = utxo.lease_expires_at is not None and utxo.lease_expires_at <= now
        ours = lease is not None and utxo.fencing_token == lease.fencing_token
        if not ours and not expired:
            raise errors.fencing_token_stale(report.lease_id or "-", report.fencing_token, utxo.outpoint)
        return
    if status in (UtxoStatus.AVAILABLE, UtxoStatus.DIRTY):
        return
    raise errors.utxo_not_spendable(utxo.outpoint, status.value.upper())


def _checked_spends(spends: Sequence[Spend]) -> list[list[TrackedOutput]]:
    """The spends' outputs, validated. The common all-valid case runs without building field names;
    anything odd goes through _explained_spends, which names the first bad field."""
    if not 1 <= len(spends) <= check.MAX_ITEMS or sum(len(s.inputs) for s in spends) > check.MAX_ITEMS:
        return _explained_spends(spends)
    seen: set[Outpoint] = set()
    txids: set[str] = set()
    tracked: list[list[TrackedOutput]] = []
    for spend in spends:
        if not TXID_PATTERN.match(spend.txid) or spend.txid in txids or not spend.inputs:
            return _explained_spends(spends)
        txids.add(spend.txid)
        for outpoint in spend.inputs:
            if not TXID_PATTERN.match(outpoint.txid) or outpoint.vout < 0 or outpoint in seen:
                return _explained_spends(spends)
            seen.add(outpoint)
        outputs = []
        vouts = set()
        for o in spend.outputs:
            if (
                o.purpose is None
                or o.satoshis <= 0
                or not 1 <= len(o.locking_script) <= check.MAX_SCRIPT_BYTES
                or not KEY_ID_PATTERN.match(o.owner_key_id)
                or o.outpoint.vout < 0
                or o.outpoint.vout in vouts
            ):
                return _explained_spends(spends)
            vouts.add(o.outpoint.vout)
            outputs.append(TrackedOutput(o.outpoint, o.satoshis, o.locking_script, o.owner_key_id, o.purpose))
        tracked.append(outputs)
    return tracked


def _explained_spends(spends: Sequence[Spend]) -> list[list[TrackedOutput]]:
    if not 1 <= len(spends) <= check.MAX_ITEMS:
        raise invalid_argument("SPENDS_INVALID", "spends", f"1 to {check.MAX_ITEMS} spends")
    seen: set[Outpoint] = set()
    txids: set[str] = set()
    tracked: list[list[TrackedOutput]] = []
    for index, spend in enumerate(spends):
        field = f"spends[{index}]"
        check.txid(spend.txid, f"{field}.txid")
        if spend.txid in txids:
            raise invalid_argument("SPENDS_INVALID", f"{field}.txid", f"transaction {spend.txid} is listed twice")
        txids.add(spend.txid)
        if not spend.inputs:
            raise invalid_argument("INPUTS_INVALID", f"{field}.inputs", "at least one pool outpoint")
        for position, outpoint in enumerate(spend.inputs):
            check.outpoint(outpoint, f"{field}.inputs[{position}]")
            if outpoint in seen:
                raise invalid_argument(
                    "INPUTS_INVALID", f"{field}.inputs[{position}]", f"{outpoint} is spent twice in this request"
                )
            seen.add(outpoint)
        outputs = [
            check.tracked_output(o, f"{field}.outputs[{position}]", outpoint_field="vout")
            for position, o in enumerate(spend.outputs)
        ]
        vouts = [o.outpoint.vout for o in outputs]
        if len(set(vouts)) != len(vouts):
            raise invalid_argument("OUTPUTS_INVALID", f"{field}.outputs", "an output index is listed twice")
        tracked.append(outputs)
    if sum(len(s.inputs) for s in spends) > check.MAX_ITEMS:
        raise invalid_argument("SPENDS_INVALID", "spends", f"at most {check.MAX_ITEMS} inputs in all")
    return tracked


def _no_duplicate_outpoints(outpoints: Sequence[Outpoint], field: str) -> None:
    seen: set[Outpoint] = set()
    for index, outpoint in enumerate(outpoints):
        if outpoint in seen:
            raise invalid_argument(f"{field.upper()}_INVALID", f"{field}[{index}]", f"{outpoint} is listed twice")
        seen.add(outpoint)


async def _track(uow: UnitOfWork, outputs: Sequence[TrackedOutput], caller_id: str, reason: str) -> list[Utxo]:
    """Insert outputs as UNCONFIRMED; known ones must match exactly (else UTXO_ALREADY_EXISTS)."""
    if not outputs:
        return []
    inserted = {u.outpoint: u for u in await uow.insert_outputs(outputs, caller_id, reason)}
    missing = [o for o in outputs if o.outpoint not in inserted]
    known = await uow.outpoints([o.outpoint for o in missing]) if missing else {}
    for output in missing:
        existing = known[output.outpoint]
        if (existing.satoshis, existing.locking_script, existing.owner_key_id, existing.purpose) != (
            output.satoshis,
            output.locking_script,
            output.owner_key_id,
            output.purpose,
        ):
            raise errors.utxo_already_exists(output.outpoint)
    return [inserted.get(o.outpoint) or known[o.outpoint] for o in outputs]


def _output_key(output: TrackedOutput) -> list[object]:
    return [
        str(output.outpoint),
        output.satoshis,
        output.locking_script.hex(),
        output.owner_key_id,
        output.purpose.value,
    ]
