"""WalletService and WalletAdminService over gRPC: thin adapters over the domain."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any

import grpc
from proofline.publisher.v1 import publisher_pb2
from proofline.wallet.v1 import wallet_pb2, wallet_pb2_grpc

from proofline_kit.auth import current_caller
from proofline_kit.rpc.wellknown import duration_seconds, timestamp
from services.wallet.domain.accounts import Accounts
from services.wallet.domain.backup import BackupShares
from services.wallet.domain.history import TransactionReader
from services.wallet.domain.identities import Identities
from services.wallet.domain.intents import IntentForwarding
from services.wallet.domain.login import Logins
from services.wallet.domain.reconciliation import Reconciler
from services.wallet.domain.sends import Sends
from services.wallet.domain.signup import SignUps
from services.wallet.rpc import identity_mappers, mappers

Context = grpc.aio.ServicerContext[Any, Any]


class WalletServicer(wallet_pb2_grpc.WalletServiceServicer):
    """The money side, and the identity side forwarded to the publisher."""

    def __init__(
        self,
        accounts: Accounts,
        sends: Sends,
        reader: TransactionReader,
        min_confirmations: int,
        identities: Identities,
        intents: IntentForwarding,
        signups: SignUps,
        backups: BackupShares,
        logins: Logins,
    ) -> None:
        self._accounts = accounts
        self._identities = identities
        self._intents = intents
        self._sends = sends
        self._reader = reader
        self._min_confirmations = min_confirmations
        self._signups = signups
        self._backups = backups
        self._logins = logins

    async def StoreBackupShares(
        self, request: wallet_pb2.StoreBackupSharesRequest, context: Context
    ) -> wallet_pb2.StoreBackupSharesResponse:
        stored = await self._backups.store_shares(
            current_caller.get(), request.request_id, request.account_id, request.pubkey, list(request.shares)
        )
        return wallet_pb2.StoreBackupSharesResponse(stored_count=stored)

    async def BeginRecovery(
        self, request: wallet_pb2.BeginRecoveryRequest, context: Context
    ) -> wallet_pb2.BeginRecoveryResponse:
        started = await self._backups.begin_recovery(current_caller.get(), request.account_id, request.pubkey)
        return wallet_pb2.BeginRecoveryResponse(
            recovery_id=started.recovery_id,
            expire_time=timestamp(datetime.fromtimestamp(started.expires_at, UTC)),
            max_attempts=started.max_attempts,
        )

    async def CompleteRecovery(
        self, request: wallet_pb2.CompleteRecoveryRequest, context: Context
    ) -> wallet_pb2.CompleteRecoveryResponse:
        released = await self._backups.complete_recovery(current_caller.get(), request.recovery_id, request.code)
        return wallet_pb2.CompleteRecoveryResponse(
            account_id=released.account_id, pubkey=released.pubkey, shares=list(released.shares)
        )

    async def StartSignUp(
        self, request: wallet_pb2.StartSignUpRequest, context: Context
    ) -> wallet_pb2.StartSignUpResponse:
        started = await self._signups.start_sign_up(current_caller.get(), request.email)
        return wallet_pb2.StartSignUpResponse(
            signup_id=started.signup_id,
            expire_time=timestamp(datetime.fromtimestamp(started.expires_at, UTC)),
            max_attempts=started.max_attempts,
        )

    async def CompleteSignUp(
        self, request: wallet_pb2.CompleteSignUpRequest, context: Context
    ) -> wallet_pb2.CompleteSignUpResponse:
        account, created = await self._signups.complete_sign_up(
            current_caller.get(), request.signup_id, request.code, request.label
        )
        return wallet_pb2.CompleteSignUpResponse(account=mappers.account_to_proto(account), created=created)

    async def BeginLogin(
        self, request: wallet_pb2.BeginLoginRequest, context: Context
    ) -> wallet_pb2.BeginLoginResponse:
        started = await self._logins.begin(current_caller.get(), request.pubkey)
        return wallet_pb2.BeginLoginResponse(
            challenge_id=started.challenge_id,
            challenge=started.challenge,
            expire_time=timestamp(datetime.fromtimestamp(started.expires_at, UTC)),
        )

    async def CompleteLogin(
        self, request: wallet_pb2.CompleteLoginRequest, context: Context
    ) -> wallet_pb2.CompleteLoginResponse:
        session = await self._logins.complete(current_caller.get(), request.challenge_id, request.signature)
        return wallet_pb2.CompleteLoginResponse(
            session_token=session.token,
            account_id=session.account_id,
            expire_time=timestamp(datetime.fromtimestamp(session.expires_at, UTC)),
        )

    async def CreateAccount(
        self, request: wallet_pb2.CreateAccountRequest, context: Context
    ) -> wallet_pb2.CreateAccountResponse:
        account = await self._accounts.create_account(
            current_caller.get(), request.request_id, request.external_id, request.label
        )
        return wallet_pb2.CreateAccountResponse(account=mappers.account_to_proto(account))

    async def GetAccount(
        self, request: wallet_pb2.GetAccountRequest, context: Context
    ) -> wallet_pb2.GetAccountResponse:
        account = await self._accounts.get_account(current_caller.get(), request.account_id)
        return wallet_pb2.GetAccountResponse(account=mappers.account_to_proto(account))

    async def ListAccounts(
        self, request: wallet_pb2.ListAccountsRequest, context: Context
    ) -> wallet_pb2.ListAccountsResponse:
        page = await self._accounts.list_accounts(
            current_caller.get(), request.external_id, request.page_size, request.page_token
        )
        return wallet_pb2.ListAccountsResponse(
            accounts=[mappers.account_to_proto(a) for a in page.items], next_page_token=page.next_page_token
        )

    async def NewDepositAddress(
        self, request: wallet_pb2.NewDepositAddressRequest, context: Context
    ) -> wallet_pb2.NewDepositAddressResponse:
        address = await self._accounts.new_deposit_address(
            current_caller.get(), request.request_id, request.account_id, request.label
        )
        return wallet_pb2.NewDepositAddressResponse(deposit_address=mappers.address_to_proto(address))

    async def ListDepositAddresses(
        self, request: wallet_pb2.ListDepositAddressesRequest, context: Context
    ) -> wallet_pb2.ListDepositAddressesResponse:
        page = await self._accounts.list_deposit_addresses(
            current_caller.get(), request.account_id, request.page_size, request.page_token
        )
        return wallet_pb2.ListDepositAddressesResponse(
            deposit_addresses=[mappers.address_to_proto(a) for a in page.items], next_page_token=page.next_page_token
        )

    async def GetBalance(
        self, request: wallet_pb2.GetBalanceRequest, context: Context
    ) -> wallet_pb2.GetBalanceResponse:
        balance = await self._accounts.get_balance(current_caller.get(), request.account_id)
        return wallet_pb2.GetBalanceResponse(balance=mappers.balance_to_proto(balance, self._min_confirmations))

    async def EstimateFee(
        self, request: wallet_pb2.EstimateFeeRequest, context: Context
    ) -> wallet_pb2.EstimateFeeResponse:
        estimate = await self._sends.estimate_fee(
            current_caller.get(),
            request.account_id,
            request.to_address,
            request.amount_satoshis,
            mappers.fee_request(request.fee_policy),
        )
        return mappers.estimate_to_proto(estimate)

    async def Send(self, request: wallet_pb2.SendRequest, context: Context) -> wallet_pb2.SendResponse:
        tx = await self._sends.send(
            current_caller.get(),
            request.request_id,
            request.account_id,
            request.to_address,
            request.amount_satoshis,
            mappers.fee_request(request.fee_policy),
            request.memo,
            mappers.status_from_proto(request.wait_for),
            duration_seconds(request.wait_timeout, request.HasField("wait_timeout")),
            context.time_remaining(),
        )
        return wallet_pb2.SendResponse(transaction=mappers.tx_to_proto(tx))

    async def ListTransactions(
        self, request: wallet_pb2.ListTransactionsRequest, context: Context
    ) -> wallet_pb2.ListTransactionsResponse:
        page = await self._reader.list(
            current_caller.get(),
            mappers.tx_filter_from_proto(request),
            mappers.full_view(request.view),
            request.page_size,
            request.page_token,
        )
        return wallet_pb2.ListTransactionsResponse(
            transactions=[mappers.tx_to_proto(t) for t in page.items], next_page_token=page.next_page_token
        )

    async def GetTransaction(
        self, request: wallet_pb2.GetTransactionRequest, context: Context
    ) -> wallet_pb2.GetTransactionResponse:
        tx = await self._reader.get(current_caller.get(), request.transaction_id, mappers.full_view(request.view))
        return wallet_pb2.GetTransactionResponse(transaction=mappers.tx_to_proto(tx))

    async def WatchTransaction(
        self, request: wallet_pb2.WatchTransactionRequest, context: Context
    ) -> AsyncIterator[wallet_pb2.WatchTransactionResponse]:
        snapshots = self._reader.watch(
            current_caller.get(), request.transaction_id, mappers.full_view(request.view), request.until_confirmations
        )
        async with aclosing(snapshots):
            async for tx in snapshots:
                yield wallet_pb2.WatchTransactionResponse(transaction=mappers.tx_to_proto(tx))

    # --- the identity side: forwarded to the publisher -------------------------------------------

    async def RegisterIdentity(
        self, request: wallet_pb2.RegisterIdentityRequest, context: Context
    ) -> wallet_pb2.RegisterIdentityResponse:
        identity = await self._identities.register(
            current_caller.get(),
            request.request_id,
            request.account_id,
            request.pubkey,
            request.label,
            identity_mappers.intent_from_proto(request.proof) if request.HasField("proof") else None,
        )
        return wallet_pb2.RegisterIdentityResponse(identity=identity_mappers.identity_to_proto(identity))

    async def RevokeIdentity(
        self, request: wallet_pb2.RevokeIdentityRequest, context: Context
    ) -> wallet_pb2.RevokeIdentityResponse:
        identity, cancelled = await self._identities.revoke(
            current_caller.get(),
            request.request_id,
            request.account_id,
            request.pubkey,
            request.reason,
            request.cancel_queued_jobs,
        )
        return wallet_pb2.RevokeIdentityResponse(
            identity=identity_mappers.identity_to_proto(identity), cancelled_jobs=cancelled
        )

    async def ListIdentities(
        self, request: wallet_pb2.ListIdentitiesRequest, context: Context
    ) -> wallet_pb2.ListIdentitiesResponse:
        page = await self._identities.list(
            current_caller.get(),
            request.account_id,
            identity_mappers.identity_status_from_proto(request.status),
            request.page_size,
            request.page_token,
        )
        return wallet_pb2.ListIdentitiesResponse(
            identities=[identity_mappers.identity_to_proto(i) for i in page.items],
            next_page_token=page.next_page_token,
        )

    async def SubmitIntent(
        self, request: wallet_pb2.SubmitIntentRequest, context: Context
    ) -> wallet_pb2.SubmitIntentResponse:
        job, deduplicated = await self._intents.submit(
            current_caller.get(),
            request.request_id,
            request.account_id,
            identity_mappers.intent_from_proto(request.intent),
            request.wait_for,
            duration_seconds(request.wait_timeout, request.HasField("wait_timeout")),
            context.time_remaining(),
        )
        return wallet_pb2.SubmitIntentResponse(job=identity_mappers.job_to_proto(job), deduplicated=deduplicated)

    async def SubmitIntentBatch(
        self, request: wallet_pb2.SubmitIntentBatchRequest, context: Context
    ) -> wallet_pb2.SubmitIntentBatchResponse:
        results = await self._intents.submit_batch(
            current_caller.get(),
            request.request_id,
            request.account_id,
            [identity_mappers.intent_from_proto(i) for i in request.intents],
            request.wait_for,
            duration_seconds(request.wait_timeout, request.HasField("wait_timeout")),
            context.time_remaining(),
        )
        return wallet_pb2.SubmitIntentBatchResponse(results=[identity_mappers.result_to_proto(r) for r in results])

    async def GetIntentJob(
        self, request: wallet_pb2.GetIntentJobRequest, context: Context
    ) -> wallet_pb2.GetIntentJobResponse:
        job = await self._intents.get_job(
            current_caller.get(), request.account_id, request.job_id, request.view == publisher_pb2.JOB_VIEW_FULL
        )
        return wallet_pb2.GetIntentJobResponse(job=identity_mappers.job_to_proto(job))

    async def WatchIntentJob(
        self, request: wallet_pb2.WatchIntentJobRequest, context: Context
    ) -> AsyncIterator[wallet_pb2.WatchIntentJobResponse]:
        snapshots = self._intents.watch_job(
            current_caller.get(),
            request.account_id,
            request.job_id,
            request.view == publisher_pb2.JOB_VIEW_FULL,
            request.until,
        )
        async with aclosing(snapshots):
            async for job in snapshots:
                yield wallet_pb2.WatchIntentJobResponse(job=identity_mappers.job_to_proto(job))


class WalletAdminServicer(wallet_pb2_grpc.WalletAdminServiceServicer):
    def __init__(self, reconciler: Reconciler) -> None:
        self._reconciler = reconciler

    async def GetReconciliation(
        self, request: wallet_pb2.GetReconciliationRequest, context: Context
    ) -> wallet_pb2.GetReconciliationResponse:
        return mappers.reconciliation_to_proto(await self._reconciler.report(current_caller.get()))
