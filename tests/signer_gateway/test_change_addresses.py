"""KeyPolicy.change_addresses: outputs paying a key's change addresses are its own, not sent away.

The custodial wallet signs with many deposit keys and sends change to one change key that signs no
input: its change must not count against the deposit keys' per-transaction and daily limits."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from proofline.signer.v1 import signer_pb2

from tests.harness.grpc_errors import expect_rpc_error
from tests.harness.transactions import address_script, interpreter_accepts, p2pkh_script, unsigned_transaction
from tests.signer_gateway.conftest import ADMIN, ELSEWHERE, OUTSIDE, PUBLISHER, SignerUnderTest, create_key
from tests.signer_gateway.test_sign_transaction import sign_tx_request
from tests.signer_gateway.test_sign_transactions import batch, db_rows, tx_to_sign

COIN = 1_000_000_000  # 10 BSV: the coin a small payment is made from
FEE = 200


async def change_address(signer: SignerUnderTest) -> str:
    """The address of the wallet's change key: a key of the gateway that signs no input here."""
    await create_key(signer, "wallet-change")
    response = await signer.stub.GetPublicKey(signer_pb2.GetPublicKeyRequest(key_id="wallet-change"), metadata=ADMIN)
    return response.address


async def spends_of(signer: SignerUnderTest) -> list[tuple[str, int]]:
    rows = await db_rows(signer, "SELECT key_id, satoshis FROM signer.key_spends ORDER BY key_id, satoshis")
    return [(r["key_id"], r["satoshis"]) for r in rows]


async def denied(call: Awaitable[Any], rule: str, key_id: str = "publish-deposit-1") -> str:
    """Expect POLICY_DENIED by `key_id` under `rule`; the error's message."""
    error = await expect_rpc_error(call, grpc.StatusCode.PERMISSION_DENIED, "POLICY_DENIED")
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert any(d.Unpack(info) for d in status.details)
    assert (info.metadata["keyId"], info.metadata["rule"]) == (key_id, rule)
    return error.details() or ""


def paying(public_key: bytes, amount: int, change_to: str, coin: int = COIN) -> tuple[bytes, list[tuple[int, bytes]]]:
    """A payment of `amount` to OUTSIDE from one coin of the key, its change to `change_to`."""
    spent = [(coin, p2pkh_script(public_key))]
    outputs = [(amount, address_script(OUTSIDE)), (coin - amount - FEE, address_script(change_to))]
    return unsigned_transaction(spent, outputs), spent


async def test_change_to_a_listed_address_counts_against_neither_limit(signer: SignerUnderTest) -> None:
    change = await change_address(signer)
    policy = signer_pb2.KeyPolicy(
        max_amount_per_tx_satoshis=2_000, max_amount_per_day_satoshis=5_000, change_addresses=[change]
    )
    deposit = await create_key(signer, "publish-deposit-1", policy=policy)
    sent = []
    for n, amount in enumerate([1_000, 2_000, 2_000]):
        raw, spent = paying(deposit.public_key, amount, change)
        response = await signer.stub.SignTransaction(
            sign_tx_request(f"pay{n}", raw, spent, [(0, "publish-deposit-1")]), metadata=PUBLISHER
        )
        assert interpreter_accepts(response.signed_tx, spent)
        sent.append((response.sent_satoshis, response.fee_satoshis))
    assert sent == [(1_000, FEE), (2_000, FEE), (2_000, FEE)]
    assert await spends_of(signer) == [
        ("publish-deposit-1", 1_000),
        ("publish-deposit-1", 2_000),
        ("publish-deposit-1", 2_000),
    ]
    # 5,000 sat sent today: the next satoshi is over the daily limit, however much change goes back.
    raw, spent = paying(deposit.public_key, 1, change)
    message = await denied(
        signer.stub.SignTransaction(
            sign_tx_request("pay3", raw, spent, [(0, "publish-deposit-1")]), metadata=PUBLISHER
        ),
        "max_amount_per_day",
    )
    assert "spending to 5001 sat" in message


