"""All SQL of the publisher, and the LISTEN side of job change notifications."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

import asyncpg

from proofline_kit import idempotency
from proofline_kit.database import DbConnection
from proofline_kit.logging import get_logger
from services.publisher.domain.models import (
    Actor,
    Identity,
    IdentityStatus,
    Job,
    JobEvent,
    JobFilter,
    JobStatus,
    NewJob,
    SignedIntent,
)

MIGRATIONS = Path(__file__).parent / "migrations"

_IDENTITY_COLUMNS = "seq, pubkey, label, owner_ref, status, registered_by, created_at, revoked_at, revoke_reason"
_JOB_BASIC = (
    "id, job_id, intent_digest, identity_pubkey, nonce, status, txid, fee_satoshis, block_hash, block_height,"
    " merkle_bump, error_reason, error_detail, attempts, batch_id, intent_expires_at, created_at, updated_at,"
    " signed_at, sent_at, confirmed_at"
)
_JOB_FULL = _JOB_BASIC + ", raw_tx, signed_payload, signature"


def _columns(full: bool, alias: str = "") -> str:
    names = (_JOB_FULL if full else _JOB_BASIC).split(", ")
    return ", ".join(f"{alias}.{name.strip()}" if alias else name.strip() for name in names)


def job_changes_channel(schema: str) -> str:
    """The NOTIFY channel of the migration's jobs_notify trigger."""
    return f"{schema}_job_changes"


def _identity_from_row(row: asyncpg.Record) -> Identity:
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


def _job_from_row(row: asyncpg.Record) -> Job:
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


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job a worker holds: fencing token and what it needs to build the transaction."""

    job: Job
    lease_token: int
    record: bytes
    # Transactions built for the job so far.
    builds: int = 0


@dataclass(frozen=True, slots=True)
class JobUpdate:
    """Fields a status change may set besides the status (None = unchanged)."""

    txid: str | None = None
    raw_tx: bytes | None = None
    fee_satoshis: int | None = None
    block_hash: str | None = None
    block_height: int | None = None
    merkle_bump: bytes | None = None
    error_reason: str | None = None
    error_detail: str | None = None
    funding_txid: str | None = None
    funding_vout: int | None = None
    utxo_lease_id: str | None = None
    batch_id: str | None = None
    attempts_increment: int = 0
    next_attempt_delay_s: float | None = None


@dataclass(frozen=True, slots=True)
class BuiltTx:
    """A job's signed transaction and what pays for it (stored before the first broadcast)."""

    txid: str
    raw_tx: bytes
    fee_satoshis: int
    funding_txid: str
    funding_vout: int
    funding_satoshis: int
    funding_script: bytes
    change_key_id: str
    utxo_lease_id: str
    utxo_fencing_token: int


@dataclass(frozen=True, slots=True)
class BlockProof:
    block_hash: str
    block_height: int
    merkle_bump: bytes


class LeaseChange(Enum):
    KEEP = "keep"  # the worker goes on holding the job
    CLEAR = "clear"  # nobody holds it (required for QUEUED, SENT, CONFIRMED, FAILED)
    CLAIM = "claim"  # a new lease (and fencing token) for the caller of apply_moves


@dataclass(frozen=True, slots=True)
class JobMove:
    """One guarded change of a job for `apply_moves` (the target may equal the source: an audited
    change without a status move). None means "unchanged"."""

    job_id: str
    source: JobStatus
    target: JobStatus
    reason: str
    # Guard: applies only while the job still carries this fencing token.
    lease_token: int | None = None
    lease: LeaseChange = LeaseChange.CLEAR
    error_reason: str | None = None
    error_detail: str | None = None
    attempts_increment: int = 0
    # next_attempt_at = now() + delay.
    delay_s: float | None = None
    tx: BuiltTx | None = None
    # Forget the current transaction (it is dead; a new one will be built).
    clear_tx: bool = False
    block: BlockProof | None = None
    clear_block: bool = False
    spend_committed: bool | None = None
    competing_txids: tuple[str, ...] | None = None
    batch_id: str | None = None


@dataclass(frozen=True, slots=True)
class InFlightJob:
    """A job that has a signed transaction (SIGNED, SENT or CONFIRMED), as the pipeline needs it."""

    job_id: str
    status: JobStatus
    lease_token: int | None
    tx: BuiltTx
    attempts: int
    builds: int
    error_reason: str
    competing_txids: tuple[str, ...]
    spend_committed: bool
    block_hash: str
    block_height: int


_IN_FLIGHT = (
    "job_id, status, lease_token, txid, raw_tx, fee_satoshis, funding_txid, funding_vout, funding_satoshis,"
    " funding_script, change_key_id, utxo_lease_id, utxo_fencing_token, attempts, builds, error_reason,"
    " competing_txids, spend_committed, block_hash, block_height"
)


def _in_flight(row: asyncpg.Record) -> InFlightJob:
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


