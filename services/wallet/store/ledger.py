"""The ledger: postings (append-only; the migration's trigger projects them onto the books) and the
balances read from the books."""

from __future__ import annotations

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

    async def lock_available(self, account_id: str) -> tuple[int, int]:
        rows = await self._conn.fetch(
            """SELECT kind, balance FROM books WHERE account_id = $1 AND kind IN ('available', 'deficit')
               ORDER BY kind FOR UPDATE""",
            account_id,
        )
        books = {r["kind"]: int(r["balance"]) for r in rows}
        return books.get("available", 0), -books.get("deficit", 0)

    async def debited_since(self, account_id: str, since: datetime) -> int:
        value = await self._conn.fetchval(
            """SELECT coalesce(sum(debit_satoshis), 0) FROM wallet_txs
               WHERE account_id = $1 AND direction = 'outgoing' AND created_at >= $2 AND status <> 'failed'""",
            account_id,
            since,
        )
        return int(value)

    async def post(self, entry: Entry, actor: Actor) -> None:
        """One entry and its postings; the books move in the same statement (trigger)."""
        await self._conn.execute(
            """WITH e AS (
                   INSERT INTO ledger_entries (kind, transaction_id, actor) VALUES ($1, $2, $3) RETURNING entry_id
               )
               INSERT INTO postings (entry_id, book_id, amount)
               SELECT e.entry_id, b.book_id, p.amount
               FROM e, unnest($4::text[], $5::bigint[], $6::text[]) AS p (kind, amount, account_id)
               JOIN books b ON b.kind = p.kind AND b.account_id IS NOT DISTINCT FROM p.account_id""",
            entry.kind.value,
            entry.transaction_id,
            actor.caller_id,
            [p.book.value for p in entry.postings],
            [p.amount for p in entry.postings],
            [None if p.book.of_house else entry.account_id for p in entry.postings],
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
