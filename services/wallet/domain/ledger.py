"""The double-entry ledger's movements (pure): which books each event moves, by how much.

Books per account: `available`, `locked`, `pending` (owed to the account, never negative) and
`deficit` (owed by the account, never positive). The house's books: `custody` (minus the value of
the coins the pool holds for the wallet), `in_flight` (minus the value of signed sends not yet
final) and `incoming` (minus the pending deposits). Every entry sums to 0, so at every commit

    Σ account books = -(custody + in_flight + incoming + written_off)

which is what the reconciliation report checks against the pool and the sends in flight. Customers
pay the network fee of their sends, so fees leave custody with the send and the house pays none.
A coin the house loses to a transaction it did not make (an operator's tool, a leaked key) is
written off: custody lets it go, `written_off` records the loss, no account is touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Book(Enum):
    AVAILABLE = "available"
    LOCKED = "locked"
    PENDING = "pending"
    DEFICIT = "deficit"
    CUSTODY = "custody"
    IN_FLIGHT = "in_flight"
    INCOMING = "incoming"
    WRITTEN_OFF = "written_off"

    @property
    def of_house(self) -> bool:
        return self in (Book.CUSTODY, Book.IN_FLIGHT, Book.INCOMING, Book.WRITTEN_OFF)


class EntryKind(Enum):
    DEPOSIT_SEEN = "deposit_seen"
    DEPOSIT_CREDITED = "deposit_credited"
    DEPOSIT_DROPPED = "deposit_dropped"
    RESERVE = "reserve"
    SIGNED = "signed"
    UNSIGNED = "unsigned"
    FINALIZE = "finalize"
    RELEASE = "release"
    REVERSAL = "reversal"
    WRITTEN_OFF = "written_off"
    REOPENED = "reopened"


@dataclass(frozen=True, slots=True)
class Posting:
    book: Book
    amount: int


@dataclass(frozen=True, slots=True)
class Entry:
    kind: EntryKind
    transaction_id: str
    account_id: str
    postings: tuple[Posting, ...]

    def __post_init__(self) -> None:
        if sum(p.amount for p in self.postings) != 0:
            raise ValueError(f"{self.kind.value} entry does not balance")


def _entry(kind: EntryKind, transaction_id: str, account_id: str, *moves: tuple[Book, int]) -> Entry:
    merged: dict[Book, int] = {}
    for book, amount in moves:
        merged[book] = merged.get(book, 0) + amount
    return Entry(kind, transaction_id, account_id, tuple(Posting(b, a) for b, a in merged.items() if a))


def deposit_seen(transaction_id: str, account_id: str, satoshis: int) -> Entry:
    return _entry(
        EntryKind.DEPOSIT_SEEN, transaction_id, account_id, (Book.PENDING, satoshis), (Book.INCOMING, -satoshis)
    )


def deposit_credited(transaction_id: str, account_id: str, satoshis: int, owed: int = 0) -> Entry:
    """Deep enough: pending becomes available and the coins enter custody (the pool). An account in
    deficit (`owed` > 0) covers it first."""
    cover = min(satoshis, owed)
    return _entry(
        EntryKind.DEPOSIT_CREDITED,
        transaction_id,
        account_id,
        (Book.PENDING, -satoshis),
        (Book.AVAILABLE, satoshis - cover),
        (Book.DEFICIT, cover),
        (Book.INCOMING, satoshis),
        (Book.CUSTODY, -satoshis),
    )


def deposit_dropped(transaction_id: str, account_id: str, satoshis: int) -> Entry:
    """A deposit never credited proved dead: its pending credit goes."""
    return _entry(
        EntryKind.DEPOSIT_DROPPED, transaction_id, account_id, (Book.PENDING, -satoshis), (Book.INCOMING, satoshis)
    )


def reversal(transaction_id: str, account_id: str, satoshis: int, available: int) -> Entry:
    """A credited deposit proved dead: take it back from available, the rest becomes a deficit."""
    taken = min(satoshis, available)
    return _entry(
        EntryKind.REVERSAL,
        transaction_id,
        account_id,
        (Book.AVAILABLE, -taken),
        (Book.DEFICIT, -(satoshis - taken)),
        (Book.CUSTODY, satoshis),
    )


def reserve(transaction_id: str, account_id: str, debit: int) -> Entry:
    return _entry(EntryKind.RESERVE, transaction_id, account_id, (Book.AVAILABLE, -debit), (Book.LOCKED, debit))


def signed(transaction_id: str, account_id: str, leaving: int) -> Entry:
    """The signed transaction spends our coins (inputs - change = recipient + fee leave custody)."""
    return _entry(EntryKind.SIGNED, transaction_id, account_id, (Book.CUSTODY, leaving), (Book.IN_FLIGHT, -leaving))


def unsigned(transaction_id: str, account_id: str, leaving: int) -> Entry:
    """The signed transaction proved dead before acceptance: its coins are ours again."""
    return _entry(EntryKind.UNSIGNED, transaction_id, account_id, (Book.CUSTODY, -leaving), (Book.IN_FLIGHT, leaving))


def finalize(transaction_id: str, account_id: str, reserved: int, leaving: int) -> Entry:
    """Accepted: the reservation goes, the unused part of the reserved fee returns to available."""
    return _entry(
        EntryKind.FINALIZE,
        transaction_id,
        account_id,
        (Book.LOCKED, -reserved),
        (Book.AVAILABLE, reserved - leaving),
        (Book.IN_FLIGHT, leaving),
    )


def release(transaction_id: str, account_id: str, reserved: int) -> Entry:
    return _entry(EntryKind.RELEASE, transaction_id, account_id, (Book.LOCKED, -reserved), (Book.AVAILABLE, reserved))


def written_off(coin_ref: str, satoshis: int) -> Entry:
    """A coin of ours spent by a transaction we did not make: the house's loss, not an account's."""
    return _entry(EntryKind.WRITTEN_OFF, coin_ref, "", (Book.CUSTODY, satoshis), (Book.WRITTEN_OFF, -satoshis))


def send_reversed(transaction_id: str, account_id: str, leaving: int) -> Entry:
    """A final send proved dead (its inputs spent by another transaction): the account gets it back,
    and its coins are custody's again until the chain says whose they are."""
    return _entry(EntryKind.REVERSAL, transaction_id, account_id, (Book.AVAILABLE, leaving), (Book.CUSTODY, -leaving))


def reopened(transaction_id: str, account_id: str, leaving: int) -> Entry:
    """An accepted send whose ancestor proved dead is built again: what it took (recipient + fee)
    is reserved again and its coins are custody's again."""
    return _entry(EntryKind.REOPENED, transaction_id, account_id, (Book.LOCKED, leaving), (Book.CUSTODY, -leaving))