# Targets that leave nobody holding the job (the CHECKs and claim queries rely on it).
_UNLEASED = (JobStatus.QUEUED, JobStatus.SENT, JobStatus.CONFIRMED, JobStatus.FAILED)

_APPLY_MOVES = """
WITH m AS (
    SELECT * FROM unnest(
        $1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::int[],
        $9::float8[], $10::text[], $11::text[], $12::bytea[], $13::bigint[], $14::text[], $15::int[],
        $16::bigint[], $17::bytea[], $18::text[], $19::text[], $20::bigint[], $21::bool[], $22::text[],
        $23::int[], $24::bytea[], $25::bool[], $26::bool[], $27::text[], $28::text[]
    ) AS t(job_id, source, target, guard, reason, error_reason, error_detail, attempts_inc, delay_s, lease,
           txid, raw_tx, fee, funding_txid, funding_vout, funding_satoshis, funding_script, change_key_id,
           utxo_lease_id, utxo_token, clear_tx, block_hash, block_height, merkle_bump, clear_block,
           spend_committed, competing, batch_id)
), moved AS (
    UPDATE jobs j SET
        status = m.target,
        lease_owner = CASE m.lease WHEN 'claim' THEN $29 WHEN 'keep' THEN j.lease_owner END,
        lease_token = CASE m.lease WHEN 'claim' THEN nextval('job_lease_tokens') WHEN 'keep' THEN j.lease_token END,
        lease_expires_at = CASE m.lease WHEN 'claim' THEN now() + make_interval(secs => $30)
                                        WHEN 'keep' THEN j.lease_expires_at END,
        error_reason = coalesce(m.error_reason, j.error_reason),
        error_detail = coalesce(m.error_detail, j.error_detail),
        attempts = j.attempts + m.attempts_inc,
        next_attempt_at = CASE WHEN m.delay_s IS NULL THEN j.next_attempt_at
                               ELSE now() + make_interval(secs => m.delay_s) END,
        txid = CASE WHEN m.txid IS NOT NULL THEN m.txid WHEN m.clear_tx THEN NULL ELSE j.txid END,
        raw_tx = CASE WHEN m.txid IS NOT NULL THEN m.raw_tx WHEN m.clear_tx THEN NULL ELSE j.raw_tx END,
        fee_satoshis = CASE WHEN m.txid IS NOT NULL THEN m.fee WHEN m.clear_tx THEN 0 ELSE j.fee_satoshis END,
        funding_txid = CASE WHEN m.txid IS NOT NULL THEN m.funding_txid WHEN m.clear_tx THEN NULL
                            ELSE j.funding_txid END,
        funding_vout = CASE WHEN m.txid IS NOT NULL THEN m.funding_vout WHEN m.clear_tx THEN NULL
                            ELSE j.funding_vout END,
        funding_satoshis = CASE WHEN m.txid IS NOT NULL THEN m.funding_satoshis WHEN m.clear_tx THEN NULL
                                ELSE j.funding_satoshis END,
        funding_script = CASE WHEN m.txid IS NOT NULL THEN m.funding_script WHEN m.clear_tx THEN NULL
                              ELSE j.funding_script END,
        change_key_id = CASE WHEN m.txid IS NOT NULL THEN m.change_key_id WHEN m.clear_tx THEN ''
                             ELSE j.change_key_id END,
        utxo_lease_id = CASE WHEN m.txid IS NOT NULL THEN m.utxo_lease_id WHEN m.clear_tx THEN NULL
                             ELSE j.utxo_lease_id END,
        utxo_fencing_token = CASE WHEN m.txid IS NOT NULL THEN m.utxo_token WHEN m.clear_tx THEN NULL
                                  ELSE j.utxo_fencing_token END,
        builds = j.builds + (m.txid IS NOT NULL)::int,
        signed_at = CASE WHEN m.txid IS NOT NULL THEN now() WHEN m.clear_tx THEN NULL ELSE j.signed_at END,
        sent_at = CASE WHEN m.target = 'sent' AND m.source NOT IN ('sent', 'confirmed') THEN now()
                       WHEN m.clear_tx THEN NULL ELSE j.sent_at END,
        confirmed_at = CASE WHEN m.target = 'confirmed' THEN coalesce(j.confirmed_at, now()) END,
        block_hash = CASE WHEN m.block_hash IS NOT NULL THEN m.block_hash
                          WHEN m.clear_block OR m.clear_tx THEN NULL ELSE j.block_hash END,
        block_height = CASE WHEN m.block_hash IS NOT NULL THEN m.block_height
                            WHEN m.clear_block OR m.clear_tx THEN NULL ELSE j.block_height END,
        merkle_bump = CASE WHEN m.block_hash IS NOT NULL THEN m.merkle_bump
                           WHEN m.clear_block OR m.clear_tx THEN NULL ELSE j.merkle_bump END,
        spend_committed = CASE WHEN m.txid IS NOT NULL OR m.clear_tx THEN coalesce(m.spend_committed, false)
                               ELSE coalesce(m.spend_committed, j.spend_committed) END,
        competing_txids = CASE WHEN m.competing IS NOT NULL THEN string_to_array(m.competing, ',')
                               WHEN m.txid IS NOT NULL OR m.clear_tx THEN '{}'::text[]
                               ELSE j.competing_txids END,
        batch_id = coalesce(m.batch_id, j.batch_id)
    FROM m
    WHERE j.job_id = m.job_id AND j.status = m.source AND (m.guard IS NULL OR j.lease_token = m.guard)
    RETURNING j.id, j.job_id, j.status, j.txid, m.source, m.reason, m.error_detail
), audit AS (
    INSERT INTO job_events (job_id, from_status, to_status, txid, actor, reason, detail, request_id)
    SELECT id, source, status, coalesce(txid, ''), $31, reason, coalesce(error_detail, ''), $32 FROM moved
)
SELECT job_id FROM moved
"""


