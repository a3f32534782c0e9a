"""Backup shares of identity keys and their recovery, end to end: signer_gateway, utxo, a real
publisher and the wallet in process, real gRPC, PostgreSQL and Redis, and the local SMTP server the
recovery codes are read from. Nothing is mocked."""

from __future__ import annotations

import asyncio
import io
import itertools
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc
import pytest
from proofline.wallet.v1 import wallet_pb2

from proofline_kit.settings import EnvReader, SettingsError
from proofline_tools.devstack.mail import LocalMailServer
from proofline_tools.identity.backup import THRESHOLD, Backup, back_up, restore
from proofline_tools.identity.cli import run
from proofline_tools.identity.keyfile import read_key_file
from proofline_tools.identity.shares import ShareError, split_secret
from proofline_tools.signed_intents import IdentityKey
from services.wallet.settings import read_wallet_settings
from tests.harness.grpc_errors import expect_rpc_error
from tests.wallet.conftest import ADMIN, FRONTEND, production_env
from tests.wallet.test_identities import AUTH_TOKENS, WALLET_AT_PUBLISHER, Stack
from tests.wallet.test_identities import stack as stack

KEK = "11" * 32
TOKEN = "frontend-token-0001"


@dataclass
class Owner:
    account_id: str
    email: str
    key: IdentityKey
    backup: Backup


@dataclass
class Backups:
    stack: Stack
    mail: LocalMailServer

    @property
    def stub(self) -> object:
        return self.stack.stub

    async def restart(self, **overrides: str) -> None:
        wallet, publisher = self.stack.wallet, self.stack.publisher.publisher
        assert publisher is not None
        await wallet.stop_wallet()
        await wallet.start_wallet(
            AUTH_TOKENS=AUTH_TOKENS,
            WALLET_PUBLISHER_ADDR=f"127.0.0.1:{publisher.port}",
            WALLET_PUBLISHER_TOKEN=WALLET_AT_PUBLISHER,
            WALLET_RPC_TIMEOUT_MS="2000",
            WALLET_SMTP_HOST=self.mail.host,
            WALLET_SMTP_PORT=str(self.mail.port),
            WALLET_SMTP_SECURITY="none",
            WALLET_BACKUP_KEK=KEK,
            **overrides,
        )

    async def account(self, email: str) -> str:
        response = await self.stack.stub.CreateAccount(
            wallet_pb2.CreateAccountRequest(request_id=f"acct-{uuid.uuid4().hex}", external_id=email),
            metadata=FRONTEND,
        )
        return str(response.account.account_id)

    async def owner(self) -> Owner:
        email = f"u{uuid.uuid4().hex[:10]}@example.com"
        account = await self.account(email)
        key = await self.stack.register(account)
        return Owner(account, email, key, back_up(key))

    async def store(self, owner: Owner, shares: list[str], request_id: str | None = None) -> int:
        answer = await self.stack.stub.StoreBackupShares(
            wallet_pb2.StoreBackupSharesRequest(
                request_id=request_id or f"bkp-{uuid.uuid4().hex}",
                account_id=owner.account_id,
                pubkey=owner.key.pubkey,
                shares=shares,
            ),
            metadata=FRONTEND,
        )
        return int(answer.stored_count)

    async def begin(self, owner: Owner) -> str:
        started = await self.stack.stub.BeginRecovery(
            wallet_pb2.BeginRecoveryRequest(account_id=owner.account_id, pubkey=owner.key.pubkey), metadata=FRONTEND
        )
        return str(started.recovery_id)

    async def complete(self, recovery_id: str, code: str, metadata: object = FRONTEND) -> list[str]:
        answer = await self.stack.stub.CompleteRecovery(
            wallet_pb2.CompleteRecoveryRequest(recovery_id=recovery_id, code=code), metadata=metadata
        )
        return list(answer.shares)

    async def code(self, owner: Owner, after: int) -> str:
        """The code of the first mail to the owner after `after` mails."""

        def wait() -> str:
            for _ in range(250):
                mails = [m for m in self.mail.mails if owner.email in m.to]
                if len(mails) > after:
                    assert "recovery code" in mails[after].subject
                    return mails[after].code
                time.sleep(0.02)
            raise AssertionError("no recovery mail")

        return await asyncio.to_thread(wait)

    def mails_to(self, owner: Owner) -> int:
        return len([m for m in self.mail.mails if owner.email in m.to])

    async def db(self, query: str, *args: object) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.stack.wallet.database_url, server_settings={"search_path": "wallet"})
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()