async def test_the_same_change_to_an_unlisted_address_is_sent_away(signer: SignerUnderTest) -> None:
    change = await change_address(signer)
    listed = signer_pb2.KeyPolicy(max_amount_per_tx_satoshis=2_000, change_addresses=[change])
    deposit = await create_key(signer, "publish-deposit-1", policy=listed)
    raw, spent = paying(deposit.public_key, 1_000, ELSEWHERE)
    message = await denied(
        signer.stub.SignTransaction(sign_tx_request("u1", raw, spent, [(0, "publish-deposit-1")]), metadata=PUBLISHER),
        "max_amount_per_tx",
    )
    assert f"sends {COIN - FEE} sat" in message
    # A key whose policy lists no change address counts the change to the change key as sent away.
    unlisted = await create_key(
        signer, "publish-deposit-2", policy=signer_pb2.KeyPolicy(max_amount_per_tx_satoshis=2_000)
    )
    raw, spent = paying(unlisted.public_key, 1_000, change)
    message = await denied(
        signer.stub.SignTransaction(sign_tx_request("u2", raw, spent, [(0, "publish-deposit-2")]), metadata=PUBLISHER),
        "max_amount_per_tx",
        "publish-deposit-2",
    )
    assert f"sends {COIN - FEE} sat" in message
    assert await spends_of(signer) == []


async def test_the_daily_limit_counts_change_once_its_address_is_no_longer_listed(signer: SignerUnderTest) -> None:
    change = await change_address(signer)
    policy = signer_pb2.KeyPolicy(max_amount_per_day_satoshis=5_000, change_addresses=[change])
    deposit = await create_key(signer, "publish-deposit-1", policy=policy)
    raw, spent = paying(deposit.public_key, 1_000, change, coin=100_000)
    await signer.stub.SignTransaction(sign_tx_request("d1", raw, spent, [(0, "publish-deposit-1")]), metadata=PUBLISHER)
    del policy.change_addresses[:]
    await signer.stub.SetKeyPolicy(
        signer_pb2.SetKeyPolicyRequest(request_id="unlist", key_id="publish-deposit-1", policy=policy), metadata=ADMIN
    )
    raw, spent = paying(deposit.public_key, 1_000, change, coin=100_000)
    message = await denied(
        signer.stub.SignTransaction(sign_tx_request("d2", raw, spent, [(0, "publish-deposit-1")]), metadata=PUBLISHER),
        "max_amount_per_day",
    )
    # 1,000 sat of the first payment, then the whole second coin less its fee.
    assert f"spending to {1_000 + 100_000 - FEE} sat" in message
    assert await spends_of(signer) == [("publish-deposit-1", 1_000)]


async def test_change_addresses_are_allowed_destinations_of_their_key(signer: SignerUnderTest) -> None:
    change = await change_address(signer)
    policy = signer_pb2.KeyPolicy(allowed_destinations=[OUTSIDE], change_addresses=[change])
    deposit = await create_key(signer, "publish-deposit-1", policy=policy)
    raw, spent = paying(deposit.public_key, 1_000, change)
    response = await signer.stub.SignTransaction(
        sign_tx_request("a1", raw, spent, [(0, "publish-deposit-1")]), metadata=PUBLISHER
    )
    assert response.sent_satoshis == 1_000
    raw, spent = paying(deposit.public_key, 1_000, ELSEWHERE)
    await denied(
        signer.stub.SignTransaction(sign_tx_request("a2", raw, spent, [(0, "publish-deposit-1")]), metadata=PUBLISHER),
        "destination_not_allowed",
    )


