"""The database's own format checks on utxos (migration 0002 rewrote them in a cheaper form: the
same strings must pass and fail as under the original regular expressions)."""

from __future__ import annotations

import re

import asyncpg
import pytest

from tests.utxo.conftest import OWNER, P2PKH, random_txid

TXID = re.compile(r"[0-9a-f]{64}")
KEY_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

TXIDS = [
    "ab" * 32,
    "0123456789abcdef" * 4,
    "AB" * 32,
    "ab" * 31,
    "ab" * 33,
    "ab" * 31 + "g0",
    "ab" * 31 + "é",
    "ab" * 31 + "a\n",
    " " + "ab" * 31 + "a",
    "",
]
KEY_IDS = ["k", "publish-key_1.a:b", "x" * 128, "x" * 129, "", "a b", "ké", "a/b", "a\nb", "-"]


async def _insert(db: asyncpg.Connection, txid: str, owner: str) -> None:
    await db.execute(
        """INSERT INTO utxos (txid, vout, satoshis, locking_script, owner_key_id, purpose, status)
           VALUES ($1, 0, 1000, $2, $3, 'publish', 'unconfirmed')""",
        txid,
        P2PKH,
        owner,
    )


@pytest.mark.parametrize("txid", TXIDS)
async def test_txid_check_accepts_exactly_64_lowercase_hex(db: asyncpg.Connection, txid: str) -> None:
    if TXID.fullmatch(txid):
        await _insert(db, txid, OWNER)
        return
    with pytest.raises(asyncpg.CheckViolationError, match="utxos_txid_check"):
        await _insert(db, txid, OWNER)


@pytest.mark.parametrize("owner", KEY_IDS)
async def test_owner_key_id_check_accepts_exactly_the_key_id_alphabet(db: asyncpg.Connection, owner: str) -> None:
    if KEY_ID.fullmatch(owner):
        await _insert(db, random_txid(), owner)
        return
    with pytest.raises(asyncpg.CheckViolationError, match="utxos_owner_key_id_check"):
        await _insert(db, random_txid(), owner)


@pytest.mark.parametrize("txid", TXIDS)
async def test_spent_by_txid_check(db: asyncpg.Connection, txid: str) -> None:
    own = random_txid()
    await _insert(db, own, OWNER)
    update = "UPDATE utxos SET status = 'spent', spent_at = now(), spent_by_txid = $2 WHERE txid = $1"
    if TXID.fullmatch(txid):
        await db.execute(update, own, txid)
        return
    with pytest.raises(asyncpg.CheckViolationError, match="utxos_spent_by_txid_check"):
        await db.execute(update, own, txid)
    # NULL stays allowed (a spend by a transaction the pool does not know).
    await db.execute("UPDATE utxos SET status = 'spent', spent_at = now(), spent_by_txid = NULL WHERE txid = $1", own)
