"""The pipeline's claims: QUEUED jobs for a batch, takeovers of expired leases, SIGNED jobs to resume."""

from __future__ import annotations

from collections.abc import Sequence

from proofline_kit.database import Queries
from services.publisher.domain.models import Actor, ClaimedJob, InFlightJob, JobStatus
from services.publisher.store.rows import IN_FLIGHT, in_flight_from_row, job_columns, job_from_row


class ClaimQueries(Queries):
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
                    RETURNING {job_columns(False, "j")}, j.lease_token, j.record, j.builds
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
        return [ClaimedJob(job_from_row(r), int(r["lease_token"]), bytes(r["record"]), int(r["builds"])) for r in rows]

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
                    RETURNING {job_columns(False, "j")}, j.lease_token, j.record, j.builds, picked.previous_owner
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
        return [ClaimedJob(job_from_row(r), int(r["lease_token"]), bytes(r["record"]), int(r["builds"])) for r in rows]

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
                    RETURNING j.id, {", ".join("j." + c.strip() for c in IN_FLIGHT.split(","))},
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
        return [in_flight_from_row(r) for r in rows]
