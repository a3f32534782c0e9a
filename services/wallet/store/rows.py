"""Column lists of the wallet's tables and their row -> model conversions."""

from __future__ import annotations

import asyncpg

from proofline_kit.wire import Outpoint
from services.wallet.domain.models import Account, DepositAddress, Direction, Network, TxStatus, WalletTx

ACCOUNT_COLUMNS = "seq, account_id, external_id, label, created_at"
ADDRESS_COLUMNS = "seq, account_id, address, locking_script, key_id, network, label, received_satoshis, created_at"
_TX_BASIC = (
    "t.transaction_id, t.account_id, t.direction, t.status, t.txid, t.amount_satoshis, t.fee_satoshis,"
    " t.fee_rate_satoshis_per_kb, t.address, t.memo, t.request_id, t.required_confirmations, t.block_hash,"
    " t.block_height, t.failure_reason, t.failure_detail, t.broadcast_attempts, t.created_at, t.updated_at,"
    " t.accepted_at, t.confirmed_at,"
    " (SELECT coalesce(array_agg(d.txid || ':' || d.vout ORDER BY d.vout), '{}') FROM deposit_outputs d"
    "  WHERE d.transaction_id = t.transaction_id) AS credited,"
    " (SELECT max(height) FROM scanned_blocks) AS tip"
)
_TX_FULL = _TX_BASIC + ", t.merkle_path, t.raw_tx"


def tx_columns(full: bool) -> str:
    return _TX_FULL if full else _TX_BASIC


def account_from_row(row: asyncpg.Record) -> Account:
    return Account(row["account_id"], row["external_id"], row["label"], row["created_at"])


def address_from_row(row: asyncpg.Record) -> DepositAddress:
    return DepositAddress(
        address=row["address"],
        account_id=row["account_id"],
        network=Network(row["network"]),
        locking_script=bytes(row["locking_script"]),
        key_id=row["key_id"],
        label=row["label"],
        received_satoshis=int(row["received_satoshis"]),
        create_time=row["created_at"],
    )


def _outpoint(text: str) -> Outpoint:
    txid, _, vout = text.partition(":")
    return Outpoint(txid, int(vout))


def confirmations(block_height: int | None, tip: int | None) -> int:
    if block_height is None or tip is None or tip < block_height:
        return 0
    return int(tip - block_height + 1)


def tx_from_row(row: asyncpg.Record) -> WalletTx:
    full = "raw_tx" in row
    return WalletTx(
        transaction_id=row["transaction_id"],
        account_id=row["account_id"],
        direction=Direction(row["direction"]),
        status=TxStatus(row["status"]),
        txid=row["txid"] or "",
        amount_satoshis=int(row["amount_satoshis"]),
        fee_satoshis=int(row["fee_satoshis"]),
        fee_rate_satoshis_per_kb=int(row["fee_rate_satoshis_per_kb"]),
        address=row["address"],
        credited_outputs=tuple(_outpoint(c) for c in row["credited"]),
        memo=row["memo"],
        request_id=row["request_id"],
        confirmations=confirmations(row["block_height"], row["tip"]) if row["block_hash"] else 0,
        required_confirmations=int(row["required_confirmations"]),
        block_hash=row["block_hash"] or "",
        block_height=int(row["block_height"] or 0),
        merkle_path=(row["merkle_path"] or "") if full else "",
        raw_tx=bytes(row["raw_tx"] or b"") if full else b"",
        failure_reason=row["failure_reason"],
        failure_detail=row["failure_detail"],
        broadcast_attempts=int(row["broadcast_attempts"]),
        create_time=row["created_at"],
        update_time=row["updated_at"],
        accept_time=row["accepted_at"],
        confirm_time=row["confirmed_at"],
    )
