"""Column lists of the publisher's tables and their row -> model conversions."""

from __future__ import annotations

import asyncpg

from proofline_kit.intents.models import SignedIntent
from services.publisher.domain.models import (
    BuiltTx,
    Identity,
    IdentityStatus,
    InFlightJob,
    Job,
    JobStatus,
)

IDENTITY_COLUMNS = "seq, pubkey, label, owner_ref, status, registered_by, created_at, revoked_at, revoke_reason"
JOB_BASIC = (
    "id, job_id, intent_digest, identity_pubkey, nonce, status, txid, fee_satoshis, block_hash, block_height,"
    " merkle_bump, error_reason, error_detail, attempts, batch_id, intent_expires_at, created_at, updated_at,"
    " signed_at, sent_at, confirmed_at"
)
_JOB_FULL = JOB_BASIC + ", raw_tx, signed_payload, signature"


def job_columns(full: bool, alias: str = "") -> str:
    names = (_JOB_FULL if full else JOB_BASIC).split(", ")
    return ", ".join(f"{alias}.{name.strip()}" if alias else name.strip() for name in names)


def identity_from_row(row: asyncpg.Record) -> Identity:
    return Identity(
        pubkey=bytes(row["pubkey"]),
        label=row["label"],
        owner_ref=row["owner_ref"],
        status=IdentityStatus(row["status"]),
        registered_by=row["registered_by"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        revoke_reason=row["revoke_reason"],
    )


def job_from_row(row: asyncpg.Record) -> Job:
    full = "raw_tx" in row
    return Job(
        job_id=row["job_id"],
        intent_digest=bytes(row["intent_digest"]),
        identity_pubkey=bytes(row["identity_pubkey"]),
        nonce=row["nonce"],
        status=JobStatus(row["status"]),
        txid=row["txid"] or "",
        fee_satoshis=int(row["fee_satoshis"]),
        block_hash=row["block_hash"] or "",
        block_height=int(row["block_height"] or 0),
        merkle_bump=bytes(row["merkle_bump"] or b""),
        error_reason=row["error_reason"],
        error_detail=row["error_detail"],
        attempts=int(row["attempts"]),
        batch_id=row["batch_id"] or "",
        intent_expires_at=row["intent_expires_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        signed_at=row["signed_at"],
        sent_at=row["sent_at"],
        confirmed_at=row["confirmed_at"],
        raw_tx=bytes(row["raw_tx"] or b"") if full else b"",
        intent=(
            SignedIntent(bytes(row["signed_payload"]), bytes(row["signature"]), bytes(row["identity_pubkey"]))
            if full
            else None
        ),
    )


IN_FLIGHT = (
    "job_id, status, lease_token, txid, raw_tx, fee_satoshis, funding_txid, funding_vout, funding_satoshis,"
    " funding_script, change_key_id, utxo_lease_id, utxo_fencing_token, attempts, builds, error_reason,"
    " competing_txids, spend_committed, block_hash, block_height"
)


def in_flight_from_row(row: asyncpg.Record) -> InFlightJob:
    return InFlightJob(
        job_id=row["job_id"],
        status=JobStatus(row["status"]),
        lease_token=row["lease_token"],
        tx=BuiltTx(
            txid=row["txid"],
            raw_tx=bytes(row["raw_tx"]),
            fee_satoshis=int(row["fee_satoshis"]),
            funding_txid=row["funding_txid"] or "",
            funding_vout=int(row["funding_vout"] or 0),
            funding_satoshis=int(row["funding_satoshis"] or 0),
            funding_script=bytes(row["funding_script"] or b""),
            change_key_id=row["change_key_id"],
            utxo_lease_id=row["utxo_lease_id"] or "",
            utxo_fencing_token=int(row["utxo_fencing_token"] or 0),
        ),
        attempts=int(row["attempts"]),
        builds=int(row["builds"]),
        error_reason=row["error_reason"],
        competing_txids=tuple(row["competing_txids"]),
        spend_committed=bool(row["spend_committed"]),
        block_hash=row["block_hash"] or "",
        block_height=int(row["block_height"] or 0),
    )