def _move_arrays(moves: Sequence[JobMove]) -> list[list[Any]]:
    def of(pick: Any) -> list[Any]:
        return [pick(m) for m in moves]

    def tx_field(name: str) -> list[Any]:
        return [getattr(m.tx, name) if m.tx is not None else None for m in moves]

    def block_field(name: str) -> list[Any]:
        return [getattr(m.block, name) if m.block is not None else None for m in moves]

    return [
        of(lambda m: m.job_id),
        of(lambda m: m.source.value),
        of(lambda m: m.target.value),
        of(lambda m: m.lease_token),
        of(lambda m: m.reason),
        of(lambda m: m.error_reason),
        of(lambda m: None if m.error_detail is None else m.error_detail[:4096]),
        of(lambda m: m.attempts_increment),
        of(lambda m: m.delay_s),
        of(lambda m: m.lease.value),
        tx_field("txid"),
        tx_field("raw_tx"),
        tx_field("fee_satoshis"),
        tx_field("funding_txid"),
        tx_field("funding_vout"),
        tx_field("funding_satoshis"),
        tx_field("funding_script"),
        tx_field("change_key_id"),
        tx_field("utxo_lease_id"),
        tx_field("utxo_fencing_token"),
        of(lambda m: m.clear_tx),
        block_field("block_hash"),
        block_field("block_height"),
        block_field("merkle_bump"),
        of(lambda m: m.clear_block),
        of(lambda m: m.spend_committed),
        of(lambda m: None if m.competing_txids is None else ",".join(m.competing_txids)),
        of(lambda m: m.batch_id),
    ]


_UPDATABLE = (
    "txid",
    "raw_tx",
    "fee_satoshis",
    "block_hash",
    "block_height",
    "merkle_bump",
    "error_reason",
    "error_detail",
    "funding_txid",
    "funding_vout",
    "utxo_lease_id",
    "batch_id",
)