@pytest.fixture
def mail() -> Iterator[LocalMailServer]:
    server = LocalMailServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def backups(stack: Stack, mail: LocalMailServer) -> Backups:
    under_test = Backups(stack, mail)
    await under_test.restart()
    return under_test


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_any_3_of_5_rebuild_the_key_and_2_do_not() -> None:
    key = IdentityKey.generate()
    shares = back_up(key).shares
    for three in itertools.combinations(shares, THRESHOLD):
        assert restore(three).pubkey == key.pubkey
    for two in itertools.combinations(shares, THRESHOLD - 1):
        with pytest.raises(ShareError):
            restore(two)


async def test_stored_shares_come_back_after_the_mailed_code_and_rebuild_the_key(backups: Backups) -> None:
    owner = await backups.owner()
    service = list(owner.backup.service_shares)
    request_id = f"bkp-{uuid.uuid4().hex}"
    assert await backups.store(owner, service, request_id) == 2
    # A retry with the same request_id replays the answer.
    assert await backups.store(owner, service, request_id) == 2
    rows = await backups.db("SELECT * FROM backup_shares WHERE pubkey = $1 ORDER BY slot", owner.key.pubkey)
    assert [r["slot"] for r in rows] == [1, 2] and {r["account_id"] for r in rows} == {owner.account_id}
    # The database never holds a share in plaintext: no word of any share in any text or byte value of
    # the table (values only: a column name such as member_index holds a SLIP-39 word, "index").
    dump = " ".join(
        repr(v)
        for r in await backups.db("SELECT * FROM backup_shares")
        for v in r.values()
        if isinstance(v, str | bytes)
    ).lower()
    raw = b"".join(bytes(r["ciphertext"]) + bytes(r["nonce"]) for r in rows).lower()
    for share in owner.backup.shares:
        for word in set(share.split()):
            if len(word) >= 4:
                assert word not in dump and word.encode() not in raw, word

    before = backups.mails_to(owner)
    recovery_id = await backups.begin(owner)
    code = await backups.code(owner, before)
    # A wrong code, or another caller with the right one, releases nothing.
    await expect_rpc_error(
        backups.complete(recovery_id, _wrong(code)), grpc.StatusCode.INVALID_ARGUMENT, "CODE_INVALID"
    )
    await expect_rpc_error(backups.complete(recovery_id, code, ADMIN), grpc.StatusCode.NOT_FOUND, "RECOVERY_NOT_FOUND")
    assert await backups.db("SELECT * FROM backup_releases") == []
    released = await backups.complete(recovery_id, code)
    assert released == service
    # With 1 of the user's shares the client rebuilds the same key.
    assert restore([*released, owner.backup.user_shares[1]]).pubkey == owner.key.pubkey
    # The code works once.
    await expect_rpc_error(backups.complete(recovery_id, code), grpc.StatusCode.NOT_FOUND, "RECOVERY_NOT_FOUND")
    [audit] = await backups.db("SELECT * FROM backup_releases")
    assert (audit["account_id"], bytes(audit["pubkey"]), audit["caller_id"], audit["shares"]) == (
        owner.account_id,
        owner.key.pubkey,
        "frontend",
        2,
    )
    assert audit["recovery_id"] == recovery_id and audit["released_at"] is not None

    # At most 2 shares per key, ever: a third is refused.
    await expect_rpc_error(
        backups.store(owner, [owner.backup.user_shares[0]]), grpc.StatusCode.FAILED_PRECONDITION, "BACKUP_FULL"
    )