async def test_a_key_counts_only_its_own_change_addresses(signer: SignerUnderTest) -> None:
    """Two keys sign one transaction; only the first lists the change key. The answer's
    sent_satoshis leaves out every signing key's change addresses; each key's limits and ledger
    count its own figure, and the second key's limit cannot be widened by the first key's policy."""
    change = await change_address(signer)
    listing = await create_key(signer, "publish-deposit-1", policy=signer_pb2.KeyPolicy(change_addresses=[change]))
    other = await create_key(signer, "publish-deposit-2")
    spent = [(COIN, p2pkh_script(listing.public_key)), (50_000, p2pkh_script(other.public_key))]
    outputs = [(1_000, address_script(OUTSIDE)), (COIN + 50_000 - 1_000 - FEE, address_script(change))]
    raw = unsigned_transaction(spent, outputs)
    keys = [(0, "publish-deposit-1"), (1, "publish-deposit-2")]
    response = await signer.stub.SignTransaction(sign_tx_request("k1", raw, spent, keys), metadata=PUBLISHER)
    assert interpreter_accepts(response.signed_tx, spent)
    assert response.sent_satoshis == 1_000
    assert await spends_of(signer) == [("publish-deposit-1", 1_000), ("publish-deposit-2", COIN + 50_000 - FEE)]
    # The same transaction with a per-transaction limit on the key that lists nothing is refused by it.
    await signer.stub.SetKeyPolicy(
        signer_pb2.SetKeyPolicyRequest(
            request_id="limit-2",
            key_id="publish-deposit-2",
            policy=signer_pb2.KeyPolicy(max_amount_per_tx_satoshis=2_000),
        ),
        metadata=ADMIN,
    )
    raw = unsigned_transaction(spent, outputs)
    message = await denied(
        signer.stub.SignTransaction(sign_tx_request("k2", raw, spent, keys), metadata=PUBLISHER),
        "max_amount_per_tx",
        "publish-deposit-2",
    )
    assert f"sends {COIN + 50_000 - FEE} sat" in message
    assert len(await spends_of(signer)) == 2


async def test_sign_transactions_counts_the_daily_limit_in_order_without_listed_change(
    signer: SignerUnderTest,
) -> None:
    change = await change_address(signer)
    policy = signer_pb2.KeyPolicy(max_amount_per_day_satoshis=5_000, change_addresses=[change])
    deposit = await create_key(signer, "publish-deposit-1", policy=policy)

    def sending(amount: int, change_to: str) -> signer_pb2.TransactionToSign:
        raw, spent = paying(deposit.public_key, amount, change_to)
        return tx_to_sign(raw, spent, [(0, "publish-deposit-1")])

    response = await signer.stub.SignTransactions(
        batch(
            "day1",
            sending(2_000, change),
            sending(2_500, change),
            sending(1, ELSEWHERE),  # its change is sent away: far over the limit
            sending(500, change),
            sending(1, change),  # 5,000 sat sent by the transactions before it
        ),
        metadata=PUBLISHER,
        timeout=20,
    )
    outcomes = [r.WhichOneof("outcome") for r in response.results]
    assert outcomes == ["signed", "signed", "error", "signed", "error"]
    assert [response.results[i].signed.sent_satoshis for i in (0, 1, 3)] == [2_000, 2_500, 500]
    for index, total in ((2, 4_500 + COIN - FEE), (4, 5_001)):
        error = response.results[index].error
        assert (error.reason, error.metadata["rule"]) == ("POLICY_DENIED", "max_amount_per_day")
        assert f"spending to {total} sat" in error.message
    assert await spends_of(signer) == [
        ("publish-deposit-1", 500),
        ("publish-deposit-1", 2_000),
        ("publish-deposit-1", 2_500),
    ]


# --- the policy field ----------------------------------------------------------------------------------

# Each refused for its own reason: not base58, too long, a bad checksum, a valid checksum over 19
# bytes (a hash no script pays), a version byte that is no P2PKH one, a P2SH address.
NOT_P2PKH = [
    "nope",
    "m" * 4_000,
    OUTSIDE[:-1] + ("1" if OUTSIDE[-1] != "1" else "2"),
    "1MSp9Dq1gadqWMGiytTxHRVkfCkQ8nCu",
    "n6QoDEftSDbbBeAB9HPrH3yEQCUSttBwtL",
    "2MvMhrRzhzPDeU9QvbpTmybKSBGjUmC6TTu",
]


