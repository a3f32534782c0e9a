"""All SQL of the signing gateway."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from proofline_kit.database import PooledStore
from proofline_kit.idempotency import RecordedAnswers
from services.signer_gateway.domain.keystore import SealedSecret
from services.signer_gateway.domain.models import AuditEntry, Backend, KeyPolicy, KeyRecord, KeySpend

MIGRATIONS = Path(__file__).parent / "migrations"
_AUDIT_COLUMNS = list(AuditEntry._fields)

_KEY_COLUMNS = (
    "key_id, backend, public_key, sealed_secret, sealed_nonce, master_key_version, policy, created_at, updated_at"
)


def _policy_to_json(policy: KeyPolicy) -> str:
    return json.dumps(
        {
            "require_policy_mode": policy.require_policy_mode,
            "allowed_destinations": list(policy.allowed_destinations),
            "max_amount_per_tx_satoshis": policy.max_amount_per_tx_satoshis,
            "max_amount_per_day_satoshis": policy.max_amount_per_day_satoshis,
            "max_fee_satoshis": policy.max_fee_satoshis,
            "change_addresses": list(policy.change_addresses),
        }
    )


def _policy_from_json(raw: str) -> KeyPolicy:
    data: dict[str, Any] = json.loads(raw)
    return KeyPolicy(
        require_policy_mode=bool(data.get("require_policy_mode", False)),
        allowed_destinations=tuple(data.get("allowed_destinations", ())),
        max_amount_per_tx_satoshis=int(data.get("max_amount_per_tx_satoshis", 0)),
        max_amount_per_day_satoshis=int(data.get("max_amount_per_day_satoshis", 0)),
        max_fee_satoshis=int(data.get("max_fee_satoshis", 0)),
        # Absent from policies stored before the field existed: no change address.
        change_addresses=tuple(data.get("change_addresses", ())),
    )


def _key_from_row(row: asyncpg.Record) -> KeyRecord:
    sealed = None
    if row["sealed_secret"] is not None:
        sealed = SealedSecret(bytes(row["sealed_secret"]), bytes(row["sealed_nonce"]), row["master_key_version"])
    return KeyRecord(
        key_id=row["key_id"],
        backend=Backend(row["backend"]),
        public_key=bytes(row["public_key"]),
        policy=_policy_from_json(row["policy"]),
        sealed_secret=sealed,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class SignerUnitOfWork(RecordedAnswers):
    """One database transaction of the gateway."""

    async def keys_by_id(self, key_ids: Sequence[str], *, for_update: bool = False) -> dict[str, KeyRecord]:
        lock = " ORDER BY key_id FOR UPDATE" if for_update else ""
        rows = await self._conn.fetch(
            f"SELECT {_KEY_COLUMNS} FROM keys WHERE key_id = ANY($1::text[]){lock}", list(set(key_ids))
        )
        return {row["key_id"]: _key_from_row(row) for row in rows}

    async def insert_key(
        self, key_id: str, backend: Backend, public_key: bytes, sealed: SealedSecret | None, policy: KeyPolicy
    ) -> KeyRecord | None:
        row = await self._conn.fetchrow(
            f"""INSERT INTO keys (key_id, backend, public_key, sealed_secret, sealed_nonce, master_key_version,
                                  policy)
                VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
                ON CONFLICT (key_id) DO NOTHING
                RETURNING {_KEY_COLUMNS}""",
            key_id,
            backend.value,
            public_key,
            sealed.ciphertext if sealed else None,
            sealed.nonce if sealed else None,
            sealed.master_key_version if sealed else None,
            _policy_to_json(policy),
        )
        return _key_from_row(row) if row else None

    async def set_policy(self, key_id: str, policy: KeyPolicy) -> KeyRecord | None:
        row = await self._conn.fetchrow(
            f"UPDATE keys SET policy = $2::jsonb WHERE key_id = $1 RETURNING {_KEY_COLUMNS}",
            key_id,
            _policy_to_json(policy),
        )
        return _key_from_row(row) if row else None

    async def list_keys(self, after: str, limit: int) -> list[KeyRecord]:
        rows = await self._conn.fetch(
            f"SELECT {_KEY_COLUMNS} FROM keys WHERE key_id > $1 ORDER BY key_id LIMIT $2", after, limit
        )
        return [_key_from_row(row) for row in rows]

    async def keys_sealed_before(self, version: int) -> list[KeyRecord]:
        rows = await self._conn.fetch(
            f"SELECT {_KEY_COLUMNS} FROM keys WHERE master_key_version < $1 FOR UPDATE", version
        )
        return [_key_from_row(row) for row in rows]

    async def reseal(self, key_id: str, sealed: SealedSecret) -> None:
        await self._conn.execute(
            "UPDATE keys SET sealed_secret = $2, sealed_nonce = $3, master_key_version = $4 WHERE key_id = $1",
            key_id,
            sealed.ciphertext,
            sealed.nonce,
            sealed.master_key_version,
        )

    async def sent_last_24h(self, key_ids: Sequence[str], now: datetime) -> dict[str, int]:
        # numeric sum, not cast back to bigint: exact past 2^63 - 1 (migration 0002).
        rows = await self._conn.fetch(
            """SELECT key_id, sum(satoshis) AS sent FROM key_spends
               WHERE key_id = ANY($1::text[]) AND signed_at > $2::timestamptz - interval '24 hours'
               GROUP BY key_id""",
            list(key_ids),
            now,
        )
        return {row["key_id"]: int(row["sent"]) for row in rows}

    async def record_spends(self, spends: Sequence[KeySpend]) -> None:
        """One statement for the whole call; a (key, txid) already recorded is not counted twice."""
        unique = {(s.key_id, s.txid): s for s in spends}
        await self._conn.execute(
            """INSERT INTO key_spends (key_id, txid, satoshis, signed_at)
               SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[])
               ON CONFLICT (key_id, txid) DO NOTHING""",
            [s.key_id for s in unique.values()],
            [s.txid for s in unique.values()],
            [s.satoshis for s in unique.values()],
            [s.signed_at for s in unique.values()],
        )

    async def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        """One COPY for all the rows (AuditEntry is a tuple in the table's column order)."""
        await self._conn.copy_records_to_table("signing_audit", records=entries, columns=_AUDIT_COLUMNS)


class SignerStore(PooledStore[SignerUnitOfWork]):
    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool, SignerUnitOfWork)
