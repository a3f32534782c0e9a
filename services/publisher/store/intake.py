"""Intake and reads of jobs: existing intents and nonces, the insert of new jobs, lookups and lists."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from proofline_kit.database import Queries
from services.publisher.domain.models import Actor, Job, JobEvent, JobFilter, JobStatus, NewJob
from services.publisher.store.rows import JOB_BASIC, job_columns, job_from_row


class IntakeQueries(Queries):
    async def jobs_by_intent(self, keys: Sequence[tuple[bytes, bytes]], *, full: bool = False) -> dict[bytes, Job]:
        """Existing jobs by (pubkey, intent digest), keyed by pubkey + digest."""
        if not keys:
            return {}
        rows = await self._conn.fetch(
            f"""SELECT {job_columns(full, "j")} FROM unnest($1::bytea[], $2::bytea[]) AS k(pubkey, digest)
                JOIN jobs j ON j.identity_pubkey = k.pubkey AND j.intent_digest = k.digest""",
            [k[0] for k in keys],
            [k[1] for k in keys],
        )
        return {bytes(row["identity_pubkey"]) + bytes(row["intent_digest"]): job_from_row(row) for row in rows}

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
                    RETURNING {JOB_BASIC}
                ), audit AS (
                    INSERT INTO job_events (job_id, from_status, to_status, actor, reason, request_id)
                    SELECT id, '', 'queued', $10, 'ACCEPTED', $11 FROM inserted
                )
                SELECT {JOB_BASIC} FROM inserted""",
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
        return {row["job_id"]: job_from_row(row) for row in rows}

    async def count_queued(self) -> int:
        return int(await self._conn.fetchval("SELECT count(*) FROM jobs WHERE status = 'queued'"))

    async def job_counts(self) -> dict[JobStatus, int]:
        rows = await self._conn.fetch("SELECT status, count(*) AS n FROM jobs GROUP BY status")
        return {JobStatus(row["status"]): int(row["n"]) for row in rows}

    async def jobs(self, job_ids: Sequence[str], *, full: bool = False) -> dict[str, Job]:
        rows = await self._conn.fetch(
            f"SELECT {job_columns(full)} FROM jobs WHERE job_id = ANY($1::text[])", list(set(job_ids))
        )
        return {row["job_id"]: job_from_row(row) for row in rows}

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
            f"""SELECT {job_columns(full)} FROM jobs WHERE {condition}
                ORDER BY created_at DESC, job_id DESC LIMIT {arg(limit)}""",
            *args,
        )
        return [job_from_row(row) for row in rows]

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
