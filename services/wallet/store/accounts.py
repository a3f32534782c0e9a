"""Accounts and their deposit addresses."""

from __future__ import annotations

from datetime import datetime

from proofline_kit.database import Queries
from services.wallet.domain.models import Account, DepositAddress
from services.wallet.store.rows import ACCOUNT_COLUMNS, ADDRESS_COLUMNS, account_from_row, address_from_row

_ACCOUNT_BOOKS = ("available", "locked", "pending", "deficit")


class AccountQueries(Queries):
    async def now(self) -> datetime:
        value: datetime = await self._conn.fetchval("SELECT now()")
        return value

    async def insert_account(self, account_id: str, external_id: str, label: str, caller_id: str) -> Account | None:
        row = await self._conn.fetchrow(
            f"""WITH inserted AS (
                    INSERT INTO accounts (account_id, external_id, label, created_by) VALUES ($1, $2, $3, $4)
                    ON CONFLICT (external_id) DO NOTHING
                    RETURNING {ACCOUNT_COLUMNS}
                ), books AS (
                    INSERT INTO books (account_id, kind)
                    SELECT i.account_id, k FROM inserted i, unnest($5::text[]) AS k
                )
                SELECT {ACCOUNT_COLUMNS} FROM inserted""",
            account_id,
            external_id,
            label,
            caller_id,
            list(_ACCOUNT_BOOKS),
        )
        return account_from_row(row) if row else None

    async def account(self, account_id: str) -> Account | None:
        row = await self._conn.fetchrow(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE account_id = $1", account_id)
        return account_from_row(row) if row else None

    async def account_by_external_id(self, external_id: str) -> Account | None:
        row = await self._conn.fetchrow(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE external_id = $1", external_id)
        return account_from_row(row) if row else None

    async def list_accounts(self, external_id: str, after_seq: int, limit: int) -> list[tuple[int, Account]]:
        rows = await self._conn.fetch(
            f"""SELECT {ACCOUNT_COLUMNS} FROM accounts
                WHERE seq > $1 AND ($2 = '' OR external_id = $2) ORDER BY seq LIMIT $3""",
            after_seq,
            external_id,
            limit,
        )
        return [(int(r["seq"]), account_from_row(r)) for r in rows]

    async def insert_deposit_address(self, address: DepositAddress) -> DepositAddress:
        row = await self._conn.fetchrow(
            f"""INSERT INTO deposit_addresses (account_id, address, locking_script, key_id, network, label)
                VALUES ($1, $2, $3, $4, $5, $6)
                RETURNING {ADDRESS_COLUMNS}""",
            address.account_id,
            address.address,
            address.locking_script,
            address.key_id,
            address.network.value,
            address.label,
        )
        assert row is not None
        return address_from_row(row)

    async def deposit_address(self, address: str) -> DepositAddress | None:
        row = await self._conn.fetchrow(f"SELECT {ADDRESS_COLUMNS} FROM deposit_addresses WHERE address = $1", address)
        return address_from_row(row) if row else None

    async def list_deposit_addresses(
        self, account_id: str, before_seq: int | None, limit: int
    ) -> list[tuple[int, DepositAddress]]:
        rows = await self._conn.fetch(
            f"""SELECT {ADDRESS_COLUMNS} FROM deposit_addresses
                WHERE account_id = $1 AND ($2::bigint IS NULL OR seq < $2) ORDER BY seq DESC LIMIT $3""",
            account_id,
            before_seq,
            limit,
        )
        return [(int(r["seq"]), address_from_row(r)) for r in rows]
