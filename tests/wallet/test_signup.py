"""Sign-up by email: the code goes over real SMTP to a local server (aiosmtpd) and is read from the
mail; Redis holds only its keyed hash; tries, expiry and rate limits are bounded; a verified code
creates the account once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import asyncpg
import grpc
import pytest
import redis.asyncio as aioredis
from proofline.wallet.v1 import wallet_pb2

from proofline_kit.rpc.status import error_reason, from_rpc_error
from proofline_kit.settings import EnvReader, SettingsError
from proofline_tools.devstack.mail import LocalMailServer
from services.wallet.settings import read_wallet_settings
from tests.harness.grpc_errors import expect_rpc_error
from tests.wallet.conftest import FRONTEND, STRANGER, WalletSuite, production_env


@pytest.fixture
def mail() -> Iterator[LocalMailServer]:
    server = LocalMailServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def _start(suite: WalletSuite, mail: LocalMailServer, **overrides: str) -> str:
    """The wallet again, mailing through `mail`; its Redis key prefix."""
    prefix = f"w-{uuid.uuid4().hex[:12]}"
    await suite.stop_wallet()
    await suite.start_wallet(
        REDIS_KEY_PREFIX=prefix,
        WALLET_SMTP_HOST=mail.host,
        WALLET_SMTP_PORT=str(mail.port),
        WALLET_SMTP_SECURITY="none",
        **overrides,
    )
    return prefix


async def _redis_dump(redis_url: str, prefix: str) -> dict[str, str]:
    client = aioredis.from_url(redis_url)
    try:
        dump: dict[str, str] = {}
        async for key in client.scan_iter(match=f"{prefix}:*"):
            kind = await client.type(key)
            value = await client.hgetall(key) if kind in (b"hash", "hash") else await client.get(key)
            dump[key.decode()] = repr(value)
        return dump
    finally:
        await client.aclose()


async def _start_sign_up(suite: WalletSuite, email: str) -> wallet_pb2.StartSignUpResponse:
    return await suite.stub.StartSignUp(wallet_pb2.StartSignUpRequest(email=email), metadata=FRONTEND)


async def _complete(suite: WalletSuite, signup_id: str, code: str) -> wallet_pb2.CompleteSignUpResponse:
    return await suite.stub.CompleteSignUp(
        wallet_pb2.CompleteSignUpRequest(signup_id=signup_id, code=code, label="from sign-up"), metadata=FRONTEND
    )


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def test_a_mailed_code_creates_the_account_once(
    suite: WalletSuite, mail: LocalMailServer, wallet_db: asyncpg.Connection
) -> None:
    prefix = await _start(suite, mail)
    started = await _start_sign_up(suite, "  Alice.Example@Example.COM ")
    assert started.signup_id.startswith("su_") and started.max_attempts == 5
    sent = mail.mail_to("alice.example@example.com")
    assert len(sent.code) == 6 and "sign-up code" in sent.subject
    # Redis keeps the code's keyed hash, never the code.
    dump = await _redis_dump(suite.redis_url, prefix)
    assert dump and all(sent.code not in value for value in dump.values())
    wrong = await expect_rpc_error(
        _complete(suite, started.signup_id, _wrong(sent.code)), grpc.StatusCode.INVALID_ARGUMENT, "CODE_INVALID"
    )
    assert ("attemptsLeft", "4") in _metadata(wrong)
    assert await wallet_db.fetchval("SELECT count(*) FROM accounts") == 0
    done = await _complete(suite, started.signup_id, sent.code)
    assert done.created and done.account.external_id == "alice.example@example.com"
    assert done.account.label == "from sign-up"
    # The code worked once.
    await expect_rpc_error(
        _complete(suite, started.signup_id, sent.code), grpc.StatusCode.NOT_FOUND, "SIGNUP_NOT_FOUND"
    )
    # Signing up again with the same address answers the same account.
    again = await _start_sign_up(suite, "alice.example@example.com")
    second = await _complete(suite, again.signup_id, mail.mail_to("alice.example@example.com").code)
    assert not second.created and second.account.account_id == done.account.account_id
    assert await wallet_db.fetchval("SELECT count(*) FROM accounts") == 1


async def test_tries_are_bounded_and_an_expired_code_is_refused(suite: WalletSuite, mail: LocalMailServer) -> None:
    await _start(suite, mail, WALLET_SIGNUP_MAX_ATTEMPTS="2", WALLET_SIGNUP_CODE_TTL_MS="1000")
    started = await _start_sign_up(suite, "bob@example.org")
    code = mail.mail_to("bob@example.org").code
    await expect_rpc_error(_complete(suite, started.signup_id, _wrong(code)), grpc.StatusCode.INVALID_ARGUMENT)
    await expect_rpc_error(
        _complete(suite, started.signup_id, _wrong(code)),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "CODE_ATTEMPTS_EXHAUSTED",
    )
    # The sign-up is gone: even the right code no longer works.
    await expect_rpc_error(_complete(suite, started.signup_id, code), grpc.StatusCode.NOT_FOUND, "SIGNUP_NOT_FOUND")
    late = await _start_sign_up(suite, "bob@example.org")
    late_code = mail.mail_to("bob@example.org").code
    await asyncio.sleep(1.2)
    await expect_rpc_error(
        _complete(suite, late.signup_id, late_code), grpc.StatusCode.FAILED_PRECONDITION, "CODE_EXPIRED"
    )
    accounts = await suite.stub.ListAccounts(wallet_pb2.ListAccountsRequest(), metadata=FRONTEND)
    assert not accounts.accounts


async def test_sign_ups_are_rate_limited_per_address_and_per_caller(suite: WalletSuite, mail: LocalMailServer) -> None:
    await _start(suite, mail, WALLET_SIGNUPS_PER_ADDRESS="2", WALLET_SIGNUPS_PER_CALLER="4")
    for _ in range(2):
        await _start_sign_up(suite, "carol@example.net")
    limited = await expect_rpc_error(
        _start_sign_up(suite, "Carol@example.net"), grpc.StatusCode.RESOURCE_EXHAUSTED, "SIGNUP_RATE_LIMITED"
    )
    assert ("limit", "for this address") in _metadata(limited)
    assert len([m for m in mail.mails if "carol@example.net" in m.to]) == 2
    await _start_sign_up(suite, "dave@example.net")
    # Four sign-ups from this caller in the minute (the refused one counted): the fifth is refused.
    await expect_rpc_error(
        _start_sign_up(suite, "erin@example.net"), grpc.StatusCode.RESOURCE_EXHAUSTED, "SIGNUP_RATE_LIMITED"
    )
    assert not [m for m in mail.mails if "erin@example.net" in m.to]


async def test_bad_input_and_a_down_mail_server_change_nothing(
    suite: WalletSuite, mail: LocalMailServer, wallet_db: asyncpg.Connection
) -> None:
    prefix = await _start(suite, mail)
    for bad in ("", "no-at-sign", "two@@example.com", "spaces in@example.com", "x@localhost", "a" * 250 + "@ex.com"):
        await expect_rpc_error(_start_sign_up(suite, bad), grpc.StatusCode.INVALID_ARGUMENT, "EMAIL_INVALID")
    await expect_rpc_error(_complete(suite, "su_" + "0" * 32, "123456"), grpc.StatusCode.NOT_FOUND, "SIGNUP_NOT_FOUND")
    await expect_rpc_error(
        _complete(suite, "su_" + "0" * 32, "12345"), grpc.StatusCode.INVALID_ARGUMENT, "CODE_INVALID"
    )
    await expect_rpc_error(
        suite.stub.StartSignUp(wallet_pb2.StartSignUpRequest(email="f@example.com"), metadata=STRANGER),
        grpc.StatusCode.PERMISSION_DENIED,
        "ROLE_REQUIRED",
    )
    assert not mail.mails and not await _redis_dump(suite.redis_url, prefix)
    mail.stop()
    unavailable = await expect_rpc_error(
        _start_sign_up(suite, "frank@example.com"), grpc.StatusCode.UNAVAILABLE, "EMAIL_UNAVAILABLE"
    )
    assert error_reason(unavailable) == "EMAIL_UNAVAILABLE"
    # The rate limiter's counters are all that remain: no sign-up is kept for a mail never sent.
    assert not [k for k in await _redis_dump(suite.redis_url, prefix) if ":signup:" in k]
    assert await wallet_db.fetchval("SELECT count(*) FROM accounts") == 0


def test_production_needs_an_smtp_server_and_an_otp_secret() -> None:
    production = production_env(without=("WALLET_SMTP_HOST", "WALLET_OTP_SECRET", "WALLET_SESSION_SECRET"))
    # The login's session secret (WALLET_SESSION_SECRET) is required in production too.
    with pytest.raises(
        SettingsError, match="WALLET_SMTP_HOST, WALLET_OTP_SECRET, WALLET_SESSION_SECRET required in production"
    ):
        read_wallet_settings(EnvReader(production))
    with pytest.raises(SettingsError, match="WALLET_OTP_SECRET must be at least 32 characters"):
        read_wallet_settings(EnvReader({**production, "WALLET_SMTP_HOST": "smtp.example", "WALLET_OTP_SECRET": "x"}))
    with pytest.raises(SettingsError, match="WALLET_SESSION_SECRET must be at least 32 characters"):
        read_wallet_settings(EnvReader({**production, "WALLET_SESSION_SECRET": "short"}))
    ready = read_wallet_settings(
        EnvReader(
            {
                **production,
                "WALLET_SMTP_HOST": "smtp.example",
                "WALLET_OTP_SECRET": "s" * 32,
                "WALLET_SESSION_SECRET": "k" * 32,
            }
        )
    )
    assert ready.smtp.host == "smtp.example" and "s" * 32 not in repr(ready) and "k" * 32 not in repr(ready)
    assert ready.session_secret == b"k" * 32 and not ready.user_sends


def _metadata(error: grpc.aio.AioRpcError) -> set[tuple[str, str]]:
    return set(from_rpc_error(error, "wallet", "-").metadata.items())
