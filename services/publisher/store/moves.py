"""Guarded status changes of jobs, each with its audit row: one at a time, or many in one statement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from proofline_kit.database import Queries
from services.publisher.domain.models import Actor, Job, JobMove, JobStatus, JobUpdate, LeaseChange
from services.publisher.store.rows import JOB_BASIC, job_from_row

# Targets that leave nobody holding the job (the CHECKs and claim queries rely on it).
_UNLEASED = (JobStatus.QUEUED, JobStatus.SENT, JobStatus.CONFIRMED, JobStatus.FAILED)

_APPLY_MOVES = """
WITH m AS (
    SELECT * FROM unnest(
        $1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::int[],
        $9::float8[], $10::text[], $11::text[], $12::bytea[], $13::bigint[], $14::text[], $15::bigint[],
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


class MoveQueries(Queries):
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
                    RETURNING {JOB_BASIC}
                ), audit AS (
                    INSERT INTO job_events (job_id, from_status, to_status, txid, actor, reason, detail, request_id)
                    SELECT id, $2, status, coalesce(txid, ''), {arg(actor.caller_id)}, {arg(reason)},
                           {arg(update.error_detail or "")}, {arg(actor.request_id)}
                    FROM moved
                )
                SELECT {JOB_BASIC} FROM moved""",
            *args,
        )
        return job_from_row(row) if row else None

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