async def test_bad_shares_are_refused_and_nothing_is_kept(backups: Backups) -> None:
    owner, other = await backups.owner(), await backups.owner()
    first, second = owner.backup.service_shares
    foreign = other.backup.service_shares[0]
    await expect_rpc_error(backups.store(owner, [first, foreign]), grpc.StatusCode.INVALID_ARGUMENT, "SHARES_MISMATCH")
    broken = first.split()
    broken[-1] = "academic" if broken[-1] != "academic" else "acid"
    await expect_rpc_error(backups.store(owner, [" ".join(broken)]), grpc.StatusCode.INVALID_ARGUMENT, "SHARE_INVALID")
    await expect_rpc_error(backups.store(owner, ["not a share"]), grpc.StatusCode.INVALID_ARGUMENT, "SHARE_INVALID")
    # Two shares of a 2-of-n split would be the key: refused.
    weak = split_secret(owner.key.secret, threshold=2, count=3)
    await expect_rpc_error(backups.store(owner, weak[:1]), grpc.StatusCode.INVALID_ARGUMENT, "SHARE_THRESHOLD_TOO_LOW")
    # Another account's key is not this account's to back up.
    other_request = wallet_pb2.StoreBackupSharesRequest(
        request_id="bkp-other", account_id=owner.account_id, pubkey=other.key.pubkey, shares=[foreign]
    )
    await expect_rpc_error(
        backups.stack.stub.StoreBackupShares(other_request, metadata=FRONTEND),
        grpc.StatusCode.PERMISSION_DENIED,
        "IDENTITY_NOT_IN_ACCOUNT",
    )
    assert await backups.db("SELECT * FROM backup_shares") == []
    # One at a time works; a share of another split after it is a mismatch, the same one again is kept already.
    assert await backups.store(owner, [first]) == 1
    await expect_rpc_error(backups.store(owner, [foreign]), grpc.StatusCode.INVALID_ARGUMENT, "SHARES_MISMATCH")
    await expect_rpc_error(backups.store(owner, [first]), grpc.StatusCode.ALREADY_EXISTS, "SHARE_ALREADY_STORED")
    assert await backups.store(owner, [second]) == 2


@pytest.mark.parametrize("tamper", ["ciphertext", "moved"])
async def test_tampered_or_moved_ciphertext_is_refused_and_nothing_is_released(backups: Backups, tamper: str) -> None:
    owner = await backups.owner()
    await backups.store(owner, list(owner.backup.service_shares))
    if tamper == "ciphertext":
        await backups.db(
            """UPDATE backup_shares SET ciphertext = overlay(ciphertext placing
                   decode(lpad(to_hex(get_byte(ciphertext, 5) # 1), 2, '0'), 'hex') from 6 for 1)
               WHERE pubkey = $1 AND slot = 2""",
            owner.key.pubkey,
        )
    else:  # the row claims another account of the same caller
        other = (await backups.stack.wallet.account()).account_id
        await backups.db(
            "UPDATE backup_shares SET account_id = $2 WHERE pubkey = $1 AND slot = 1", owner.key.pubkey, other
        )
    before = backups.mails_to(owner)
    recovery_id = await backups.begin(owner)
    code = await backups.code(owner, before)
    await expect_rpc_error(backups.complete(recovery_id, code), grpc.StatusCode.INTERNAL, "BACKUP_UNREADABLE")
    assert await backups.db("SELECT * FROM backup_releases") == []


async def test_an_expired_code_releases_nothing_and_recoveries_are_rate_limited(backups: Backups) -> None:
    await backups.restart(WALLET_RECOVERY_CODE_TTL_MS="1000", WALLET_RECOVERIES_PER_KEY="2")
    owner = await backups.owner()
    await backups.store(owner, list(owner.backup.service_shares))
    before = backups.mails_to(owner)
    recovery_id = await backups.begin(owner)
    code = await backups.code(owner, before)
    await asyncio.sleep(1.1)
    await expect_rpc_error(backups.complete(recovery_id, code), grpc.StatusCode.FAILED_PRECONDITION, "CODE_EXPIRED")
    assert await backups.db("SELECT * FROM backup_releases") == []
    second = await backups.begin(owner)
    assert await backups.complete(second, await backups.code(owner, before + 1)) == list(owner.backup.service_shares)
    mails = backups.mails_to(owner)
    await expect_rpc_error(backups.begin(owner), grpc.StatusCode.RESOURCE_EXHAUSTED, "RECOVERY_RATE_LIMITED")
    assert backups.mails_to(owner) == mails
    assert len(await backups.db("SELECT * FROM backup_releases")) == 1