class PublisherUnitOfWork:
    """One database transaction of the publisher."""

    def __init__(self, conn: DbConnection) -> None:
        self._conn = conn

    # --- idempotency -----------------------------------------------------------------------------

    async def find_answer(self, caller_id: str, method: str, request_id: str, fingerprint: bytes) -> bytes | None:
        return await idempotency.find_answer(self._conn, caller_id, method, request_id, fingerprint)

    async def record_answer(
        self, caller_id: str, method: str, request_id: str, fingerprint: bytes, answer: bytes
    ) -> None:
        await idempotency.record_answer(self._conn, caller_id, method, request_id, fingerprint, answer)

    # --- identities ------------------------------------------------------------------------------

    async def insert_identity(self, pubkey: bytes, label: str, owner_ref: str, actor: Actor) -> Identity | None:
        row = await self._conn.fetchrow(
            f"""WITH inserted AS (
                    INSERT INTO identities (pubkey, label, owner_ref, registered_by)
                    VALUES ($1, $2, $3, $4)
                    ON CONFLICT (pubkey) DO NOTHING
                    RETURNING {_IDENTITY_COLUMNS}
                ), audit AS (
                    INSERT INTO identity_events (pubkey, action, actor, request_id)
                    SELECT pubkey, 'registered', $4, $5 FROM inserted
                )
                SELECT {_IDENTITY_COLUMNS} FROM inserted""",
            pubkey,
            label,
            owner_ref,
            actor.caller_id,
            actor.request_id,
        )
        return _identity_from_row(row) if row else None

    async def identity(self, pubkey: bytes, *, for_update: bool = False) -> Identity | None:
        lock = " FOR UPDATE" if for_update else ""
        row = await self._conn.fetchrow(f"SELECT {_IDENTITY_COLUMNS} FROM identities WHERE pubkey = $1{lock}", pubkey)
        return _identity_from_row(row) if row else None

    async def identity_statuses(self, pubkeys: Iterable[bytes]) -> dict[bytes, IdentityStatus]:
        rows = await self._conn.fetch(
            "SELECT pubkey, status FROM identities WHERE pubkey = ANY($1::bytea[])", list(set(pubkeys))
        )
        return {bytes(row["pubkey"]): IdentityStatus(row["status"]) for row in rows}

    async def revoke_identity(self, pubkey: bytes, reason: str, actor: Actor) -> Identity:
        row = await self._conn.fetchrow(
            f"""UPDATE identities SET status = 'revoked', revoked_at = now(), revoked_by = $2, revoke_reason = $3
                WHERE pubkey = $1 AND status = 'active'
                RETURNING {_IDENTITY_COLUMNS}""",
            pubkey,
            actor.caller_id,
            reason,
        )
        assert row is not None, "revoke_identity needs an active identity locked by the caller"
        return _identity_from_row(row)

    async def append_identity_event(
        self, pubkey: bytes, action: str, actor: Actor, reason: str, cancelled_jobs: int
    ) -> None:
        await self._conn.execute(
            """INSERT INTO identity_events (pubkey, action, actor, request_id, reason, cancelled_jobs)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            pubkey,
            action,
            actor.caller_id,
            actor.request_id,
            reason,
            cancelled_jobs,
        )

    async def cancel_queued_jobs(self, pubkey: bytes, detail: str, actor: Actor) -> int:
        """QUEUED jobs of the key -> FAILED (IDENTITY_REVOKED). Jobs a worker holds are skipped by
        the status guard: a claim that commits first wins."""
        count = await self._conn.fetchval(
            """WITH moved AS (
                   UPDATE jobs SET status = 'failed', error_reason = 'IDENTITY_REVOKED', error_detail = $2
                   WHERE identity_pubkey = $1 AND status = 'queued'
                   RETURNING id
               ), audit AS (
                   INSERT INTO job_events (job_id, from_status, to_status, actor, reason, detail, request_id)
                   SELECT id, 'queued', 'failed', $3, 'IDENTITY_REVOKED', $2, $4 FROM moved
               )
               SELECT count(*) FROM moved""",
            pubkey,
            detail,
            actor.caller_id,
            actor.request_id,
        )
        return int(count)

    async def list_identities(
        self, status: IdentityStatus | None, owner_ref: str, after_seq: int, limit: int
    ) -> list[tuple[int, Identity]]:
        rows = await self._conn.fetch(
            f"""SELECT {_IDENTITY_COLUMNS} FROM identities
                WHERE seq > $1 AND ($2::text IS NULL OR status = $2) AND ($3 = '' OR owner_ref = $3)
                ORDER BY seq LIMIT $4""",
            after_seq,
            status.value if status else None,
            owner_ref,
            limit,
        )
        return [(int(row["seq"]), _identity_from_row(row)) for row in rows]

    # --- intake ----------------------------------------------------------------------------------

    async def jobs_by_intent(self, keys: Sequence[tuple[bytes, bytes]], *, full: bool = False) -> dict[bytes, Job]:
        """Existing jobs by (pubkey, intent digest), keyed by pubkey + digest."""
        if not keys:
            return {}
        rows = await self._conn.fetch(
            f"""SELECT {_columns(full, "j")} FROM unnest($1::bytea[], $2::bytea[]) AS k(pubkey, digest)
                JOIN jobs j ON j.identity_pubkey = k.pubkey AND j.intent_digest = k.digest""",
            [k[0] for k in keys],
            [k[1] for k in keys],
        )
        return {bytes(row["identity_pubkey"]) + bytes(row["intent_digest"]): _job_from_row(row) for row in rows}

    async def digests_by_nonce(self, keys: Sequence[tuple[bytes, str]]) -> dict[tuple[bytes, str], bytes]:
        if not keys:
            return {}
        rows = await self._conn.fetch(
            """SELECT j.identity_pubkey, j.nonce, j.intent_digest
               FROM unnest($1::bytea[], $2::text[]) AS k(pubkey, nonce)
               JOIN jobs j ON j.identity_pubkey = k.pubkey AND j.nonce = k.nonce""",
            [k[0] for k in keys],
            [k[1] for k in keys],
        )
        return {(bytes(row["identity_pubkey"]), row["nonce"]): bytes(row["intent_digest"]) for row in rows}

    async def insert_jobs(self, jobs: Sequence[NewJob], actor: Actor) -> dict[str, Job]:
        """Queue the jobs whose identity is still active and whose intent and nonce are new, with
        their creation audit rows. Returns the inserted jobs by job_id; the others were skipped."""
        if not jobs:
            return {}
        rows = await self._conn.fetch(
            f"""WITH input AS (
                    SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::text[], $5::bytea[], $6::bytea[],
                                         $7::bytea[], $8::bigint[], $9::bigint[])
                        AS t(job_id, pubkey, digest, nonce, payload, signature, record, iat, exp)
                ), active AS (
                    -- FOR SHARE: a concurrent revocation either commits first (and the key is not
                    -- active here) or waits for this insert, and then sees its jobs.
                    SELECT pubkey FROM identities
                    WHERE pubkey IN (SELECT pubkey FROM input) AND status = 'active'
                    FOR SHARE
                ), inserted AS (
                    INSERT INTO jobs (job_id, identity_pubkey, intent_digest, nonce, signed_payload, signature,
                                      record, intent_issued_at, intent_expires_at)
                    SELECT i.job_id, i.pubkey, i.digest, i.nonce, i.payload, i.signature, i.record,
                           to_timestamp(i.iat), to_timestamp(i.exp)
                    FROM input i JOIN active a ON a.pubkey = i.pubkey
                    ON CONFLICT DO NOTHING
                    RETURNING {_JOB_BASIC}
                ), audit AS (
                    INSERT INTO job_events (job_id, from_status, to_status, actor, reason, request_id)
                    SELECT id, '', 'queued', $10, 'ACCEPTED', $11 FROM inserted
                )
                SELECT {_JOB_BASIC} FROM inserted""",
            [j.job_id for j in jobs],
            [j.intent.pubkey for j in jobs],
            [j.digest for j in jobs],
            [j.envelope.nonce for j in jobs],
            [j.intent.signed_payload for j in jobs],
            [j.intent.signature for j in jobs],
            [j.envelope.record for j in jobs],
            [j.envelope.issued_at for j in jobs],
            [j.envelope.expires_at for j in jobs],
            actor.caller_id,
            actor.request_id,
        )
        return {row["job_id"]: _job_from_row(row) for row in rows}

    async def count_queued(self) -> int:
        return int(await self._conn.fetchval("SELECT count(*) FROM jobs WHERE status = 'queued'"))

    # --- reads -----------------------------------------------------------------------------------

    async def jobs(self, job_ids: Sequence[str], *, full: bool = False) -> dict[str, Job]:
        rows = await self._conn.fetch(
            f"SELECT {_columns(full)} FROM jobs WHERE job_id = ANY($1::text[])", list(set(job_ids))
        )
        return {row["job_id"]: _job_from_row(row) for row in rows}

    async def list_jobs(
        self, where: JobFilter, after: tuple[datetime, str] | None, limit: int, *, full: bool = False
    ) -> list[Job]:
        clauses: list[str] = []
        args: list[Any] = []

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if where.statuses:
            clauses.append(f"status = ANY({arg([s.value for s in where.statuses])}::text[])")
        if where.identity_pubkey:
            clauses.append(f"identity_pubkey = {arg(where.identity_pubkey)}")
        if where.start_time is not None:
            clauses.append(f"created_at >= {arg(where.start_time)}")
        if where.end_time is not None:
            clauses.append(f"created_at < {arg(where.end_time)}")
        if where.txid:
            clauses.append(f"txid = {arg(where.txid)}")
        if where.batch_id:
            clauses.append(f"batch_id = {arg(where.batch_id)}")
        if after is not None:
            clauses.append(f"(created_at, job_id) < ({arg(after[0])}, {arg(after[1])})")
        condition = " AND ".join(clauses) or "true"
        rows = await self._conn.fetch(
            f"""SELECT {_columns(full)} FROM jobs WHERE {condition}
                ORDER BY created_at DESC, job_id DESC LIMIT {arg(limit)}""",
            *args,
        )
        return [_job_from_row(row) for row in rows]

    async def job_events(self, job_id: str) -> list[JobEvent]:
        rows = await self._conn.fetch(
            """SELECT e.at, e.from_status, e.to_status, e.txid, e.actor, e.reason, e.detail, e.request_id
               FROM job_events e JOIN jobs j ON j.id = e.job_id WHERE j.job_id = $1 ORDER BY e.id""",
            job_id,
        )
        return [
            JobEvent(
                r["at"],
                r["from_status"],
                r["to_status"],
                r["txid"],
                r["actor"],
                r["reason"],
                r["detail"],
                r["request_id"],
            )
            for r in rows
        ]

    async def transition_table(self) -> set[tuple[JobStatus, JobStatus]]:
        rows = await self._conn.fetch("SELECT from_status, to_status FROM job_transitions")
        return {(JobStatus(r["from_status"]), JobStatus(r["to_status"])) for r in rows}

    # --- worker pipeline -------------------------------------------------------------------------

    async def claim_queued(
        self, owner: str, limit: int, lease_s: float, batch_id: str, actor: Actor
    ) -> list[ClaimedJob]:
        """Claim up to `limit` due QUEUED jobs, oldest first, skipping rows other workers hold:
        QUEUED -> PROCESSING with a fresh fencing token, in one statement with the audit rows."""
        rows = await self._conn.fetch(
            f"""WITH picked AS (
                    SELECT id FROM jobs
                    WHERE status = 'queued' AND next_attempt_at <= now()
                    ORDER BY next_attempt_at, id
                    LIMIT $2
                    FOR UPDATE SKIP LOCKED
                ), moved AS (
                    UPDATE jobs j SET status = 'processing', lease_owner = $1,
                                      lease_token = nextval('job_lease_tokens'),
                                      lease_expires_at = now() + make_interval(secs => $3), batch_id = $4
                    FROM picked WHERE j.id = picked.id
                    RETURNING {_columns(False, "j")}, j.lease_token, j.record, j.builds
                ), audit AS (
                    INSERT INTO job_events (job_id, from_status, to_status, actor, reason, request_id)
                    SELECT id, 'queued', 'processing', $5, 'CLAIMED', $6 FROM moved
                )
                SELECT * FROM moved ORDER BY id""",
            owner,
            limit,
            lease_s,
            batch_id,
            actor.caller_id,
            actor.request_id,
        )
        return [ClaimedJob(_job_from_row(r), int(r["lease_token"]), bytes(r["record"]), int(r["builds"])) for r in rows]

    async def claim_stuck(
        self,
        owner: str,
        limit: int,
        lease_s: float,
        actor: Actor,
        statuses: Sequence[JobStatus] = (JobStatus.PROCESSING, JobStatus.SIGNED),
    ) -> list[ClaimedJob]:
        """Take over PROCESSING or SIGNED jobs whose lease expired (their worker died or hung).
        The status stays; the new token fences the old holder out. Audited as a same-status event."""
        rows = await self._conn.fetch(
            f"""WITH picked AS (
                    SELECT id, lease_owner AS previous_owner FROM jobs
                    WHERE status = ANY($6::text[]) AND lease_expires_at < now()
                    ORDER BY lease_expires_at
                    LIMIT $2
                    FOR UPDATE SKIP LOCKED
                ), moved AS (
                    UPDATE jobs j SET lease_owner = $1, lease_token = nextval('job_lease_tokens'),
                                      lease_expires_at = now() + make_interval(secs => $3)
                    FROM picked WHERE j.id = picked.id
                    RETURNING {_columns(False, "j")}, j.lease_token, j.record, j.builds, picked.previous_owner
                ), audit AS (
                    INSERT INTO job_events (job_id, from_status, to_status, txid, actor, reason, detail, request_id)
                    SELECT id, status, status, coalesce(txid, ''), $4, 'LEASE_EXPIRED',
                           'taken over from ' || coalesce(previous_owner, ''), $5
                    FROM moved
                )
                SELECT * FROM moved ORDER BY id""",
            owner,
            limit,
            lease_s,
            actor.caller_id,
            actor.request_id,
            [s.value for s in statuses],
        )
        return [ClaimedJob(_job_from_row(r), int(r["lease_token"]), bytes(r["record"]), int(r["builds"])) for r in rows]

    async def move_job(
        self,
        job_id: str,
        source: JobStatus,
        target: JobStatus,
        actor: Actor,
        *,
        reason: str = "",
        update: JobUpdate | None = None,
        lease_token: int | None = None,
        claim: tuple[str, float] | None = None,
    ) -> Job | None:
        """Guarded status change: applies only while the job is in `source` (and, when given, still
        carries `lease_token`). Writes the audit row in the same statement. None when the guard
        failed (someone else moved the job, or the lease was taken over).

        `claim` = (owner, seconds) gives the job a new lease (and fencing token) in the same
        statement, e.g. SIGNED/SENT -> PROCESSING when a worker rebuilds a dead transaction."""
        update = update or JobUpdate()
        args: list[Any] = [job_id, source.value, target.value]

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        # Column -> expression; what the move implies first, explicit values from `update` last.
        sets: dict[str, str] = {"status": "$3"}
        if target is JobStatus.SIGNED:
            sets.update(signed_at="now()", builds="builds + 1")
        if target is JobStatus.SENT and source is not JobStatus.CONFIRMED:
            sets["sent_at"] = "now()"
        if target is JobStatus.CONFIRMED:
            sets["confirmed_at"] = "now()"
        if source is JobStatus.CONFIRMED:
            # A reorg dropped the block: the job is followed again from SENT.
            sets.update(confirmed_at="NULL", merkle_bump="NULL", block_hash="NULL", block_height="NULL")
        if claim is not None:
            sets.update(
                lease_owner=arg(claim[0]),
                lease_token="nextval('job_lease_tokens')",
                lease_expires_at=f"now() + make_interval(secs => {arg(claim[1])})",
            )
        elif target in (JobStatus.QUEUED, JobStatus.SENT, JobStatus.CONFIRMED, JobStatus.FAILED):
            sets.update(lease_owner="NULL", lease_token="NULL", lease_expires_at="NULL")
        for name in _UPDATABLE:
            value = getattr(update, name)
            if value is not None:
                sets[name] = arg(value)
        if update.attempts_increment:
            sets["attempts"] = f"attempts + {arg(update.attempts_increment)}"
        if update.next_attempt_delay_s is not None:
            sets["next_attempt_at"] = f"now() + make_interval(secs => {arg(update.next_attempt_delay_s)})"
        assignments = ", ".join(f"{column} = {expression}" for column, expression in sets.items())
        guard = "job_id = $1 AND status = $2"
        if lease_token is not None:
            guard += f" AND lease_token = {arg(lease_token)}"
        row = await self._conn.fetchrow(
            f"""WITH moved AS (
                    UPDATE jobs SET {assignments} WHERE {guard}
                    RETURNING {_JOB_BASIC}
                ), audit AS (
                    INSERT INTO job_events (job_id, from_status, to_status, txid, actor, reason, detail, request_id)
                    SELECT id, $2, status, coalesce(txid, ''), {arg(actor.caller_id)}, {arg(reason)},
                           {arg(update.error_detail or "")}, {arg(actor.request_id)}
                    FROM moved
                )
                SELECT {_JOB_BASIC} FROM moved""",
            *args,
        )
        return _job_from_row(row) if row else None

    # --- publishing pipeline (bulk) -----------------------------------------------------------

    async def apply_moves(
        self, moves: Sequence[JobMove], actor: Actor, *, owner: str = "", lease_s: float = 0.0
    ) -> set[str]:
        """Apply many guarded changes in one statement, each with its audit row. Returns the ids of
        the jobs that moved; a job whose guard failed (status or fencing token changed) is left out.
        LeaseChange.CLAIM gives the job a new lease held by `owner` for `lease_s`."""
        if not moves:
            return set()
        if len({m.job_id for m in moves}) != len(moves):
            raise ValueError("apply_moves: a job appears twice; split the moves into two calls")
        for m in moves:
            if m.target in _UNLEASED and m.lease is not LeaseChange.CLEAR:
                raise ValueError(f"apply_moves: a {m.target.value} job cannot keep a lease")
        rows = await self._conn.fetch(
            _APPLY_MOVES, *_move_arrays(moves), owner, lease_s, actor.caller_id, actor.request_id
        )
        return {row["job_id"] for row in rows}

    async def claim_signed(self, owner: str, limit: int, lease_s: float, actor: Actor) -> list[InFlightJob]:
        """Claim SIGNED jobs to (re)broadcast: those whose backoff is over and that nobody holds, and
        those whose holder's lease expired (a takeover, audited like claim_stuck)."""
        rows = await self._conn.fetch(
            f"""WITH picked AS (
                    SELECT id, lease_owner AS previous_owner, lease_token AS previous_token FROM jobs
                    WHERE status = 'signed'
                      AND ((lease_token IS NULL AND next_attempt_at <= now()) OR lease_expires_at < now())
                    ORDER BY next_attempt_at, id
                    LIMIT $2
                    FOR UPDATE SKIP LOCKED
                ), moved AS (
                    UPDATE jobs j SET lease_owner = $1, lease_token = nextval('job_lease_tokens'),
                                      lease_expires_at = now() + make_interval(secs => $3)
                    FROM picked WHERE j.id = picked.id
                    RETURNING j.id, {", ".join("j." + c.strip() for c in _IN_FLIGHT.split(","))},
                              picked.previous_owner, picked.previous_token
                ), audit AS (
                    INSERT INTO job_events (job_id, from_status, to_status, txid, actor, reason, detail, request_id)
                    SELECT id, 'signed', 'signed', txid, $4, 'LEASE_EXPIRED',
                           'taken over from ' || coalesce(previous_owner, ''), $5
                    FROM moved WHERE previous_token IS NOT NULL
                )
                SELECT * FROM moved ORDER BY id""",
            owner,
            limit,
            lease_s,
            actor.caller_id,
            actor.request_id,
        )
        return [_in_flight(r) for r in rows]

    async def claim_sent_due(self, limit: int, recheck_s: float, max_recheck_s: float) -> list[InFlightJob]:
        """SENT jobs whose confirmation check is due. Their next check is set in the same statement
        (so replicas polling at the same time take different jobs), half the job's age from now:
        at least `recheck_s`, at most `max_recheck_s`, so old unconfirmed jobs cost little."""
        rows = await self._conn.fetch(
            f"""WITH picked AS (
                    SELECT id FROM jobs WHERE status = 'sent' AND next_attempt_at <= now()
                    ORDER BY next_attempt_at, id LIMIT $1
                    FOR UPDATE SKIP LOCKED
                )
                UPDATE jobs j SET next_attempt_at = now() + least(
                    greatest(make_interval(secs => $2), (now() - j.sent_at) / 2), make_interval(secs => $3))
                FROM picked WHERE j.id = picked.id
                RETURNING {", ".join("j." + c.strip() for c in _IN_FLIGHT.split(","))}""",
            limit,
            recheck_s,
            max_recheck_s,
        )
        return [_in_flight(r) for r in rows]

    async def in_flight_by_txids(self, txids: Sequence[str]) -> list[InFlightJob]:
        """Jobs whose current transaction is one of `txids` (SIGNED, SENT or CONFIRMED)."""
        rows = await self._conn.fetch(
            f"""SELECT {_IN_FLIGHT} FROM jobs
                WHERE txid = ANY($1::text[]) AND status IN ('signed', 'sent', 'confirmed')""",
            list(set(txids)),
        )
        return [_in_flight(r) for r in rows]

    async def confirmed_blocks(self, min_height: int) -> list[tuple[str, int]]:
        """(block hash, height) of the blocks holding CONFIRMED jobs at or above `min_height`."""
        rows = await self._conn.fetch(
            """SELECT DISTINCT block_hash, block_height FROM jobs
               WHERE status = 'confirmed' AND block_height >= $1 ORDER BY block_height""",
            min_height,
        )
        return [(row["block_hash"], int(row["block_height"])) for row in rows]

    async def confirmed_in_block(self, block_hash: str) -> list[InFlightJob]:
        rows = await self._conn.fetch(
            f"SELECT {_IN_FLIGHT} FROM jobs WHERE status = 'confirmed' AND block_hash = $1", block_hash
        )
        return [_in_flight(r) for r in rows]

    async def job_counts(self) -> dict[JobStatus, int]:
        rows = await self._conn.fetch("SELECT status, count(*) AS n FROM jobs GROUP BY status")
        return {JobStatus(row["status"]): int(row["n"]) for row in rows}


class PublisherStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[PublisherUnitOfWork]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield PublisherUnitOfWork(conn)

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[PublisherUnitOfWork]:
        """Autocommit reads: no transaction to open and close."""
        async with self._pool.acquire() as conn:
            yield PublisherUnitOfWork(conn)

    async def ping(self) -> None:
        async with self._pool.acquire() as conn:
            await conn.fetchval("SELECT 1")


class _Subscription:
    def __init__(self, hub: JobChangeHub) -> None:
        self._hub = hub
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    @property
    def draining(self) -> bool:
        return self._hub.draining

    async def wait(self, timeout_s: float) -> bool:
        if self._hub.draining:
            return True
        try:
            await asyncio.wait_for(self._event.wait(), max(0.0, timeout_s))
        except TimeoutError:
            return False
        self._event.clear()
        return True


class JobChangeHub:
    """LISTENs on the jobs_notify channel over one pooled connection and wakes the subscribers of
    the jobs named. Notifications are only wake-ups: subscribers re-read the job from PostgreSQL and
    also poll, so a lost notification or a dropped connection only delays them."""

    def __init__(self, pool: asyncpg.Pool, schema: str) -> None:
        self._pool = pool
        self._channel = job_changes_channel(schema)
        self._subscribers: dict[str, set[_Subscription]] = {}
        self._conn: Any = None
        self._reconnect: asyncio.Task[None] | None = None
        self._closed = False
        self.draining = False
        self._log = get_logger("publisher.changes")

    async def start(self) -> None:
        self._conn = await self._pool.acquire()
        await self._conn.add_listener(self._channel, self._on_notify)
        self._conn.add_termination_listener(self._on_terminated)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        for job_id in payload.split(","):
            for subscription in self._subscribers.get(job_id, ()):
                subscription.wake()

    def _on_terminated(self, _conn: Any) -> None:
        if self._closed:
            return
        self._log.warning("listener.lost")
        self._wake_all()
        self._reconnect = asyncio.get_running_loop().create_task(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        old, self._conn = self._conn, None
        with contextlib.suppress(Exception):
            await self._pool.release(old)
        delay = 0.1
        while not self._closed:
            try:
                await self.start()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self._log.info("listener.restored")
            self._wake_all()
            return

    def _wake_all(self) -> None:
        for subscriptions in self._subscribers.values():
            for subscription in subscriptions:
                subscription.wake()

    @asynccontextmanager
    async def subscribe(self, job_ids: Sequence[str]) -> AsyncIterator[_Subscription]:
        subscription = _Subscription(self)
        for job_id in job_ids:
            self._subscribers.setdefault(job_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            for job_id in job_ids:
                remaining = self._subscribers.get(job_id)
                if remaining is not None:
                    remaining.discard(subscription)
                    if not remaining:
                        del self._subscribers[job_id]

    def drain(self) -> None:
        """Shutting down: every subscriber wakes and sees `draining`."""
        self.draining = True
        self._wake_all()

    async def close(self) -> None:
        self._closed = True
        self.drain()
        if self._reconnect is not None:
            self._reconnect.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await conn.remove_listener(self._channel, self._on_notify)
            await self._pool.release(conn)
