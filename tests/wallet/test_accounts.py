"""Accounts, deposit addresses and balances over gRPC, with every service real."""

from __future__ import annotations

import grpc
from proofline.wallet.v1 import wallet_pb2

from tests.harness.grpc_errors import expect_rpc_error
from tests.wallet.conftest import FRONTEND, STRANGER, WalletSuite, eventually


async def test_create_get_and_list_accounts(suite: WalletSuite) -> None:
    first = await suite.account("alice")
    again = await suite.stub.CreateAccount(
        wallet_pb2.CreateAccountRequest(request_id="acct-alice", external_id="alice"), metadata=FRONTEND
    )
    assert again.account == first
    await expect_rpc_error(
        suite.stub.CreateAccount(
            wallet_pb2.CreateAccountRequest(request_id="other-request", external_id="alice"), metadata=FRONTEND
        ),
        grpc.StatusCode.ALREADY_EXISTS,
        "ACCOUNT_ALREADY_EXISTS",
    )
    got = await suite.stub.GetAccount(wallet_pb2.GetAccountRequest(account_id=first.account_id), metadata=FRONTEND)
    assert got.account == first
    second = await suite.account("bob")
    page = await suite.stub.ListAccounts(wallet_pb2.ListAccountsRequest(page_size=1), metadata=FRONTEND)
    assert [a.account_id for a in page.accounts] == [first.account_id]
    rest = await suite.stub.ListAccounts(
        wallet_pb2.ListAccountsRequest(page_size=1, page_token=page.next_page_token), metadata=FRONTEND
    )
    assert [a.account_id for a in rest.accounts] == [second.account_id]
    only = await suite.stub.ListAccounts(wallet_pb2.ListAccountsRequest(external_id="bob"), metadata=FRONTEND)
    assert [a.account_id for a in only.accounts] == [second.account_id]


async def test_unknown_account_and_roles(suite: WalletSuite) -> None:
    await expect_rpc_error(
        suite.stub.GetBalance(wallet_pb2.GetBalanceRequest(account_id="acct_nope"), metadata=FRONTEND),
        grpc.StatusCode.NOT_FOUND,
        "ACCOUNT_NOT_FOUND",
    )
    await expect_rpc_error(
        suite.stub.ListAccounts(wallet_pb2.ListAccountsRequest(), metadata=STRANGER),
        grpc.StatusCode.PERMISSION_DENIED,
        "ROLE_REQUIRED",
    )


async def test_deposit_addresses_are_fresh_signer_keys(suite: WalletSuite) -> None:
    account = await suite.account()
    first = await suite.deposit_address(account.account_id)
    second = await suite.deposit_address(account.account_id)
    assert first.address != second.address and first.key_id != second.key_id
    assert first.address.startswith(("m", "n"))
    assert first.locking_script == bytes.fromhex("76a914") + first.locking_script[3:23] + bytes.fromhex("88ac")
    listed = await suite.stub.ListDepositAddresses(
        wallet_pb2.ListDepositAddressesRequest(account_id=account.account_id), metadata=FRONTEND
    )
    assert [a.address for a in listed.deposit_addresses] == [second.address, first.address]
    retry = await suite.stub.NewDepositAddress(
        wallet_pb2.NewDepositAddressRequest(request_id="same-request", account_id=account.account_id),
        metadata=FRONTEND,
    )
    replay = await suite.stub.NewDepositAddress(
        wallet_pb2.NewDepositAddressRequest(request_id="same-request", account_id=account.account_id),
        metadata=FRONTEND,
    )
    assert replay.deposit_address == retry.deposit_address


async def test_deposit_pending_then_available_and_reconciled(suite: WalletSuite) -> None:
    account = await suite.account()
    address = await suite.deposit_address(account.account_id)
    await suite.fund(address.address, 50_000, count=2)
    pending = await eventually(lambda: suite.balance(account.account_id), lambda b: b.pending_satoshis == 100_000)
    assert pending.available_satoshis == 0
    await suite.sim.mine(1)
    credited = await eventually(lambda: suite.balance(account.account_id), lambda b: b.available_satoshis == 100_000)
    assert credited.pending_satoshis == 0 and credited.locked_satoshis == 0
    history = await suite.stub.ListTransactions(
        wallet_pb2.ListTransactionsRequest(account_id=account.account_id, view=wallet_pb2.TRANSACTION_VIEW_FULL),
        metadata=FRONTEND,
    )
    [deposit] = history.transactions
    assert deposit.direction == wallet_pb2.TRANSACTION_DIRECTION_INCOMING
    assert deposit.status == wallet_pb2.TRANSACTION_STATUS_CONFIRMED
    assert deposit.amount_satoshis == 100_000 and len(deposit.credited_outputs) == 2
    assert deposit.merkle_proof.bump and deposit.block_height > 0
    await eventually(suite.pool_available, lambda coins: len(coins) == 2)
    await suite.assert_reconciled()