async def test_the_cli_uploads_on_create_and_recovers_from_the_wallet_with_one_user_share(
    backups: Backups, tmp_path: Path
) -> None:
    email = f"cli{uuid.uuid4().hex[:8]}@example.com"
    account = await backups.account(email)
    address = f"127.0.0.1:{backups.stack.wallet.wallet.port}" if backups.stack.wallet.wallet else ""
    environ = {"WALLET_TOKEN": TOKEN}
    online = ["--account", account, "--token-env", "WALLET_TOKEN"]
    out = io.StringIO()
    created = await asyncio.to_thread(
        run, ["create", "--key-file", str(tmp_path / "a.key"), "--wallet", address, *online], out=out, environ=environ
    )
    assert created == 0, out.getvalue()
    key = read_key_file(tmp_path / "a.key")
    printed = [line.split(": ", 1)[1] for line in out.getvalue().splitlines() if "yours" in line]
    assert len(printed) == 3 and "kept by the wallet" in out.getvalue()
    rows = await backups.db("SELECT slot FROM backup_shares WHERE pubkey = $1", key.pubkey)
    assert len(rows) == 2

    owner = Owner(account, email, key, back_up(key))
    before = backups.mails_to(owner)

    class CodeThenShare(io.StringIO):
        """stdin: the mailed code (read when the tool asks for it), then one of the user's shares."""

        def __init__(self) -> None:
            super().__init__()
            self._lines: list[str] | None = None

        def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
            for _ in range(250):
                mails = [m for m in backups.mail.mails if email in m.to]
                if len(mails) > before:
                    return mails[before].code + "\n"
                time.sleep(0.02)
            return "\n"

        def __iter__(self) -> Iterator[str]:  # type: ignore[override]
            return iter([printed[2] + "\n"])

    out = io.StringIO()
    recovered = await asyncio.to_thread(
        run,
        [
            "recover",
            "--key-file",
            str(tmp_path / "b.key"),
            "--from-wallet",
            address,
            *online,
            "--expect-pubkey",
            key.pubkey.hex(),
        ],
        stdin=CodeThenShare(),
        out=out,
        environ=environ,
    )
    assert recovered == 0, out.getvalue()
    assert read_key_file(tmp_path / "b.key").pubkey == key.pubkey
    assert len(await backups.db("SELECT * FROM backup_releases WHERE pubkey = $1", key.pubkey)) == 1


def test_production_needs_a_backup_kek_of_32_bytes() -> None:
    production = production_env(without=("WALLET_BACKUP_KEK",))
    with pytest.raises(SettingsError, match="WALLET_BACKUP_KEK required in production"):
        read_wallet_settings(EnvReader(production))
    with pytest.raises(SettingsError, match="WALLET_BACKUP_KEK must be 32 bytes"):
        read_wallet_settings(EnvReader({**production, "WALLET_BACKUP_KEK": "ab" * 16}))
    ready = read_wallet_settings(EnvReader({**production, "WALLET_BACKUP_KEK": KEK}))
    assert ready.backup_kek == bytes.fromhex(KEK) and KEK not in repr(ready)


async def test_one_code_releases_once_when_completions_race(backups: Backups) -> None:
    owner = await backups.owner()
    await backups.store(owner, list(owner.backup.service_shares))
    before = backups.mails_to(owner)
    recovery_id = await backups.begin(owner)
    code = await backups.code(owner, before)
    answers = await asyncio.gather(*(backups.complete(recovery_id, code) for _ in range(4)), return_exceptions=True)
    released = [a for a in answers if isinstance(a, list)]
    refused = [a for a in answers if isinstance(a, grpc.aio.AioRpcError)]
    assert released == [list(owner.backup.service_shares)]
    assert len(refused) == 3 and {e.code() for e in refused} == {grpc.StatusCode.NOT_FOUND}
    assert len(await backups.db("SELECT * FROM backup_releases")) == 1
