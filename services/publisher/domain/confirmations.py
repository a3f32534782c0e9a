"""Following SENT jobs to CONFIRMED, and CONFIRMED jobs through reorgs. Knows nothing of HTTP or gRPC.

Chain news comes from ARC callbacks (`on_statuses`) and, as the backup, from polling (`poll_sent`,
`check_reorgs`). Both end in `apply`: a job becomes CONFIRMED only with a merkle path that verifies
against the header of the longest chain at its height; a job whose block left the longest chain
goes back to SENT and is followed again; a SENT transaction that the network later rejects is dead
and its job is rebuilt (bounded) like any dead transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from proofline_kit.chain import (
    ArcStatus,
    ArcTxStatus,
    BroadcastOutcome,
    ChainUnavailable,
    PreparedTx,
    TxChainState,
)
from proofline_kit.chain.arc_results import outcome_from_status
from proofline_kit.logging import get_logger
from proofline_kit.wire import TxOutput
from services.publisher.domain.models import Actor, BlockProof, InFlightJob, JobMove, JobStatus
from services.publisher.domain.outcomes import Judgement, Verdict, judge
from services.publisher.domain.pipeline import PublishPipeline
from services.publisher.domain.ports import ChainGateway, PipelineObserver, Store
from services.publisher.domain.txbuild import (
    extended_format,
)


@dataclass(frozen=True, slots=True)
class FollowConfig:
    # SENT jobs looked at per poll, and the pause before the same job is polled again.
    poll_batch: int = 200
    recheck_s: float = 60.0
    # Old SENT jobs are polled less often (half their age), but at least this often.
    max_recheck_s: float = 1800.0
    status_concurrency: int = 16
    # CONFIRMED jobs in this many blocks below the tip are checked against the chain for reorgs.
    reorg_depth: int = 6


def _status_of(outcome: BroadcastOutcome) -> ArcTxStatus | None:
    if outcome.status is None:
        return None
    return ArcTxStatus(
        txid=outcome.txid,
        status=outcome.status,
        status_name=outcome.status.name,
        extra_info=outcome.reason,
        competing_txids=outcome.competing_txids,
        block_hash=outcome.block_hash,
        block_height=outcome.block_height,
        merkle_path=outcome.merkle_path,
    )


class ConfirmationFollower:
    def __init__(
        self,
        store: Store,
        chain: ChainGateway,
        pipeline: PublishPipeline,
        config: FollowConfig,
        observer: PipelineObserver,
    ) -> None:
        self._store = store
        self._chain = chain
        self._pipeline = pipeline
        self.config = config
        self._observer = observer
        self._log = get_logger("publisher.confirmations")

    async def on_statuses(self, statuses: Sequence[ArcTxStatus], actor: Actor) -> int:
        """Chain news for some txids (an ARC callback). Returns how many jobs changed. A MINED claim
        is only believed with a proof that verifies; a REJECTED claim (which would make the job
        build a second transaction) only once ARC itself says so when asked."""
        latest = {s.txid: s for s in statuses}
        if not latest:
            return 0
        async with self._store.reader() as uow:
            jobs = await uow.in_flight_by_txids(list(latest))
        for job in jobs:
            claimed = latest.get(job.tx.txid)
            if claimed is not None and claimed.status is ArcStatus.REJECTED and job.status is JobStatus.SENT:
                asked = await self._chain.status(job.tx.txid)
                if asked is None or asked.status is not ArcStatus.REJECTED:
                    self._log.warning("callback.rejection_not_confirmed", txid=job.tx.txid)
                    del latest[job.tx.txid]
                else:
                    latest[job.tx.txid] = asked
        return await self.apply(jobs, latest, actor)

    async def poll_sent(self, actor: Actor) -> int:
        """Asks the chain about the SENT jobs whose check is due. Returns how many were looked at."""
        async with self._store.unit_of_work() as uow:
            jobs = await uow.claim_sent_due(self.config.poll_batch, self.config.recheck_s, self.config.max_recheck_s)
        if not jobs:
            return 0
        # One bulk lookup first: most SENT transactions are simply still in the mempool, and only
        # the mined or unknown ones are worth a per-transaction ARC lookup.
        try:
            states = await self._chain.chain_states([j.tx.txid for j in jobs])
        except ChainUnavailable as error:
            self._log.info("poll.unavailable", detail=error.message)
            return len(jobs)
        pending = [j for j in jobs if states.get(j.tx.txid) is not TxChainState.MEMPOOL]
        gate = asyncio.Semaphore(self.config.status_concurrency)
        statuses: dict[str, ArcTxStatus] = {}
        unknown: list[InFlightJob] = []

        async def look(job: InFlightJob) -> None:
            async with gate:
                try:
                    status = await self._chain.status(job.tx.txid)
                except ChainUnavailable:
                    return
            if status is None:
                unknown.append(job)
            else:
                statuses[job.tx.txid] = status

        await asyncio.gather(*(look(j) for j in pending))
        if unknown:
            # ARC does not know it (sent through WhatsOnChain, or past ARC's retention): sending the
            # same bytes again tells ARC, and its answer carries the status (merkle path if mined).
            outcomes = await self._chain.broadcast(
                [
                    PreparedTx.from_bytes(
                        extended_format(j.tx.raw_tx, TxOutput(j.tx.funding_satoshis, j.tx.funding_script))
                    )
                    for j in unknown
                ]
            )
            for txid, outcome in outcomes.items():
                status = _status_of(outcome)
                if status is not None:
                    statuses[txid] = status
        await self.apply(jobs, statuses, actor)
        return len(jobs)

    async def apply(self, jobs: Sequence[InFlightJob], statuses: dict[str, ArcTxStatus], actor: Actor) -> int:
        moves: list[JobMove] = []
        dead: list[InFlightJob] = []
        judgements: dict[str, Judgement] = {}
        for job in jobs:
            status = statuses.get(job.tx.txid)
            if status is None or job.status is JobStatus.SIGNED:
                # A SIGNED job belongs to the worker broadcasting it; polling catches up once SENT.
                continue
            if status.status is ArcStatus.MINED and status.merkle_path:
                move = await self._mined(job, status)
                if move is not None:
                    moves.append(move)
            elif status.status is ArcStatus.MINED_IN_STALE_BLOCK and job.status is JobStatus.CONFIRMED:
                moves.append(self._unconfirm(job, "REORG", f"block {job.block_hash} is stale"))
            elif status.status is ArcStatus.REJECTED and job.status is JobStatus.SENT:
                judgement = judge(outcome_from_status(status))
                if judgement.verdict is Verdict.REJECTED:
                    # Rejected after it was accepted (evicted, lost a double spend): build another.
                    judgement = Judgement(Verdict.DEAD, judgement.reason, judgement.detail, (), judgement.conflict)
                dead.append(job)
                judgements[job.job_id] = judgement
        changed = 0
        if moves:
            async with self._store.unit_of_work() as uow:
                moved = await uow.apply_moves(moves, actor)
            for move in moves:
                if move.job_id in moved:
                    self._observer.moved(move.target.value, move.reason)
            changed += len(moved)
        if dead:
            await self._pipeline.settle(dead, judgements, actor.caller_id, actor, attempted=False, committed=True)
            changed += len(dead)
        return changed

    async def _mined(self, job: InFlightJob, status: ArcTxStatus) -> JobMove | None:
        assert status.merkle_path is not None
        try:
            check = await self._chain.verify(job.tx.txid, status.merkle_path)
        except ChainUnavailable as error:
            self._log.info("proof.unverified", txid=job.tx.txid, detail=error.message)
            return None
        if not check.valid:
            self._log.warning("proof.invalid", txid=job.tx.txid, verdict=check.verdict.value, detail=check.detail)
            if job.status is JobStatus.CONFIRMED and check.block_hash != job.block_hash:
                return self._unconfirm(job, "REORG", f"the proof no longer verifies: {check.verdict.value}")
            return None
        assert check.block_hash is not None and check.block_height is not None
        proof = BlockProof(check.block_hash, check.block_height, bytes.fromhex(status.merkle_path))
        if job.status is JobStatus.SENT:
            return JobMove(job.job_id, JobStatus.SENT, JobStatus.CONFIRMED, "MINED", block=proof)
        if job.block_hash != check.block_hash:
            # Mined again in another block after a reorg: same status, new block and path.
            return JobMove(
                job.job_id,
                JobStatus.CONFIRMED,
                JobStatus.CONFIRMED,
                "REMINED",
                block=proof,
                error_detail=f"was in block {job.block_hash}",
            )
        return None

    def _unconfirm(self, job: InFlightJob, reason: str, detail: str) -> JobMove:
        return JobMove(
            job.job_id,
            JobStatus.CONFIRMED,
            JobStatus.SENT,
            reason,
            clear_block=True,
            error_detail=detail,
            delay_s=0.0,
        )

    async def check_reorgs(self, actor: Actor) -> int:
        """Moves CONFIRMED jobs whose block is no longer the longest chain's block at its height
        back to SENT. Returns how many moved."""
        try:
            tip = await self._chain.tip_height()
            async with self._store.reader() as uow:
                blocks = await uow.confirmed_blocks(tip - self.config.reorg_depth + 1)
            stale: list[str] = []
            for block_hash, height in blocks:
                if await self._chain.block_hash_at(height) != block_hash:
                    stale.append(block_hash)
        except ChainUnavailable as error:
            self._log.info("reorg_check.unavailable", detail=error.message)
            return 0
        moved_count = 0
        for block_hash in stale:
            async with self._store.unit_of_work() as uow:
                jobs = await uow.confirmed_in_block(block_hash)
                moves = [self._unconfirm(j, "REORG", f"block {block_hash} left the longest chain") for j in jobs]
                moved = await uow.apply_moves(moves, actor)
            self._log.warning("reorg.unconfirmed", block_hash=block_hash, jobs=len(moved))
            self._observer.moved(JobStatus.SENT.value, "REORG", len(moved))
            moved_count += len(moved)
        return moved_count
