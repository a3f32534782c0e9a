"""Passwordless login: BeginLogin -> sign with the identity key -> CompleteLogin -> a session token
that is a caller limited to its own account. The stack of tests/wallet/test_identities.py (signer,
utxo, a real publisher and the wallet in process, real PostgreSQL and Redis); keys are registered
with their consent proof there. Nothing is mocked."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import jwt
import redis.asyncio as aioredis
from proofline.wallet.v1 import wallet_pb2

from proofline_kit.intents import signatures
from proofline_tools.signed_intents import IdentityKey
from services.wallet.domain.login import login_message
from tests.wallet import test_identities as identities
from tests.wallet.conftest import FRONTEND, RECIPIENT
from tests.wallet.test_identities import AUTH_TOKENS, WALLET_AT_PUBLISHER, Stack, record_intent, refused

stack = identities.stack  # the identity suite's stack, reused as this module's fixture
WALLET = "proofline.wallet"
OK = grpc.StatusCode.OK


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def restart(stack: Stack, **overrides: str) -> None:
    assert stack.publisher.publisher is not None
    await stack.wallet.stop_wallet()
    await stack.wallet.start_wallet(
        AUTH_TOKENS=AUTH_TOKENS,
        WALLET_PUBLISHER_ADDR=f"127.0.0.1:{stack.publisher.publisher.port}",
        WALLET_PUBLISHER_TOKEN=WALLET_AT_PUBLISHER,
        WALLET_RPC_TIMEOUT_MS="2000",
        **overrides,
    )


async def begin(stack: Stack, key: IdentityKey) -> wallet_pb2.BeginLoginResponse:
    answer: wallet_pb2.BeginLoginResponse = await stack.stub.BeginLogin(
        wallet_pb2.BeginLoginRequest(pubkey=key.pubkey), metadata=FRONTEND, timeout=10
    )
    return answer


def complete_request(challenge_id: str, signature: bytes) -> wallet_pb2.CompleteLoginRequest:
    return wallet_pb2.CompleteLoginRequest(challenge_id=challenge_id, signature=signature)


async def login(stack: Stack, key: IdentityKey) -> wallet_pb2.CompleteLoginResponse:
    started = await begin(stack, key)
    answer: wallet_pb2.CompleteLoginResponse = await stack.stub.CompleteLogin(
        complete_request(started.challenge_id, key.sign(login_message(started.challenge, key.pubkey))),
        metadata=FRONTEND,
        timeout=10,
    )
    return answer


def _der(r: int, s: int) -> bytes:
    def integer(value: int) -> bytes:
        body = value.to_bytes((value.bit_length() + 8) // 8, "big")
        return b"\x02" + bytes([len(body)]) + body

    body = integer(r) + integer(s)
    return b"\x30" + bytes([len(body)]) + body


def high_s(signature: bytes) -> bytes:
    r, s = signatures.parse_der(signature)
    return _der(r, signatures.CURVE_ORDER - s)


def tampered(token: str, **claims: Any) -> str:
    header, payload, signature = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    decoded.update(claims)
    forged = base64.urlsafe_b64encode(json.dumps(decoded).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


async def test_a_login_gives_a_token_for_its_own_account_and_nothing_else(stack: Stack, redis_url: str) -> None:
    account, other = await stack.account(), await stack.account()
    key = await stack.register(account)

    started = await begin(stack, key)
    assert len(started.challenge) == 32 and started.challenge_id.startswith("lc_")
    # Redis holds the key and the challenge, nothing else (no secret, no token), with its TTL.
    redis = aioredis.Redis.from_url(redis_url)
    try:
        found = [k async for k in redis.scan_iter(match=f"*:wallet:login:{started.challenge_id}")]
        assert len(found) == 1
        assert await redis.get(found[0]) == key.pubkey + started.challenge
        assert 0 < await redis.pttl(found[0]) <= 60_000
    finally:
        await redis.aclose()

    signature = key.sign(login_message(started.challenge, key.pubkey))
    session = await stack.stub.CompleteLogin(complete_request(started.challenge_id, signature), metadata=FRONTEND)
    assert session.account_id == account
    claims = jwt.decode(session.session_token, options={"verify_signature": False})
    assert claims["sub"] == account and claims["pk"] == key.pubkey.hex() and claims["jti"]
    assert claims["exp"] - claims["iat"] == 900 and session.expire_time.seconds == claims["exp"]
    assert jwt.get_unverified_header(session.session_token)["alg"] == "HS256"
    # The same signature again: the challenge is gone.
    assert await refused(
        stack.stub.CompleteLogin(complete_request(started.challenge_id, signature), metadata=FRONTEND)
    ) == (grpc.StatusCode.NOT_FOUND, "LOGIN_CHALLENGE_NOT_FOUND", WALLET)

    token = bearer(session.session_token)
    balance = await stack.stub.GetBalance(wallet_pb2.GetBalanceRequest(account_id=account), metadata=token)
    assert balance.balance.available_satoshis == 0
    await stack.stub.GetAccount(wallet_pb2.GetAccountRequest(account_id=account), metadata=token)
    await stack.stub.ListTransactions(wallet_pb2.ListTransactionsRequest(account_id=account), metadata=token)
    await stack.stub.ListDepositAddresses(wallet_pb2.ListDepositAddressesRequest(account_id=account), metadata=token)
    listed = await stack.stub.ListIdentities(wallet_pb2.ListIdentitiesRequest(account_id=account), metadata=token)
    assert [i.pubkey for i in listed.identities] == [key.pubkey]
    submitted = await stack.stub.SubmitIntent(
        wallet_pb2.SubmitIntentRequest(
            request_id=f"s-{uuid.uuid4().hex}", account_id=account, intent=record_intent(key)
        ),
        metadata=token,
        timeout=10,
    )
    got = await stack.stub.GetIntentJob(
        wallet_pb2.GetIntentJobRequest(account_id=account, job_id=submitted.job.job_id), metadata=token
    )
    assert got.job.job_id == submitted.job.job_id

    forbidden = (grpc.StatusCode.PERMISSION_DENIED, "ACCOUNT_FORBIDDEN", WALLET)
    assert await refused(stack.stub.GetBalance(wallet_pb2.GetBalanceRequest(account_id=other), metadata=token)) == (
        forbidden
    )
    assert (
        await refused(
            stack.stub.GetIntentJob(
                wallet_pb2.GetIntentJobRequest(account_id=other, job_id=submitted.job.job_id), metadata=token
            )
        )
        == forbidden
    )
    role = (grpc.StatusCode.PERMISSION_DENIED, "ROLE_REQUIRED", WALLET)
    send = wallet_pb2.SendRequest(request_id="s-1", account_id=account, to_address=RECIPIENT, amount_satoshis=1_000)
    calls = [
        stack.stub.Send(send, metadata=token),  # WALLET_USER_SENDS=0
        stack.stub.EstimateFee(
            wallet_pb2.EstimateFeeRequest(account_id=account, to_address=RECIPIENT, amount_satoshis=1_000),
            metadata=token,
        ),
        stack.stub.CreateAccount(wallet_pb2.CreateAccountRequest(request_id="c-1", external_id="x"), metadata=token),
        stack.stub.ListAccounts(wallet_pb2.ListAccountsRequest(), metadata=token),
        stack.stub.NewDepositAddress(
            wallet_pb2.NewDepositAddressRequest(request_id="a-1", account_id=account), metadata=token
        ),
        stack.stub.BeginLogin(wallet_pb2.BeginLoginRequest(pubkey=key.pubkey), metadata=token),
        stack.stub.RevokeIdentity(
            wallet_pb2.RevokeIdentityRequest(request_id="r-1", account_id=account, pubkey=key.pubkey), metadata=token
        ),
        stack.wallet.admin.GetReconciliation(wallet_pb2.GetReconciliationRequest(), metadata=token),
    ]
    for call in calls:
        assert await refused(call) == role

    invalid = (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID", WALLET)
    for forged in (
        tampered(session.session_token, sub=other),
        tampered(session.session_token, exp=claims["exp"] + 3600),
        tampered(session.session_token, pk=IdentityKey.generate().pubkey.hex()),
        session.session_token[:-2] + ("AA" if not session.session_token.endswith("AA") else "BB"),
        jwt.encode({**claims, "sub": other}, "not the server's key", algorithm="HS256"),
        jwt.encode(claims, "", algorithm="none"),
    ):
        assert (
            await refused(
                stack.stub.GetBalance(wallet_pb2.GetBalanceRequest(account_id=account), metadata=bearer(forged))
            )
            == invalid
        )


async def test_bad_signatures_and_challenges_are_refused_with_their_reasons(stack: Stack) -> None:
    account = await stack.account()
    key, stranger = await stack.register(account), IdentityKey.generate()

    async def attempt(signature: Callable[[bytes], bytes]) -> tuple[grpc.StatusCode, str, str]:
        started = await begin(stack, key)
        made = signature(started.challenge)
        answer = await refused(
            stack.stub.CompleteLogin(complete_request(started.challenge_id, made), metadata=FRONTEND)
        )
        # Whatever the outcome, the challenge answered its one attempt.
        good = key.sign(login_message(started.challenge, key.pubkey))
        assert (
            await refused(stack.stub.CompleteLogin(complete_request(started.challenge_id, good), metadata=FRONTEND))
        )[1] == "LOGIN_CHALLENGE_NOT_FOUND"
        return answer

    def message(challenge: bytes) -> bytes:
        return login_message(challenge, key.pubkey)

    assert await attempt(lambda c: high_s(key.sign(message(c)))) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "SIGNATURE_HIGH_S",
        WALLET,
    )
    assert await attempt(lambda c: key.sign(message(c)) + b"\x01") == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "SIGNATURE_MALFORMED",
        WALLET,
    )
    assert await attempt(lambda c: stranger.sign(message(c))) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "LOGIN_SIGNATURE_MISMATCH",
        WALLET,
    )
    # The key's signature over another message (no domain prefix: the bare challenge).
    assert await attempt(lambda c: key.sign(c)) == (grpc.StatusCode.UNAUTHENTICATED, "LOGIN_SIGNATURE_MISMATCH", WALLET)
    for unknown in ("lc_" + "0" * 32, "nope"):
        assert await refused(
            stack.stub.CompleteLogin(complete_request(unknown, key.sign(b"x")), metadata=FRONTEND)
        ) == (grpc.StatusCode.NOT_FOUND, "LOGIN_CHALLENGE_NOT_FOUND", WALLET)
    # A key linked to no account is refused at BeginLogin: no challenge is made for it.
    assert await refused(
        stack.stub.BeginLogin(wallet_pb2.BeginLoginRequest(pubkey=stranger.pubkey), metadata=FRONTEND)
    ) == (grpc.StatusCode.NOT_FOUND, "IDENTITY_NOT_FOUND", WALLET)
    assert await refused(
        stack.stub.BeginLogin(wallet_pb2.BeginLoginRequest(pubkey=b"\x05" * 33), metadata=FRONTEND)
    ) == (grpc.StatusCode.INVALID_ARGUMENT, "PUBKEY_INVALID", WALLET)


async def test_a_revoked_key_cannot_log_in_and_its_sessions_end(stack: Stack) -> None:
    account = await stack.account()
    key = await stack.register(account)
    session = await login(stack, key)
    token = bearer(session.session_token)
    await stack.stub.GetBalance(wallet_pb2.GetBalanceRequest(account_id=account), metadata=token)
    started = await begin(stack, key)  # begun before the revocation, completed after it
    await stack.stub.RevokeIdentity(
        wallet_pb2.RevokeIdentityRequest(request_id=f"r-{uuid.uuid4().hex}", account_id=account, pubkey=key.pubkey),
        metadata=FRONTEND,
        timeout=10,
    )
    assert await refused(stack.stub.GetBalance(wallet_pb2.GetBalanceRequest(account_id=account), metadata=token)) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "TOKEN_INVALID",
        WALLET,
    )
    revoked = (grpc.StatusCode.FAILED_PRECONDITION, "IDENTITY_REVOKED", WALLET)
    signature = key.sign(login_message(started.challenge, key.pubkey))
    assert (
        await refused(stack.stub.CompleteLogin(complete_request(started.challenge_id, signature), metadata=FRONTEND))
        == revoked
    )
    assert (
        await refused(stack.stub.BeginLogin(wallet_pb2.BeginLoginRequest(pubkey=key.pubkey), metadata=FRONTEND))
        == revoked
    )


async def test_expiry_rate_limits_user_sends_and_transactions_of_another_account(stack: Stack) -> None:
    await restart(
        stack,
        WALLET_LOGIN_CHALLENGE_TTL_MS="300",
        WALLET_SESSION_TTL_MS="2000",
        WALLET_LOGINS_PER_KEY="4",
        WALLET_USER_SENDS="1",
    )
    account = await stack.account()
    key = await stack.register(account)
    started = await begin(stack, key)
    await asyncio.sleep(0.5)
    signature = key.sign(login_message(started.challenge, key.pubkey))
    assert await refused(
        stack.stub.CompleteLogin(complete_request(started.challenge_id, signature), metadata=FRONTEND)
    ) == (grpc.StatusCode.NOT_FOUND, "LOGIN_CHALLENGE_NOT_FOUND", WALLET)
    session = await login(stack, key)
    token = bearer(session.session_token)
    # WALLET_USER_SENDS=1: the session may estimate and send from its own account (here: no funds).
    estimate = await stack.stub.EstimateFee(
        wallet_pb2.EstimateFeeRequest(account_id=account, to_address=RECIPIENT, amount_satoshis=1_000), metadata=token
    )
    assert not estimate.sufficient_funds
    code, reason, _ = await refused(
        stack.stub.Send(
            wallet_pb2.SendRequest(request_id="s-1", account_id=account, to_address=RECIPIENT, amount_satoshis=1_000),
            metadata=token,
        )
    )
    assert reason not in ("ROLE_REQUIRED", "ACCOUNT_FORBIDDEN", "TOKEN_INVALID"), (code, reason)
    other, _ = await stack.wallet.funded_account(5_000)
    assert await refused(
        stack.stub.Send(
            wallet_pb2.SendRequest(
                request_id="s-2", account_id=other.account_id, to_address=RECIPIENT, amount_satoshis=1_000
            ),
            metadata=token,
        )
    ) == (grpc.StatusCode.PERMISSION_DENIED, "ACCOUNT_FORBIDDEN", WALLET)
    # Another account's transaction, looked up by id: NOT_FOUND, as if it did not exist.
    listed = await stack.stub.ListTransactions(
        wallet_pb2.ListTransactionsRequest(account_id=other.account_id), metadata=FRONTEND
    )
    [deposit] = listed.transactions
    not_found = (grpc.StatusCode.NOT_FOUND, "TRANSACTION_NOT_FOUND", WALLET)
    get = wallet_pb2.GetTransactionRequest(transaction_id=deposit.transaction_id)
    assert await refused(stack.stub.GetTransaction(get, metadata=token)) == not_found
    watch = stack.stub.WatchTransaction(
        wallet_pb2.WatchTransactionRequest(transaction_id=deposit.transaction_id), metadata=token
    )
    assert await refused(watch.read()) == not_found
    # The token expires (WALLET_SESSION_TTL_MS=2000; exp has whole seconds).
    await asyncio.sleep(3.1)
    assert await refused(stack.stub.GetBalance(wallet_pb2.GetBalanceRequest(account_id=account), metadata=token)) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "TOKEN_INVALID",
        WALLET,
    )
    # Four BeginLogin per key per minute: two above, two here, and the fifth is refused.
    await begin(stack, key)
    await begin(stack, key)
    assert await refused(stack.stub.BeginLogin(wallet_pb2.BeginLoginRequest(pubkey=key.pubkey), metadata=FRONTEND)) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "LOGIN_RATE_LIMITED",
        WALLET,
    )
