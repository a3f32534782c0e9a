"""Sealed backup shares of identity keys and the audit of their releases (migration 0005)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from proofline_kit.database import Queries
from services.wallet.domain.ports import SealedShare, StoredShare

_COLUMNS = "pubkey, slot, account_id, member_index, split, kek_version, nonce, ciphertext"


def _share(row: asyncpg.Record) -> StoredShare:
    return StoredShare(
        account_id=row["account_id"],
        pubkey=bytes(row["pubkey"]),
        slot=row["slot"],
        member_index=row["member_index"],
        split=row["split"],
        sealed=SealedShare(row["kek_version"], bytes(row["nonce"]), bytes(row["ciphertext"])),
    )


class BackupQueries(Queries):
    async def lock_backup_shares(self, pubkey: bytes) -> list[StoredShare]:
        await self._conn.execute("SELECT 1 FROM identities WHERE pubkey = $1 FOR UPDATE", pubkey)
        return await self.backup_shares(pubkey)

    async def backup_shares(self, pubkey: bytes) -> list[StoredShare]:
        rows = await self._conn.fetch(f"SELECT {_COLUMNS} FROM backup_shares WHERE pubkey = $1 ORDER BY slot", pubkey)
        return [_share(r) for r in rows]

    async def insert_backup_shares(self, shares: Sequence[StoredShare], caller_id: str) -> None:
        await self._conn.executemany(
            f"INSERT INTO backup_shares ({_COLUMNS}, stored_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            [
                (
                    s.pubkey,
                    s.slot,
                    s.account_id,
                    s.member_index,
                    s.split,
                    s.sealed.kek_version,
                    s.sealed.nonce,
                    s.sealed.ciphertext,
                    caller_id,
                )
                for s in shares
            ],
        )

    async def record_backup_release(
        self, account_id: str, pubkey: bytes, caller_id: str, recovery_id: str, shares: int
    ) -> None:
        await self._conn.execute(
            """INSERT INTO backup_releases (account_id, pubkey, caller_id, recovery_id, shares)
               VALUES ($1, $2, $3, $4, $5)""",
            account_id,
            pubkey,
            caller_id,
            recovery_id,
            shares,
        )