def violations_of(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    found: list[tuple[str, str]] = []
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            found.extend((v.field, v.description) for v in bad_request.field_violations)
    return found


async def test_change_addresses_are_stored_and_answered_with_the_policy(signer: SignerUnderTest) -> None:
    change = await change_address(signer)
    policy = signer_pb2.KeyPolicy(max_amount_per_tx_satoshis=5, change_addresses=[change, ELSEWHERE])
    created = await create_key(signer, "publish-deposit-1", policy=policy)
    assert list(created.policy.change_addresses) == [change, ELSEWHERE]
    fetched = await signer.stub.GetPublicKey(signer_pb2.GetPublicKeyRequest(key_id="publish-deposit-1"), metadata=ADMIN)
    assert fetched.key.policy == policy
    rows = await db_rows(signer, "SELECT policy FROM signer.keys WHERE key_id = 'publish-deposit-1'")
    assert '"change_addresses": [' in rows[0]["policy"]
    # The change addresses are part of the request: the same request_id with others is a reuse.
    other = signer_pb2.KeyPolicy(max_amount_per_tx_satoshis=5, change_addresses=[change])
    await expect_rpc_error(
        signer.stub.CreateKey(
            signer_pb2.CreateKeyRequest(
                request_id="create-publish-deposit-1", key_id="publish-deposit-1", policy=other
            ),
            metadata=ADMIN,
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "REQUEST_ID_REUSED",
    )


async def test_invalid_change_addresses_are_refused_by_position_and_length_and_nothing_is_stored(
    signer: SignerUnderTest,
) -> None:
    change = await change_address(signer)
    policy = signer_pb2.KeyPolicy(change_addresses=[change, *NOT_P2PKH])
    error = await expect_rpc_error(
        signer.stub.CreateKey(
            signer_pb2.CreateKeyRequest(request_id="c1", key_id="publish-deposit-1", policy=policy), metadata=ADMIN
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "POLICY_INVALID",
    )
    # The first five refused entries, by position and length; the count of all in the metadata.
    assert violations_of(error) == [
        (f"policy.change_addresses[{i + 1}]", f"not a P2PKH address (length {len(a)})")
        for i, a in enumerate(NOT_P2PKH[:5])
    ]
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert any(d.Unpack(info) for d in status.details)
    assert dict(info.metadata) == {"field": "policy.change_addresses[1]", "invalidCount": "6"}
    shown = status.SerializeToString()
    assert all(a.encode() not in shown for a in NOT_P2PKH)
    listed = await signer.stub.ListKeys(signer_pb2.ListKeysRequest(), metadata=ADMIN)
    assert [k.key_id for k in listed.keys] == ["wallet-change"]

    # SetKeyPolicy refuses the same and leaves the stored policy as it was.
    before = signer_pb2.KeyPolicy(max_amount_per_day_satoshis=9, change_addresses=[change])
    await create_key(signer, "publish-deposit-1", policy=before)
    for n, bad in enumerate(NOT_P2PKH):
        error = await expect_rpc_error(
            signer.stub.SetKeyPolicy(
                signer_pb2.SetKeyPolicyRequest(
                    request_id=f"s{n}", key_id="publish-deposit-1", policy=signer_pb2.KeyPolicy(change_addresses=[bad])
                ),
                metadata=ADMIN,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "POLICY_INVALID",
        )
        [(field, _)] = violations_of(error)
        assert field == "policy.change_addresses[0]", n
    too_many = signer_pb2.KeyPolicy(change_addresses=[change] * 1_001)
    error = await expect_rpc_error(
        signer.stub.SetKeyPolicy(
            signer_pb2.SetKeyPolicyRequest(request_id="many", key_id="publish-deposit-1", policy=too_many),
            metadata=ADMIN,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "POLICY_INVALID",
    )
    assert violations_of(error) == [("policy.change_addresses", "at most 1000 addresses")]
    fetched = await signer.stub.GetPublicKey(signer_pb2.GetPublicKeyRequest(key_id="publish-deposit-1"), metadata=ADMIN)
    assert fetched.key.policy == before
    # At the bound, the policy is accepted.
    at_the_bound = signer_pb2.KeyPolicy(change_addresses=[change] * 1_000)
    updated = await signer.stub.SetKeyPolicy(
        signer_pb2.SetKeyPolicyRequest(request_id="bound", key_id="publish-deposit-1", policy=at_the_bound),
        metadata=ADMIN,
    )
    assert updated.key.policy == at_the_bound
