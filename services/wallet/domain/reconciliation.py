"""The reconciliation report: the ledger against the coins, to the satoshi, every difference listed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from proofline_kit.auth import Caller
from proofline_kit.wire import Outpoint
from services.wallet.domain.access import require_admin
from services.wallet.domain.ports import BookTotals, CoinPool, Store, WalletCoin

MAX_DIFFERENCES = 1000


@dataclass(frozen=True, slots=True)
class Difference:
    kind: str
    ledger_satoshis: int = 0
    observed_satoshis: int = 0
    outpoint: Outpoint | None = None
    account_id: str = ""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Reconciliation:
    available: int
    locked: int
    pending: int
    deficit: int
    fees_paid: int
    pool: int
    in_flight: int
    written_off: int
    difference: int
    differences: tuple[Difference, ...]
    omitted: int
    as_of: datetime

    @property
    def balanced(self) -> bool:
        return not self.differences and not self.omitted and self.difference == 0


@dataclass
class _Findings:
    items: list[Difference] = field(default_factory=list)
    omitted: int = 0

    def add(self, difference: Difference) -> None:
        if len(self.items) < MAX_DIFFERENCES:
            self.items.append(difference)
        else:
            self.omitted += 1


def compare(
    totals: BookTotals,
    expected_coins: Sequence[WalletCoin],
    pool_coins: dict[Outpoint, int],
    deficits: Sequence[tuple[str, int]],
    as_of: datetime,
) -> Reconciliation:
    """Pure: what the ledger says (book totals, the coins the wallet expects in the pool) against
    what the pool holds."""
    found = _Findings()
    house = totals.custody + totals.in_flight + totals.incoming + totals.written_off
    customers = totals.available + totals.locked + totals.pending + totals.deficit
    if customers + house != 0:
        found.add(Difference("LEDGER_NOT_BALANCED", customers, -house, detail="account books + house books != 0"))
    pool_value = sum(pool_coins.values())
    if -totals.custody != pool_value:
        found.add(Difference("CUSTODY_MISMATCH", -totals.custody, pool_value, detail="custody book vs pool coins"))
    if -totals.in_flight != totals.sending_value:
        found.add(
            Difference("IN_FLIGHT_MISMATCH", -totals.in_flight, totals.sending_value, detail="signed sends not final")
        )
    if -totals.incoming != totals.pending:
        found.add(Difference("PENDING_MISMATCH", totals.pending, -totals.incoming))
    expected = {c.outpoint: c.satoshis for c in expected_coins}
    for outpoint, satoshis in sorted(expected.items()):
        held = pool_coins.get(outpoint)
        if held is None:
            found.add(Difference("COIN_MISSING_FROM_POOL", satoshis, 0, outpoint))
        elif held != satoshis:
            found.add(Difference("COIN_VALUE_MISMATCH", satoshis, held, outpoint))
    for outpoint, satoshis in sorted(pool_coins.items()):
        if outpoint not in expected:
            found.add(Difference("COIN_UNKNOWN_TO_WALLET", 0, satoshis, outpoint))
    for account_id, owed in deficits:
        found.add(Difference("ACCOUNT_IN_DEFICIT", -owed, 0, account_id=account_id))
    liabilities = totals.available + totals.locked + totals.deficit
    return Reconciliation(
        available=totals.available,
        locked=totals.locked,
        pending=totals.pending,
        deficit=-totals.deficit,
        fees_paid=totals.fees_paid,
        pool=pool_value,
        in_flight=totals.sending_value,
        written_off=-totals.written_off,
        difference=liabilities - (pool_value + totals.sending_value - totals.written_off),
        differences=tuple(found.items),
        omitted=found.omitted,
        as_of=as_of,
    )


class Reconciler:
    def __init__(self, store: Store, pool: CoinPool) -> None:
        self._store = store
        self._pool = pool

    async def report(self, caller: Caller) -> Reconciliation:
        require_admin(caller)
        async with self._store.snapshot() as uow:
            totals = await uow.book_totals()
            expected = await uow.unspent_coins()
            deficits = await uow.deficits()
            as_of = await uow.now()
        return compare(totals, expected, await self._pool.held_value(), deficits, as_of)
