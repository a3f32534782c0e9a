"""Pure parts: settings, fee-aware plans, transaction bytes, and the sync rules."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from proofline.utxo.v1 import utxo_pb2

from proofline_kit import wire
from proofline_kit.chain import PreparedTx
from proofline_kit.errors import DomainError
from proofline_kit.settings import EnvReader, SettingsError
from proofline_kit.wire import Outpoint
from services.utxo.domain import codec, fees, planning
from services.utxo.domain.models import (
    AcceptedResult,
    CommitResult,
    ConflictResult,
    Lease,
    LeaseState,
    Purpose,
    Utxo,
    UtxoStatus,
)
from services.utxo.domain.ports import ChainOutput, TxState
from services.utxo.domain.sync import (
    KeyView,
    MissingRule,
    name_spenders,
    plan_sync,
    txids_to_check_first,
    unnamed_spends,
)
from services.utxo.rpc import mappers
from services.utxo.settings import read_utxo_settings

BASE = {"DATABASE_URL": "postgresql://x@127.0.0.1/db"}
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def coin(satoshis: int, vout: int = 0, status: UtxoStatus = UtxoStatus.AVAILABLE, **fields: object) -> Utxo:
    values: dict[str, object] = {
        "row_id": vout + 1,
        "fencing_token": None,
        "outpoint": Outpoint("ab" * 32, vout),
        "satoshis": satoshis,
        "locking_script": b"\x51",
        "owner_key_id": "funding",
        "purpose": Purpose.FUNDING,
        "status": status,
        "block_height": 10,
        "confirmations": 1,
        "lease_id": "",
        "lease_expires_at": None,
        "spent_by_txid": "",
        "competing_txids": (),
        "status_reason": "",
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(fields)
    return Utxo(**values)  # type: ignore[arg-type]


def test_settings_defaults_aliases_and_units() -> None:
    settings = read_utxo_settings(EnvReader(BASE))
    assert settings.service.grpc_port == 50052 and settings.service.metrics_port == 9102
    assert settings.service.database_schema == "utxo"
    assert settings.split.low_water == 50 and settings.split.target == 100
    assert settings.fee_rate_satoshis_per_kb is None
    aliased = read_utxo_settings(EnvReader({**BASE, "UTXO_MIN_POOL": "7", "FEE_SAT_PER_BYTE": "2"}))
    assert aliased.split.low_water == 7 and aliased.fee_rate_satoshis_per_kb == 2000
    rooted = read_utxo_settings(EnvReader({**BASE, "WOC_URL": "http://127.0.0.1:8700/v1/bsv/main/"}))
    assert (rooted.chain.woc_url, rooted.chain.woc_network) == ("http://127.0.0.1:8700", "main")


@pytest.mark.parametrize(
    "overrides",
    [
        {"UTXO_LEASE_DEFAULT_MS": "7200000"},
        {"UTXO_SPLIT_MIN_SATS": "2000", "UTXO_SPLIT_SIZE_SATS": "1000"},
        {"UTXO_SPLIT_TARGET": "3", "MIN_UTXO_COUNT": "10"},
        {"UTXO_FUNDING_KEY_ID": "bad key"},
        {"WOC_NETWORK": "regtest"},
        {"UTXO_LEASE_STRATEGY": "random"},
    ],
)
def test_bad_settings_stop_the_service(overrides: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        read_utxo_settings(EnvReader({**BASE, **overrides}))


def test_split_plan_is_fee_aware_and_shrinks_when_asked() -> None:
    plan = planning.plan_split([coin(20_000), coin(5_000, 1)], 10, 1_000, 1_000, 1_000, 0, shrink_count=False)
    assert [c.satoshis for c in plan.inputs] == [20_000]
    assert plan.fee_satoshis == fees.fee_for(fees.p2pkh_tx_bytes(1, 11), 1_000)
    assert plan.change_satoshis == 20_000 - 10_000 - plan.fee_satoshis
    shrunk = planning.plan_split([coin(3_000)], 10, 1_000, 200, 1, 0, shrink_count=False)
    assert shrunk.payouts == (299,) * 10 and shrunk.change_satoshis >= 0
    fewer = planning.plan_split([coin(3_000)], 10, 1_000, 1_000, 1, 0, shrink_count=True)
    assert fewer.payouts == (1_000, 1_000)
    with pytest.raises(DomainError) as refused:
        planning.plan_split([coin(3_000)], 10, 1_000, 1_000, 1, 0, shrink_count=False)
    assert refused.value.reason == "INSUFFICIENT_FUNDS"
    assert refused.value.metadata["availableSatoshis"] == "3000"


def test_sweep_skips_dust_that_cannot_pay_for_itself() -> None:
    coins = [coin(10), coin(200, 1), coin(300, 2)]
    worth = planning.sweepable(coins, 100)  # an input costs 15 sat at 100 sat/kB
    assert [c.satoshis for c in worth] == [200, 300]
    plan = planning.plan_sweep(worth, 100, 0)
    assert plan is not None and plan.payouts == (500 - plan.fee_satoshis,)
    assert planning.plan_sweep([coin(1)], 1_000, 0) is None


def test_transaction_bytes_round_trip_and_extended_format() -> None:
    tx = wire.Tx(
        (wire.TxInput(Outpoint("cd" * 32, 3), b"\x01\x02"),),
        (wire.TxOutput(5, b"\x76\xa9"), wire.TxOutput(0, b"\x00\x6a")),
    )
    raw = wire.serialize(tx)
    assert wire.parse(raw) == tx
    extended = wire.extended_format(raw, [wire.TxOutput(1_000, b"\x51")])
    prepared = PreparedTx.from_bytes(extended)
    assert prepared.raw == raw and prepared.txid == wire.txid_of(raw)
    with pytest.raises(ValueError, match="trailing"):
        wire.parse(raw + b"\x00")


def test_sync_rules() -> None:
    key = KeyView("funding", b"\x51", Purpose.FUNDING, ())
    dead_txid, live_txid = "01" * 32, "02" * 32
    rows = [
        coin(100, 0, UtxoStatus.UNCONFIRMED, block_height=0, outpoint=Outpoint(dead_txid, 0)),
        coin(200, 1, UtxoStatus.DIRTY, spent_by_txid="ff" * 32, status_reason="REJECTED"),
        coin(300, 2, UtxoStatus.AVAILABLE),
        coin(400, 3, UtxoStatus.RESERVED, outpoint=Outpoint(live_txid, 3)),
    ]
    listed = (
        ChainOutput("ab" * 32, 1, 200, 10, False),
        ChainOutput("ab" * 32, 2, 300, 10, True),
        ChainOutput("cd" * 32, 0, 999, None, False),
    )
    states = {dead_txid: TxState.UNKNOWN, "ff" * 32: TxState.UNKNOWN, live_txid: TxState.MINED}
    views = [KeyView(key.key_id, key.locking_script, key.purpose_for_new, listed)]
    plan = plan_sync(views, rows, set(), states, 12, 1, MissingRule({}, NOW, timedelta(minutes=10)))
    changes = {c.utxo.satoshis: (c.to_status, c.reason) for c in plan.changes}
    assert 100 not in changes, "an UNCONFIRMED output unknown to the chain may not be broadcast yet"
    assert changes[200] == (UtxoStatus.AVAILABLE, "DIRTY_UNSPENT")
    assert changes[300] == (UtxoStatus.SPENT, "SPENT_ON_CHAIN")
    assert changes[400] == (UtxoStatus.SPENT, "SPENT_ON_CHAIN")
    assert [(n.output.satoshis, n.status) for n in plan.new_rows] == [(999, UtxoStatus.UNCONFIRMED)]
    summary = plan.summary(12)
    assert (summary.added, summary.dirty_to_available, summary.marked_spent, summary.unchanged) == (1, 1, 2, 1)


def test_spenders_are_named_only_for_unnamed_chain_spends() -> None:
    known, competitor, elsewhere, mined = "c1" * 32, "c2" * 32, "e1" * 32, "e2" * 32
    rows = [
        coin(100, 0, UtxoStatus.DIRTY, competing_txids=(competitor,)),  # a known competitor spent it
        coin(200, 1, UtxoStatus.DIRTY, spent_by_txid=known),  # its own dead tx; spent by another
        coin(300, 2, UtxoStatus.AVAILABLE),  # spent in the mempool
        coin(400, 3, UtxoStatus.AVAILABLE),  # unchanged
    ]
    listed = (
        ChainOutput("ab" * 32, 1, 200, 10, True),
        ChainOutput("ab" * 32, 2, 300, 10, True),
        ChainOutput("ab" * 32, 3, 400, 10, False),
    )
    states = {competitor: TxState.MINED, known: TxState.UNKNOWN, "ab" * 32: TxState.MINED}
    views = [KeyView("funding", b"\x51", Purpose.FUNDING, listed)]
    plan = plan_sync(views, rows, set(), states, 12, 1, MissingRule({}, NOW, timedelta(minutes=10)))

    assert unnamed_spends(plan) == [Outpoint("ab" * 32, 1), Outpoint("ab" * 32, 2)]
    named = name_spenders(
        plan, {Outpoint("ab" * 32, 0): mined, Outpoint("ab" * 32, 1): elsewhere, Outpoint("ab" * 32, 3): mined}
    )

    assert named == 1
    spenders = {c.utxo.satoshis: (c.to_status, c.spent_by_txid) for c in plan.changes}
    assert spenders[100] == (UtxoStatus.SPENT, competitor), "a spender the pool knows is kept"
    assert spenders[200] == (UtxoStatus.SPENT, elsewhere)
    assert spenders[300] == (UtxoStatus.SPENT, ""), "the chain named none: spender unknown"
    assert 400 not in spenders
    assert unnamed_spends(plan) == [Outpoint("ab" * 32, 2)]


def test_batch_answers_map_each_utxo_like_the_single_mapping() -> None:
    """Lease and commit answers copy each Utxo message from a template of its shared fields: every
    message must equal the one built field by field, whatever the rows share or not."""
    later = NOW + timedelta(minutes=5)
    utxos = [
        coin(1_000 + i % 3, vout=i, status=UtxoStatus.RESERVED, lease_id="l1", lease_expires_at=later) for i in range(6)
    ] + [
        coin(500, vout=10, status=UtxoStatus.SPENT, spent_by_txid="cd" * 32, lease_expires_at=later),
        coin(500, vout=11, status=UtxoStatus.SPENT, spent_by_txid="ef" * 32),
        coin(700, vout=12, status=UtxoStatus.DIRTY, competing_txids=("01" * 32,), status_reason="DOUBLE_SPEND"),
        coin(700, vout=13, block_height=0, confirmations=0, locking_script=b"\x52", created_at=later),
        coin(900, vout=0, owner_key_id="other", purpose=Purpose.PUBLISH, updated_at=later),
    ]
    lease = Lease("l1", 7, LeaseState.LIVE, "h", "c", NOW, later, tuple(utxos))
    single = [mappers.utxo_to_proto(u) for u in utxos]
    assert list(mappers.lease_to_proto(lease).utxos) == single
    answer = mappers.commit_to_proto(CommitResult(tuple(utxos), tuple(reversed(utxos)), (), lease))
    assert list(answer.spent) == single
    assert list(answer.added) == list(reversed(single))
    assert all(isinstance(m, utxo_pb2.Utxo) for m in answer.spent)


def test_an_outpoint_missing_from_the_chain_is_invalid_only_after_two_syncs_far_enough_apart() -> None:
    """AVAILABLE, RESERVED and DIRTY outpoints the chain neither lists nor knows the transaction of:
    the first sync starts a clock, a later one invalidates once `invalid_after` has passed, and any
    sync that sees the outpoint again stops the clock."""
    gone, back = "03" * 32, "04" * 32
    rows = [
        coin(100, 0, UtxoStatus.AVAILABLE, outpoint=Outpoint(gone, 0)),
        coin(200, 1, UtxoStatus.RESERVED, outpoint=Outpoint(gone, 1)),
        coin(300, 2, UtxoStatus.DIRTY, outpoint=Outpoint(gone, 2), status_reason="REJECTED"),
        coin(400, 3, UtxoStatus.AVAILABLE, outpoint=Outpoint(back, 3)),
    ]
    views = [KeyView("funding", b"\x51", Purpose.FUNDING, (ChainOutput(back, 3, 400, 10, False),))]
    states = {gone: TxState.UNKNOWN}
    wait = timedelta(minutes=10)

    def run(since: dict[int, datetime], now: datetime) -> tuple[dict[int, UtxoStatus], list[int], list[int], list[int]]:
        plan = plan_sync(views, rows, set(), states, 12, 1, MissingRule(since, now, wait))
        moved = {c.utxo.row_id: c.to_status for c in plan.changes}
        return moved, plan.first_missing, plan.still_missing, plan.seen_again

    moved, first, still, seen = run({}, NOW)
    assert moved == {} and first == [1, 2, 3] and still == [] and seen == []
    marked = {1: NOW, 2: NOW, 3: NOW, 4: NOW}
    moved, first, still, seen = run(marked, NOW + wait - timedelta(seconds=1))
    assert moved == {} and first == [] and still == [1, 2, 3] and seen == [4]
    moved, first, still, seen = run(marked, NOW + wait)
    assert moved == {1: UtxoStatus.INVALID, 2: UtxoStatus.INVALID, 3: UtxoStatus.INVALID}
    assert first == [] and still == [] and seen == [4]


def test_recorded_answers_encode_a_batch_like_each_utxo_alone() -> None:
    """The batch encoding of recorded answers shares conversions across rows: same lists as one by one,
    and a replay decodes the very rows that were answered."""
    later = NOW + timedelta(minutes=5)
    utxos = (
        coin(1_000, vout=0, status=UtxoStatus.RESERVED, lease_id="l1", lease_expires_at=later),
        coin(1_000, vout=1, status=UtxoStatus.RESERVED, lease_id="l1", lease_expires_at=later, locking_script=b"\x52"),
        coin(500, vout=2, status=UtxoStatus.SPENT, spent_by_txid="cd" * 32, created_at=later),
        coin(700, vout=3, status=UtxoStatus.DIRTY, competing_txids=("01" * 32,), status_reason="DOUBLE_SPEND"),
    )
    assert codec._utxos(utxos) == [codec._utxos([u])[0] for u in utxos]
    assert codec._utxos_back(codec._utxos(utxos)) == utxos
    lease = Lease("l1", 7, LeaseState.LIVE, "h", "c", NOW, later, utxos)
    assert codec.lease_from_json(codec.lease_to_json(lease)) == lease


def test_sync_keeps_accepted_coins_in_the_mempool_and_zeroes_their_depth_in_a_block() -> None:
    """Outputs of our own accepted, unmined transactions (unconfirmed_depth > 0): listed in the
    mempool they stay as they are; listed in a block they get a HEIGHT change (the store sets depth
    0); their transactions are asked before the lists; a DIRTY one back in the mempool is AVAILABLE."""
    pending, mined, back = "05" * 32, "06" * 32, "07" * 32
    rows = [
        coin(100, 0, UtxoStatus.AVAILABLE, outpoint=Outpoint(pending, 0), block_height=0, unconfirmed_depth=2),
        coin(200, 1, UtxoStatus.RESERVED, outpoint=Outpoint(mined, 1), block_height=0, unconfirmed_depth=1),
        coin(
            300,
            2,
            UtxoStatus.DIRTY,
            outpoint=Outpoint(back, 2),
            block_height=0,
            unconfirmed_depth=1,
            spent_by_txid="ee" * 32,
            status_reason="PARENT_DEAD",
        ),
    ]
    listed = (
        ChainOutput(pending, 0, 100, None, False),
        ChainOutput(mined, 1, 200, 12, False),
        ChainOutput(back, 2, 300, None, False),
    )
    assert {pending, mined, back} <= txids_to_check_first(rows)
    states = {pending: TxState.MEMPOOL, mined: TxState.MINED, back: TxState.MEMPOOL, "ee" * 32: TxState.UNKNOWN}
    views = [KeyView("funding", b"\x51", Purpose.FUNDING, listed)]
    plan = plan_sync(views, rows, set(), states, 12, 1, MissingRule({}, NOW, timedelta(minutes=10)))
    changes = {c.utxo.satoshis: (c.to_status, c.reason, c.block_height) for c in plan.changes}
    assert 100 not in changes
    assert changes[200] == (UtxoStatus.RESERVED, "HEIGHT", 12)
    assert changes[300] == (UtxoStatus.AVAILABLE, "DIRTY_UNSPENT", None)
    # A depth-0 coin whose height is already known is unchanged, as before.
    same = coin(400, 3, UtxoStatus.AVAILABLE, block_height=12)
    views = [KeyView("funding", b"\x51", Purpose.FUNDING, (ChainOutput("ab" * 32, 3, 400, 12, False),))]
    assert plan_sync(views, [same], set(), {}, 12, 1, MissingRule({}, NOW, timedelta(minutes=10))).changes == []


def test_recorded_answers_from_before_unconfirmed_depth_still_decode() -> None:
    deep = coin(1_000, vout=0, unconfirmed_depth=3)
    assert codec._utxos_back(codec._utxos([deep])) == (deep,)
    old_format = [codec._utxos([deep])[0][:18]]
    assert codec._utxos_back(old_format)[0].unconfirmed_depth == 0
    old_conflict = zlib.compress(orjson.dumps({"dirty": codec._utxos([deep]), "invalidated": []}))
    assert codec.conflict_from_json(old_conflict) == ConflictResult((deep,), (), ())
    result = ConflictResult((deep,), (deep,), ("cd" * 32,))
    assert codec.conflict_from_json(codec.conflict_to_json(result)) == result
    accepted = AcceptedResult((deep,), ("ef" * 32,))
    assert codec.accepted_from_json(codec.accepted_to_json(accepted)) == accepted
    assert mappers.utxo_to_proto(deep).unconfirmed_depth == 3


def test_max_unconfirmed_depth_setting() -> None:
    assert read_utxo_settings(EnvReader(BASE)).pool.max_unconfirmed_depth == 25
    assert read_utxo_settings(EnvReader({**BASE, "UTXO_MAX_UNCONFIRMED_DEPTH": "0"})).pool.max_unconfirmed_depth == 0
    for bad in ("-1", "1001"):
        with pytest.raises(SettingsError):
            read_utxo_settings(EnvReader({**BASE, "UTXO_MAX_UNCONFIRMED_DEPTH": bad}))
