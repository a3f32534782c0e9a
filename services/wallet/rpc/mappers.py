"""Translation between wallet protos and domain objects."""

from __future__ import annotations

from typing import cast

from proofline.common.v1 import common_pb2
from proofline.wallet.v1 import wallet_pb2

from proofline_kit.rpc.wellknown import datetime_of, timestamp
from services.wallet.domain.models import (
    Account,
    Balance,
    DepositAddress,
    Direction,
    Network,
    TxFilter,
    TxStatus,
    WalletTx,
)
from services.wallet.domain.reconciliation import Reconciliation
from services.wallet.domain.sends import Estimate, FeeRequest

ERROR_DOMAIN = "proofline.wallet"

_STATUSES = {
    wallet_pb2.TRANSACTION_STATUS_PENDING: TxStatus.PENDING,
    wallet_pb2.TRANSACTION_STATUS_SENDING: TxStatus.SENDING,
    wallet_pb2.TRANSACTION_STATUS_UNCONFIRMED: TxStatus.UNCONFIRMED,
    wallet_pb2.TRANSACTION_STATUS_CONFIRMED: TxStatus.CONFIRMED,
    wallet_pb2.TRANSACTION_STATUS_REORGING: TxStatus.REORGING,
    wallet_pb2.TRANSACTION_STATUS_FAILED: TxStatus.FAILED,
}
_STATUSES_OUT = {v: k for k, v in _STATUSES.items()}
_DIRECTIONS = {
    wallet_pb2.TRANSACTION_DIRECTION_INCOMING: Direction.INCOMING,
    wallet_pb2.TRANSACTION_DIRECTION_OUTGOING: Direction.OUTGOING,
}
_DIRECTIONS_OUT = {v: k for k, v in _DIRECTIONS.items()}
_NETWORKS_OUT = {
    Network.MAINNET: common_pb2.NETWORK_MAINNET,
    Network.TESTNET: common_pb2.NETWORK_TESTNET,
    Network.REGTEST: common_pb2.NETWORK_REGTEST,
}


def status_from_proto(value: int) -> TxStatus | None:
    """None for UNSPECIFIED (the contract rules refuse unknown values before this)."""
    return _STATUSES.get(cast(wallet_pb2.TransactionStatus.ValueType, value))


def full_view(value: int) -> bool:
    return value == wallet_pb2.TRANSACTION_VIEW_FULL


def fee_request(policy: wallet_pb2.FeePolicy) -> FeeRequest:
    return FeeRequest(policy.fee_rate_satoshis_per_kb, policy.max_fee_satoshis, policy.subtract_fee_from_amount)


def account_to_proto(account: Account) -> wallet_pb2.Account:
    return wallet_pb2.Account(
        account_id=account.account_id,
        external_id=account.external_id,
        label=account.label,
        create_time=timestamp(account.create_time),
    )


def address_to_proto(address: DepositAddress) -> wallet_pb2.DepositAddress:
    return wallet_pb2.DepositAddress(
        address=address.address,
        account_id=address.account_id,
        network=_NETWORKS_OUT[address.network],
        locking_script=address.locking_script,
        key_id=address.key_id,
        label=address.label,
        received_satoshis=address.received_satoshis,
        create_time=timestamp(address.create_time),
    )


def balance_to_proto(balance: Balance, min_confirmations: int) -> wallet_pb2.Balance:
    return wallet_pb2.Balance(
        account_id=balance.account_id,
        available_satoshis=balance.available,
        locked_satoshis=balance.locked,
        pending_satoshis=balance.pending,
        min_confirmations=min_confirmations,
        as_of_time=timestamp(balance.as_of),
    )


def estimate_to_proto(estimate: Estimate) -> wallet_pb2.EstimateFeeResponse:
    return wallet_pb2.EstimateFeeResponse(
        fee_satoshis=estimate.fee_satoshis,
        fee_rate_satoshis_per_kb=estimate.fee_rate_satoshis_per_kb,
        size_bytes=estimate.size_bytes,
        input_count=estimate.input_count,
        has_change=estimate.has_change,
        recipient_satoshis=estimate.recipient_satoshis,
        total_debit_satoshis=estimate.total_debit_satoshis,
        available_satoshis=estimate.available_satoshis,
        sufficient_funds=estimate.sufficient_funds,
    )


def tx_to_proto(tx: WalletTx) -> wallet_pb2.Transaction:
    message = wallet_pb2.Transaction(
        transaction_id=tx.transaction_id,
        account_id=tx.account_id,
        direction=_DIRECTIONS_OUT[tx.direction],
        status=_STATUSES_OUT[tx.status],
        txid=tx.txid,
        amount_satoshis=tx.amount_satoshis,
        fee_satoshis=tx.fee_satoshis,
        fee_rate_satoshis_per_kb=tx.fee_rate_satoshis_per_kb,
        address=tx.address,
        credited_outputs=[common_pb2.Outpoint(txid=o.txid, vout=o.vout) for o in tx.credited_outputs],
        memo=tx.memo,
        request_id=tx.request_id,
        confirmations=tx.confirmations,
        required_confirmations=tx.required_confirmations,
        block_hash=tx.block_hash,
        block_height=tx.block_height,
        raw_tx=tx.raw_tx,
        failure_reason=tx.failure_reason,
        failure_detail=tx.failure_detail,
        broadcast_attempts=tx.broadcast_attempts,
        create_time=timestamp(tx.create_time),
        update_time=timestamp(tx.update_time),
        accept_time=timestamp(tx.accept_time),
        confirm_time=timestamp(tx.confirm_time),
    )
    if tx.merkle_path:
        message.merkle_proof.CopyFrom(
            common_pb2.MerkleProof(
                bump=bytes.fromhex(tx.merkle_path), block_hash=tx.block_hash, block_height=tx.block_height
            )
        )
    return message


def tx_filter_from_proto(request: wallet_pb2.ListTransactionsRequest) -> TxFilter:
    statuses = tuple(s for s in (status_from_proto(v) for v in request.statuses) if s is not None)
    return TxFilter(
        account_id=request.account_id,
        direction=_DIRECTIONS.get(request.direction),
        statuses=statuses,
        txid=request.txid,
        start_time=datetime_of(request.start_time, request.HasField("start_time")),
        end_time=datetime_of(request.end_time, request.HasField("end_time")),
    )


def reconciliation_to_proto(report: Reconciliation) -> wallet_pb2.GetReconciliationResponse:
    return wallet_pb2.GetReconciliationResponse(
        available_satoshis=report.available,
        locked_satoshis=report.locked,
        pending_satoshis=report.pending,
        deficit_satoshis=report.deficit,
        fees_paid_satoshis=report.fees_paid,
        pool_satoshis=report.pool,
        in_flight_satoshis=report.in_flight,
        written_off_satoshis=report.written_off,
        difference_satoshis=report.difference,
        balanced=report.balanced,
        differences=[
            wallet_pb2.ReconciliationDifference(
                kind=d.kind,
                outpoint=common_pb2.Outpoint(txid=d.outpoint.txid, vout=d.outpoint.vout) if d.outpoint else None,
                account_id=d.account_id,
                ledger_satoshis=d.ledger_satoshis,
                observed_satoshis=d.observed_satoshis,
                detail=d.detail,
            )
            for d in report.differences
        ],
        differences_omitted=report.omitted,
        as_of_time=timestamp(report.as_of),
    )
