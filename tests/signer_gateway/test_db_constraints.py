"""The database as the last line of defence (migrations 0002 and 0003): impossible amounts, limits,
master key versions and change addresses are refused by name, and the 24-hour ledger sums past
2^63 - 1 stay exact."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from proofline.signer.v1 import signer_pb2

from proofline_kit.database import create_pool
from services.signer_gateway.store.signer_store import SignerStore
from tests.harness.transactions import address_script, p2pkh_script, unsigned_transaction
from tests.signer_gateway.conftest import OUTSIDE, PUBLISHER, SignerUnderTest, create_key
from tests.signer_gateway.test_sign_transactions import batch, tx_to_sign

MAX_SATOSHIS = 2_100_000_000_000_000
INT64_MAX = 2**63 - 1
# Ledger rows at the per-row maximum whose sum passes 2^63 - 1.
MANY = INT64_MAX // MAX_SATOSHIS + 10
KEY = "kms-key-1"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "signer"})
    try:
        await conn.execute(
            "INSERT INTO keys (key_id, backend, public_key) VALUES ($1, 'external_kms', $2)", KEY, b"\x02" * 33
        )
        yield conn
    finally:
        await conn.close()


@pytest.mark.parametrize("satoshis", [-1, MAX_SATOSHIS + 1, INT64_MAX])
async def test_an_impossible_spend_is_refused(db: asyncpg.Connection, satoshis: int) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await db.execute("INSERT INTO key_spends (key_id, txid, satoshis) VALUES ($1, 'tx', $2)", KEY, satoshis)
    assert refused.value.constraint_name == "key_spends_satoshis_range"


async def test_a_spend_cannot_be_raised_past_the_supply(db: asyncpg.Connection) -> None:
    await db.execute("INSERT INTO key_spends (key_id, txid, satoshis) VALUES ($1, 'tx', $2)", KEY, MAX_SATOSHIS)
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await db.execute("UPDATE key_spends SET satoshis = satoshis + 1")
    assert refused.value.constraint_name == "key_spends_satoshis_range"


@pytest.mark.parametrize("version", [0, -1])
async def test_a_master_key_version_below_one_is_refused(db: asyncpg.Connection, version: int) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await db.execute(
            """INSERT INTO keys (key_id, backend, public_key, sealed_secret, sealed_nonce, master_key_version)
               VALUES ('local-1', 'local', $1, '\\x00', '\\x00', $2)""",
            b"\x02" * 33,
            version,
        )
    assert refused.value.constraint_name == "keys_master_key_version_range"


LIMITS = {
    "max_amount_per_tx_satoshis": "keys_policy_max_amount_per_tx_range",
    "max_amount_per_day_satoshis": "keys_policy_max_amount_per_day_range",
    "max_fee_satoshis": "keys_policy_max_fee_range",
}


@pytest.mark.parametrize("limit", sorted(LIMITS))
@pytest.mark.parametrize("value", [-1, MAX_SATOSHIS + 1, 2**64, 1.5, "100", None])
async def test_an_impossible_policy_limit_is_refused(db: asyncpg.Connection, limit: str, value: object) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await db.execute("UPDATE keys SET policy = $2::jsonb WHERE key_id = $1", KEY, json.dumps({limit: value}))
    assert refused.value.constraint_name == LIMITS[limit]


async def test_policy_limits_up_to_the_supply_are_stored(db: asyncpg.Connection) -> None:
    policy: dict[str, object] = {limit: MAX_SATOSHIS for limit in LIMITS}
    policy["allowed_destinations"] = []
    await db.execute("UPDATE keys SET policy = $2::jsonb WHERE key_id = $1", KEY, json.dumps(policy))
    await db.execute("UPDATE keys SET policy = '{}'::jsonb WHERE key_id = $1", KEY)


@pytest.mark.parametrize(
    "value",
    [
        "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn",
        None,
        {"0": "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn"},
        [3],
        [None],
        [["mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn"]],
        ["mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn", "nope"],
        ["mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRf0"],
        ["mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfnn"],
        ["mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn\n"],
        ["mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn"] * 1001,
    ],
)
async def test_impossible_change_addresses_are_refused(db: asyncpg.Connection, value: object) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await db.execute(
            "UPDATE keys SET policy = $2::jsonb WHERE key_id = $1", KEY, json.dumps({"change_addresses": value})
        )
    assert refused.value.constraint_name == "keys_policy_change_addresses_shape"


async def test_change_addresses_the_gateway_writes_are_stored(db: asyncpg.Connection) -> None:
    for value in ([], [OUTSIDE, "1BoatSLRHtKNngkdXEeobR76b53LETtpyT"], [OUTSIDE] * 1000):
        await db.execute(
            "UPDATE keys SET policy = $2::jsonb WHERE key_id = $1", KEY, json.dumps({"change_addresses": value})
        )
    stored = await db.fetchval("SELECT policy FROM keys WHERE key_id = $1", KEY)
    assert json.loads(stored) == {"change_addresses": [OUTSIDE] * 1000}


async def _fill_ledger_past_int64(db: asyncpg.Connection, key_id: str) -> None:
    await db.execute(
        """INSERT INTO key_spends (key_id, txid, satoshis)
           SELECT $1, 'tx-' || i, $2 FROM generate_series(1, $3) AS i""",
        key_id,
        MAX_SATOSHIS,
        MANY,
    )


async def test_the_24_hour_sum_is_exact_past_int64(db: asyncpg.Connection, database_url: str) -> None:
    await _fill_ledger_past_int64(db, KEY)
    pool = await create_pool(database_url, "signer", 2)
    try:
        async with SignerStore(pool).reader() as uow:
            sent = await uow.sent_last_24h([KEY], datetime.now(UTC))
    finally:
        await pool.close()
    assert sent == {KEY: MANY * MAX_SATOSHIS}
    assert sent[KEY] > INT64_MAX


async def test_a_daily_limit_over_a_ledger_past_int64_denies_instead_of_failing(signer: SignerUnderTest) -> None:
    key = await create_key(signer, "publish-p", policy=signer_pb2.KeyPolicy(max_amount_per_day_satoshis=MAX_SATOSHIS))
    conn = await asyncpg.connect(signer.env["DATABASE_URL"], server_settings={"search_path": "signer"})
    try:
        await _fill_ledger_past_int64(conn, "publish-p")
    finally:
        await conn.close()
    spent = [(10_000, p2pkh_script(key.public_key))]
    raw = unsigned_transaction(spent, [(1, address_script(OUTSIDE)), (9_800, p2pkh_script(key.public_key))])
    response = await signer.stub.SignTransactions(
        batch("day1", tx_to_sign(raw, spent, [(0, "publish-p")])), metadata=PUBLISHER, timeout=20
    )
    [result] = response.results
    assert result.WhichOneof("outcome") == "error"
    assert result.error.reason == "POLICY_DENIED"
    assert result.error.metadata["rule"] == "max_amount_per_day"
