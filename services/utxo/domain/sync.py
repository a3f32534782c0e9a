"""What a sync changes: the pool's unspent outpoints of some keys against the chain's lists (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from proofline_kit.wire import Outpoint
from services.utxo.domain.models import Purpose, SyncSummary, TrackedOutput, Utxo, UtxoChange, UtxoStatus
from services.utxo.domain.ports import ChainOutput, TxState

MAX_LISTED_CHANGES = 1000
_SEEN = (TxState.MINED, TxState.MEMPOOL)
NOT_ON_CHAIN = "NOT_ON_CHAIN"


@dataclass(frozen=True, slots=True)
class MissingRule:
    """An unspent outpoint the chain neither lists nor knows the transaction of becomes INVALID only
    when it was already missing at an earlier sync at least `invalid_after` ago (`since`: row id ->
    when a sync first found it missing; `now`: the database's time)."""

    since: Mapping[int, datetime]
    now: datetime
    invalid_after: timedelta


@dataclass(frozen=True, slots=True)
class NewRow:
    output: TrackedOutput
    status: UtxoStatus
    block_height: int | None


@dataclass(frozen=True, slots=True)
class RowChange:
    utxo: Utxo
    to_status: UtxoStatus
    reason: str
    block_height: int | None
    spent_by_txid: str = ""


@dataclass
class SyncPlan:
    new_rows: list[NewRow] = field(default_factory=list)
    changes: list[RowChange] = field(default_factory=list)
    unchanged: int = 0
    # Row ids found missing from the chain for the first time (their clock starts), still missing but
    # not long enough, and seen again (their clock stops).
    first_missing: list[int] = field(default_factory=list)
    still_missing: list[int] = field(default_factory=list)
    seen_again: list[int] = field(default_factory=list)

    def summary(self, tip_height: int) -> SyncSummary:
        listed = [
            UtxoChange(n.output.outpoint, n.output.satoshis, None, n.status, "NEW_ON_CHAIN") for n in self.new_rows
        ] + [UtxoChange(c.utxo.outpoint, c.utxo.satoshis, c.utxo.status, c.to_status, c.reason) for c in self.changes]
        moved = [c for c in self.changes if c.to_status is not c.utxo.status]
        return SyncSummary(
            added=len(self.new_rows),
            confirmed=sum(1 for c in moved if c.reason == "CONFIRMED"),
            marked_spent=sum(1 for c in moved if c.reason == "SPENT_ON_CHAIN"),
            dirty_to_available=sum(1 for c in moved if c.reason == "DIRTY_UNSPENT"),
            dirty_to_spent=sum(1 for c in moved if c.reason == "DIRTY_SPENT"),
            invalidated=sum(1 for c in moved if c.to_status is UtxoStatus.INVALID),
            unchanged=self.unchanged + sum(1 for c in self.changes if c.to_status is c.utxo.status),
            tip_height=tip_height,
            changes=tuple(c for c in listed if c.from_status is not c.to_status)[:MAX_LISTED_CHANGES],
            changes_truncated=len([c for c in listed if c.from_status is not c.to_status]) > MAX_LISTED_CHANGES,
        )


SPENT_REASONS = ("SPENT_ON_CHAIN", "DIRTY_SPENT")


def unnamed_spends(plan: SyncPlan) -> list[Outpoint]:
    """Outpoints the plan moves to SPENT on chain evidence without knowing their spender."""
    return [
        c.utxo.outpoint
        for c in plan.changes
        if c.to_status is UtxoStatus.SPENT and c.reason in SPENT_REASONS and not c.spent_by_txid
    ]


def name_spenders(plan: SyncPlan, spenders: Mapping[Outpoint, str]) -> int:
    """Record the spenders the chain named for the plan's unnamed spends; how many were named."""
    named = 0
    for index, change in enumerate(plan.changes):
        txid = spenders.get(change.utxo.outpoint)
        if (
            txid
            and change.to_status is UtxoStatus.SPENT
            and change.reason in SPENT_REASONS
            and not change.spent_by_txid
        ):
            plan.changes[index] = replace(change, spent_by_txid=txid)
            named += 1
    return named


@dataclass(frozen=True, slots=True)
class KeyView:
    key_id: str
    locking_script: bytes
    purpose_for_new: Purpose
    chain_outputs: tuple[ChainOutput, ...]


def txids_to_check_first(rows: Sequence[Utxo]) -> set[str]:
    """Transactions whose state must be read *before* the unspent lists: those of UNCONFIRMED rows
    and of rows of unconfirmed_depth > 0 (our own accepted, unmined transactions: so one broadcast
    reaching the indexer between the two reads cannot look like a spend) and those DIRTY rows name."""
    wanted: set[str] = set()
    for row in rows:
        if row.status is UtxoStatus.UNCONFIRMED or row.unconfirmed_depth > 0:
            wanted.add(row.outpoint.txid)
        elif row.status is UtxoStatus.DIRTY:
            wanted.add(row.outpoint.txid)
            wanted.update(row.competing_txids)
            if row.spent_by_txid:
                wanted.add(row.spent_by_txid)
    return wanted


def absent_confirmed_txids(rows: Sequence[Utxo], listed: set[Outpoint]) -> set[str]:
    """Transactions of AVAILABLE/RESERVED rows the chain no longer lists (spent, or gone in a reorg)."""
    return {
        r.outpoint.txid
        for r in rows
        if r.status in (UtxoStatus.AVAILABLE, UtxoStatus.RESERVED) and r.outpoint not in listed
    }


def confirmations(height: int | None, tip: int) -> int:
    return max(0, tip - height + 1) if height else 0


def plan_sync(
    keys: Sequence[KeyView],
    rows: Sequence[Utxo],
    known_elsewhere: set[Outpoint],
    states: Mapping[str, TxState],
    tip: int,
    min_confirmations: int,
    missing: MissingRule,
) -> SyncPlan:
    """`rows`: the pool's unspent rows of the keys; `known_elsewhere`: chain outpoints the pool
    holds in another status (SPENT, INVALID); `states`: what the chain says of the txids asked."""
    plan = SyncPlan()
    chain: dict[Outpoint, ChainOutput] = {}
    for key in keys:
        for output in key.chain_outputs:
            chain[Outpoint(output.txid, output.vout)] = output
    by_outpoint = {r.outpoint: r for r in rows}
    for key in keys:
        for output in key.chain_outputs:
            outpoint = Outpoint(output.txid, output.vout)
            if outpoint in by_outpoint or outpoint in known_elsewhere or output.spent_in_mempool:
                continue
            deep = confirmations(output.height, tip) >= min_confirmations
            plan.new_rows.append(
                NewRow(
                    TrackedOutput(outpoint, output.satoshis, key.locking_script, key.key_id, key.purpose_for_new),
                    UtxoStatus.AVAILABLE if deep else UtxoStatus.UNCONFIRMED,
                    output.height,
                )
            )
    for row in rows:
        change = _judge(row, chain.get(row.outpoint), states, tip, min_confirmations)
        since = missing.since.get(row.row_id)
        if change is not None and change.reason == NOT_ON_CHAIN:
            if since is None:
                plan.first_missing.append(row.row_id)
                change = None
            elif missing.now - since < missing.invalid_after:
                plan.still_missing.append(row.row_id)
                change = None
        elif since is not None:
            plan.seen_again.append(row.row_id)
        if change is None:
            plan.unchanged += 1
        else:
            plan.changes.append(change)
    return plan


def _judge(
    row: Utxo, listed: ChainOutput | None, states: Mapping[str, TxState], tip: int, min_confirmations: int
) -> RowChange | None:
    status = row.status
    if status is UtxoStatus.DIRTY:
        return _judge_dirty(row, listed, states, tip, min_confirmations)
    if listed is None:
        state = states.get(row.outpoint.txid)
        if state in _SEEN:
            return RowChange(row, UtxoStatus.SPENT, "SPENT_ON_CHAIN", None)
        if state is TxState.UNKNOWN and status is not UtxoStatus.UNCONFIRMED:
            return RowChange(row, UtxoStatus.INVALID, NOT_ON_CHAIN, None)
        # An UNCONFIRMED output unknown to the chain may not be broadcast yet: only a reported
        # failure proves its transaction dead.
        return None
    if listed.spent_in_mempool:
        return RowChange(row, UtxoStatus.SPENT, "SPENT_ON_CHAIN", listed.height)
    height = listed.height
    if status is UtxoStatus.UNCONFIRMED and confirmations(height, tip) >= min_confirmations:
        return RowChange(row, UtxoStatus.AVAILABLE, "CONFIRMED", height)
    if (height or 0) != row.block_height or (height is not None and row.unconfirmed_depth > 0):
        # Seen in a block (or out of one): the store sets unconfirmed_depth to 0 with a height.
        return RowChange(row, status, "HEIGHT", height)
    return None


def _judge_dirty(
    row: Utxo, listed: ChainOutput | None, states: Mapping[str, TxState], tip: int, min_confirmations: int
) -> RowChange | None:
    spenders = [t for t in (row.spent_by_txid, *row.competing_txids) if t]
    for txid in spenders:
        if states.get(txid) in _SEEN:
            return RowChange(row, UtxoStatus.SPENT, "DIRTY_SPENT", None, spent_by_txid=txid)
    if listed is not None and not listed.spent_in_mempool:
        # An output of our own accepted transaction (unconfirmed_depth > 0) still in the mempool goes
        # back to AVAILABLE at its depth; once in a block it is judged by its confirmations.
        deep = confirmations(listed.height, tip) >= min_confirmations or (
            listed.height is None and row.unconfirmed_depth > 0
        )
        return RowChange(row, UtxoStatus.AVAILABLE if deep else UtxoStatus.UNCONFIRMED, "DIRTY_UNSPENT", listed.height)
    if listed is not None or states.get(row.outpoint.txid) in _SEEN:
        return RowChange(row, UtxoStatus.SPENT, "DIRTY_SPENT", None)
    if states.get(row.outpoint.txid) is TxState.UNKNOWN:
        return RowChange(row, UtxoStatus.INVALID, NOT_ON_CHAIN, None)
    return None
