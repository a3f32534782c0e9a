"""The ledger: postings (append-only; the migration's trigger projects them onto the books) and the
balances read from the books."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from proofline_kit.database import Queries
from proofline_kit.wire import Outpoint
from services.wallet.domain.ledger import Entry
from services.wallet.domain.models import Actor, Balance
from services.wallet.domain.ports import BookTotals, WalletCoin


class LedgerQueries(Queries):
    async def balance(self, account_id: str) -> Balance:
        rows = await self._conn.fetch("SELECT kind, balance, now() AS at FROM books WHERE account_id = $1", account_id)
        books = {r["kind"]: int(r["balance"]) for r in rows}
        at: datetime = rows[0]["at"] if rows else await self._conn.fetchval("SELECT now()")
        return Balance(
            account_id,
            books.get("available", 0),
            books.get("locked", 0),
            books.get("pending", 0),
            -books.get("deficit", 0),
            at,
        )

    async def lock_accounts(self, account_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        """Each account's available and owed (deficit) satoshis, the books a reservation moves
        (available, locked) and the deficit locked in book_id order (like `lock_books`) until the end
        of the transaction; an unknown account is absent."""
        rows = await self._conn.fetch(
            """SELECT account_id, kind, balance FROM books
               WHERE account_id = ANY($1::text[]) AND kind IN ('available', 'locked', 'deficit')
               ORDER BY book_id FOR UPDATE""",
            sorted(set(account_ids)),
        )
        books: dict[str, dict[str, int]] = {}
        for r in rows:
            books.setdefault(r["account_id"], {})[r["kind"]] = int(r["balance"])
        return {a: (b.get("available", 0), -b.get("deficit", 0)) for a, b in books.items()}

    async def debited_since(self, account_ids: Sequence[str], since: datetime) -> dict[str, int]:
        """What sends debited each account since then (failed ones apart)."""
        rows = await self._conn.fetch(
            """SELECT account_id, coalesce(sum(debit_satoshis), 0) AS debited FROM wallet_txs
               WHERE account_id = ANY($1::text[]) AND direction = 'outgoing' AND created_at >= $2
                 AND status <> 'failed'
               GROUP BY account_id""",
            sorted(set(account_ids)),
            since,
        )
        return {r["account_id"]: int(r["debited"]) for r in rows}

    async def post(self, entry: Entry, actor: Actor) -> None:
        await self.post_many([entry], actor)

    async def post_many(self, entries: Sequence[Entry], actor: Actor) -> None:
        """Entries and their postings in one statement (at most one entry per transaction_id); the
        books move in the same statement (trigger)."""
        if not entries:
            return
        assert len({e.transaction_id for e in entries}) == len(entries), "one entry per transaction in a batch"
        postings = [(e, p) for e in entries for p in e.postings]
        await self._conn.execute(
            """WITH e AS (
                   INSERT INTO ledger_entries (kind, transaction_id, actor)
                   SELECT kind, transaction_id, $3 FROM unnest($1::text[], $2::text[]) AS n (kind, transaction_id)
                   RETURNING entry_id, transaction_id
               )
               INSERT INTO postings (entry_id, book_id, amount)
               SELECT e.entry_id, b.book_id, p.amount
               FROM unnest($4::text[], $5::text[], $6::bigint[], $7::text[])
                    AS p (transaction_id, kind, amount, account_id)
               JOIN e ON e.transaction_id = p.transaction_id
               -- Each branch reads its own index (an account's books; the house's).
               JOIN LATERAL (
                   SELECT a.book_id FROM books a
                   WHERE p.account_id IS NOT NULL AND a.account_id = p.account_id AND a.kind = p.kind
                   UNION ALL
                   SELECT h.book_id FROM books h WHERE p.account_id IS NULL AND h.account_id IS NULL AND h.kind = p.kind
               ) b ON true""",
            [e.kind.value for e in entries],
            [e.transaction_id for e in entries],
            actor.caller_id,
            [e.transaction_id for e, _ in postings],
            [p.book.value for _, p in postings],
            [p.amount for _, p in postings],
            [None if p.book.of_house else e.account_id for e, p in postings],
        )

    async def lock_books(self, account_ids: Sequence[str]) -> None:
        """The books a batch moves, locked in one order (the house's and these accounts'), so two
        batches never wait on each other in a cycle."""
        await self._conn.execute(
            """SELECT 1 FROM books WHERE book_id IN (
                   SELECT book_id FROM books WHERE account_id IS NULL
                   UNION ALL SELECT book_id FROM books WHERE account_id = ANY($1::text[])
               ) ORDER BY book_id FOR UPDATE""",
            sorted(set(account_ids)),
        )

    async def book_totals(self) -> BookTotals:
        row = await self._conn.fetchrow(
            """SELECT
                 coalesce(sum(balance) FILTER (WHERE kind = 'available'), 0) AS available,
                 coalesce(sum(balance) FILTER (WHERE kind = 'locked'), 0) AS locked,
                 coalesce(sum(balance) FILTER (WHERE kind = 'pending'), 0) AS pending,
                 coalesce(sum(balance) FILTER (WHERE kind = 'deficit'), 0) AS deficit,
                 coalesce(sum(balance) FILTER (WHERE kind = 'custody'), 0) AS custody,
                 coalesce(sum(balance) FILTER (WHERE kind = 'in_flight'), 0) AS in_flight,
                 coalesce(sum(balance) FILTER (WHERE kind = 'incoming'), 0) AS incoming,
                 coalesce(sum(balance) FILTER (WHERE kind = 'written_off'), 0) AS written_off,
                 (SELECT coalesce(sum(fee_satoshis), 0) FROM wallet_txs
                   WHERE direction = 'outgoing' AND finalized AND status <> 'failed') AS fees_paid,
                 (SELECT coalesce(sum(amount_satoshis + fee_satoshis), 0) FROM wallet_txs
                   WHERE direction = 'outgoing' AND status = 'sending') AS sending_value
               FROM books"""
        )
        assert row is not None
        return BookTotals(**{k: int(v) for k, v in row.items()})

    async def unspent_coins(self) -> list[WalletCoin]:
        rows = await self._conn.fetch(
            """SELECT txid, vout, satoshis, locking_script, key_id FROM wallet_coins
               WHERE spent_by IS NULL AND NOT dead ORDER BY txid, vout"""
        )
        return [
            WalletCoin(Outpoint(r["txid"], int(r["vout"])), int(r["satoshis"]), bytes(r["locking_script"]), r["key_id"])
            for r in rows
        ]

    async def deficits(self) -> list[tuple[str, int]]:
        rows = await self._conn.fetch(
            "SELECT account_id, balance FROM books WHERE kind = 'deficit' AND balance < 0 ORDER BY account_id"
        )
        return [(r["account_id"], int(r["balance"])) for r in rows]
