"""Pure pieces: transaction bytes, fee arithmetic and cache, callbacks, the fallback broadcaster."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from proofline_kit.chain import (
    ArcStatus,
    Broadcaster,
    BroadcastOutcome,
    ChainUnavailable,
    Deadline,
    FeeRate,
    FeeRateCache,
    FeeSource,
    OutcomeKind,
    PreparedTx,
    Provider,
    TxFormatError,
    callback_authorized,
    open_chain_clients,
    parse_callback,
    read_chain_settings,
)
from proofline_kit.chain.jsonshape import ShapeError
from proofline_kit.chain.txbytes import require_txid
from proofline_kit.settings import EnvReader, SettingsError
from tests.chain_clients.wallet import Coin, Key, coins_of, pay

ALICE = Key(0xA11CE)


def a_tx(fee: int = 1) -> PreparedTx:
    # A parent we make up on the spot: signing only needs its output (EF carries it along).
    from bsv import P2PKH, Script, Transaction, TransactionInput, TransactionOutput

    funding = Transaction(
        [TransactionInput(source_txid="22" * 32, source_output_index=0, unlocking_script=Script(b"\x51"))],
        [TransactionOutput(P2PKH().lock(ALICE.address), 10_000)],
    )
    coin = Coin(funding.txid(), 0, 10_000, ALICE, funding.hex())
    return pay(coin, fee=fee, data=b"unit")


# ---- transaction bytes ----------------------------------------------------------------------


def test_ef_and_raw_give_the_same_txid() -> None:
    tx = a_tx()
    assert tx.ef is not None
    raw_only = PreparedTx.from_bytes(tx.raw)
    assert raw_only.txid == tx.txid
    assert raw_only.ef is None
    assert raw_only.arc_payload == tx.raw
    assert tx.arc_payload == tx.ef
    assert PreparedTx.from_hex(tx.ef.hex()) == tx


def test_parent_txids() -> None:
    tx = a_tx()
    [change] = coins_of(tx, ALICE)
    child = pay(change)
    assert child.parent_txids == {tx.txid}


@pytest.mark.parametrize(
    "data",
    [b"", b"\x01\x00", b"\x01\x00\x00\x00\x01", b"\x01\x00\x00\x00\x02\x01" + b"\xbe\xef", b"not hex"],
)
def test_broken_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(TxFormatError):
        PreparedTx.from_bytes(data)


def test_trailing_bytes_beef_and_bad_hex_are_refused() -> None:
    tx = a_tx()
    with pytest.raises(TxFormatError, match="trailing"):
        PreparedTx.from_bytes(tx.raw + b"\x00")
    assert tx.ef is not None
    with pytest.raises(TxFormatError, match="trailing"):
        PreparedTx.from_bytes(tx.ef + b"\x00")
    with pytest.raises(TxFormatError, match="BEEF"):
        PreparedTx.from_hex("0100beef00")
    with pytest.raises(TxFormatError):
        PreparedTx.from_hex("xyz")


def test_require_txid() -> None:
    assert require_txid("AB" * 32) == "ab" * 32
    for bad in ("ab", "zz" * 32, "../" + "a" * 61):
        with pytest.raises(ValueError, match="txid"):
            require_txid(bad)


# ---- fees -----------------------------------------------------------------------------------


def test_fee_rate_math_is_integer_and_rounds_up() -> None:
    one = FeeRate(1, 1000)
    assert [one.fee_for(n) for n in (0, 1, 999, 1000, 1001, 250)] == [0, 1, 1, 1, 2, 1]
    half = FeeRate(5, 10_000)
    assert half.fee_for(1000) == 1
    assert half.fee_for(2001) == 2
    assert FeeRate(50, 1000).fee_for(226) == 12
    assert half.at_least(one) == one
    assert FeeRate(2, 1000).at_least(one) == FeeRate(2, 1000)
    with pytest.raises(TypeError):
        FeeRate(1.5, 1000)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bytes > 0"):
        FeeRate(1, 0)


class CountingSource:
    def __init__(self, rate: FeeRate, delay_s: float = 0.0) -> None:
        self.rate = rate
        self.delay_s = delay_s
        self.calls = 0
        self.fail = False

    async def fee_rate(self, *, deadline: Deadline | None = None) -> FeeRate:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        if self.fail:
            raise ChainUnavailable(Provider.ARC, "down")
        return self.rate


async def test_concurrent_callers_share_one_fetch() -> None:
    source = CountingSource(FeeRate(3, 1000), delay_s=0.05)
    cache = FeeRateCache(source, ttl_s=60)

    quotes = await asyncio.gather(*(cache.quote() for _ in range(10)))

    assert source.calls == 1
    assert {q.rate for q in quotes} == {FeeRate(3, 1000)}
    assert sorted(q.source.value for q in quotes).count(FeeSource.FRESH.value) == 1


# ---- callbacks ------------------------------------------------------------------------------

A = "aa" * 32


def test_callback_single_and_batch_bodies() -> None:
    single = {
        "timestamp": "t",
        "txid": A,
        "txStatus": "MINED",
        "blockHash": "bb" * 32,
        "blockHeight": 9,
        "merklePath": "09",
    }
    [report] = parse_callback(single)
    assert (report.status, report.block_height) == (ArcStatus.MINED, 9)
    batch = parse_callback({"count": 2, "callbacks": [single, {"txid": A, "txStatus": "REJECTED", "extraInfo": "x"}]})
    assert [r.status for r in batch] == [ArcStatus.MINED, ArcStatus.REJECTED]
    bad: object
    for bad in ([], {"count": 1}, {"callbacks": "x"}):
        with pytest.raises(ShapeError):
            parse_callback(bad)


def test_callback_token_check() -> None:
    assert callback_authorized("Bearer s3cret", "s3cret")
    assert not callback_authorized("Bearer s3cre", "s3cret")
    assert not callback_authorized("s3cret", "s3cret")
    assert not callback_authorized(None, "s3cret")


# ---- settings -------------------------------------------------------------------------------


async def test_woc_bulk_concurrency_reaches_the_woc_client() -> None:
    def read(default: int = 1, **env: str) -> int:
        base = {"WOC_URL": "http://127.0.0.1:1"}
        return read_chain_settings(
            EnvReader({**base, **env}), "SVC", default_woc_bulk_concurrency=default
        ).woc_bulk_concurrency

    assert read() == 1 and read(4) == 4
    assert read(4, WOC_BULK_CONCURRENCY="2") == 2
    assert read(4, WOC_BULK_CONCURRENCY="2", SVC_WOC_BULK_CONCURRENCY="8") == 8
    for bad in ("0", "65", "many"):
        with pytest.raises(SettingsError, match="SVC_WOC_BULK_CONCURRENCY"):
            read(SVC_WOC_BULK_CONCURRENCY=bad)
    settings = read_chain_settings(EnvReader({"WOC_URL": "http://127.0.0.1:1", "SVC_WOC_BULK_CONCURRENCY": "6"}), "SVC")
    clients = open_chain_clients(settings, max_connections=4)
    try:
        assert clients.woc is not None and clients.woc.config.bulk_concurrency == 6
    finally:
        await clients.aclose()


# ---- broadcaster ----------------------------------------------------------------------------


class FakeProvider:
    def __init__(self, provider: Provider, kinds: dict[str, OutcomeKind], default: OutcomeKind) -> None:
        self.provider = provider
        self.kinds = kinds
        self.default = default
        self.sent: list[str] = []
        self.budgets: list[float] = []

    async def broadcast(self, tx: PreparedTx, *, deadline: Deadline | None = None) -> BroadcastOutcome:
        self.sent.append(tx.txid)
        assert deadline is not None
        self.budgets.append(deadline.remaining())
        return BroadcastOutcome(self.kinds.get(tx.txid, self.default), tx.txid, self.provider)


class FakeBatchProvider(FakeProvider):
    def __init__(self, provider: Provider, kinds: dict[str, OutcomeKind], default: OutcomeKind) -> None:
        super().__init__(provider, kinds, default)
        self.batches: list[list[str]] = []

    async def broadcast_many(
        self, txs: Sequence[PreparedTx], *, deadline: Deadline | None = None
    ) -> dict[str, BroadcastOutcome]:
        self.batches.append([tx.txid for tx in txs])
        return {tx.txid: BroadcastOutcome(self.kinds.get(tx.txid, self.default), tx.txid, self.provider) for tx in txs}


async def test_fallback_only_on_unavailable() -> None:
    tx = a_tx()
    for first, asked_second in [
        (OutcomeKind.ACCEPTED, False),
        (OutcomeKind.DOUBLE_SPEND, False),
        (OutcomeKind.MISSING_INPUTS, False),
        (OutcomeKind.FEE_TOO_LOW, False),
        (OutcomeKind.INVALID, False),
        (OutcomeKind.UNAVAILABLE, True),
    ]:
        arc = FakeProvider(Provider.ARC, {}, first)
        woc = FakeProvider(Provider.WOC, {}, OutcomeKind.ACCEPTED)
        report = await Broadcaster([arc, woc]).broadcast(tx)
        assert bool(woc.sent) is asked_second
        assert [a.provider for a in report.attempts] == (
            [Provider.ARC, Provider.WOC] if asked_second else [Provider.ARC]
        )
        assert report.answered_by is (Provider.WOC if asked_second else Provider.ARC)


async def test_budget_is_split_between_providers() -> None:
    arc = FakeProvider(Provider.ARC, {}, OutcomeKind.UNAVAILABLE)
    woc = FakeProvider(Provider.WOC, {}, OutcomeKind.UNAVAILABLE)

    report = await Broadcaster([arc, woc]).broadcast(a_tx(), deadline=Deadline.after(10.0))

    assert report.outcome.kind is OutcomeKind.UNAVAILABLE
    assert arc.budgets[0] == pytest.approx(5.0, abs=0.1)
    assert woc.budgets[0] == pytest.approx(10.0, abs=0.1)


async def test_batch_falls_back_only_for_unanswered_txs_and_in_waves() -> None:
    parent = a_tx()
    [change] = coins_of(parent, ALICE)
    child = pay(change)
    other = a_tx(fee=2)
    arc = FakeBatchProvider(Provider.ARC, {other.txid: OutcomeKind.INVALID}, OutcomeKind.UNAVAILABLE)
    woc = FakeProvider(Provider.WOC, {}, OutcomeKind.ACCEPTED)

    reports = await Broadcaster([arc, woc]).broadcast_many([child, other, parent, child])

    assert arc.batches == [[child.txid, other.txid, parent.txid]]
    assert woc.sent == [parent.txid, child.txid]  # the parent's wave goes first
    assert list(reports) == [child.txid, other.txid, parent.txid]
    assert reports[other.txid].answered_by is Provider.ARC
    assert reports[child.txid].answered_by is Provider.WOC
    assert len(reports[child.txid].attempts) == 2


def test_broadcaster_needs_providers() -> None:
    with pytest.raises(ValueError, match="at least one provider"):
        Broadcaster([])
