"""The publishing pipeline. Knows nothing of gRPC.

A batch: claim QUEUED jobs (FOR UPDATE SKIP LOCKED) until BATCH_MAX_JOBS or the window closes →
lease one pool UTXO per job (one LeaseUtxos call) → build one OP_FALSE OP_RETURN transaction per
job → sign them (signer policy mode, one SignTransaction per transaction, concurrently) → store
every signed transaction and its txid on its job, SIGNED, in one database transaction → commit the
spends to the pool (one CommitSpend call) → broadcast the batch (one ARC /v1/txs call) → apply the
outcomes in one database transaction.

Exactly once: nothing is broadcast before it is stored. A SIGNED job is only ever re-broadcast with
its stored bytes (after a backoff, or by the worker that takes it over from a dead one); a second
transaction is built only once the first is proven dead (outcomes.py).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from proofline_kit.chain import ChainUnavailable, PreparedTx
from proofline_kit.errors import DomainError, ErrorKind
from proofline_kit.logging import get_logger
from proofline_kit.wire import Outpoint, TxOutput, parse
from services.publisher.domain.batch_signing import (
    Planned,
    in_flight,
    plan_batch,
    reason_of,
    sign_blind,
    sign_each,
    signed_move,
    signing_failure,
)
from services.publisher.domain.models import Actor, ClaimedJob, InFlightJob, JobMove, JobStatus
from services.publisher.domain.outcomes import (
    FEE_TOO_LOW,
    MISSING_INPUTS,
    POOL_EXHAUSTED,
    POOL_UNAVAILABLE,
    Judgement,
    RetryPolicy,
    Verdict,
    conflict_report,
    judge,
    moves_for,
)
from services.publisher.domain.ports import (
    ChainGateway,
    ChangeOutput,
    ConflictReport,
    PipelineObserver,
    PoolLease,
    PoolSpend,
    PublishPool,
    Store,
    TxSigner,
)
from services.publisher.domain.txbuild import (
    DataFormat,
    data_pushes,
    data_script,
    extended_format,
    min_funding,
)


class SignMode(Enum):
    # SignTransactions: the signer parses every transaction and checks the key's policy.
    POLICY = "policy"
    # One Sign call per batch with every sighash (blind: the signer checks no transaction policy;
    # only for keys whose policy allows it). Far fewer signer round trips.
    BATCH = "batch"


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    batch_max_jobs: int = 500
    batch_window_s: float = 0.25
    # How often a batch that is not full yet looks for more QUEUED jobs within its window.
    claim_poll_s: float = 0.05
    # A worker's hold on a job; PROCESSING/SIGNED jobs whose lease ran out are taken over.
    job_lease_s: float = 60.0
    # The pool lease on the UTXOs (longer than the job lease, so a takeover can still commit).
    utxo_lease_s: float = 600.0
    # Lease only UTXOs of this signer key (empty: any owner key of the PUBLISH pool).
    funding_key_id: str = ""
    # Change goes to this key (empty: back to the key and script of the UTXO spent).
    change_key_id: str = ""
    dust_limit_satoshis: int = 1
    data_format: DataFormat = field(default_factory=DataFormat)
    # Transactions per SignTransactions call in policy mode (a batch's chunks are signed concurrently).
    sign_chunk_txs: int = 256
    sign_mode: SignMode = SignMode.POLICY
    # A job given back to the queue before signing (pool empty or unreachable, signer unreachable).
    requeue_delay_s: float = 2.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)


class _NullObserver:
    def stage(self, name: str, seconds: float, jobs: int) -> None:
        pass

    def outcome(self, kind: str, count: int = 1) -> None:
        pass

    def moved(self, target: str, reason: str, count: int = 1) -> None:
        pass


def _spend_of(job: InFlightJob) -> PoolSpend:
    """The pool spend of a stored transaction (change, when present, is output 1)."""
    tx = job.tx
    change: ChangeOutput | None = None
    outputs = parse(tx.raw_tx).outputs
    if len(outputs) > 1:
        change = ChangeOutput(1, outputs[1].satoshis, outputs[1].locking_script, tx.change_key_id)
    return PoolSpend(tx.txid, Outpoint(tx.funding_txid, tx.funding_vout), change)


class PublishPipeline:
    def __init__(
        self,
        store: Store,
        pool: PublishPool,
        signer: TxSigner,
        chain: ChainGateway,
        config: PipelineConfig,
        observer: PipelineObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        request_ids: Callable[[str], str] | None = None,
    ) -> None:
        self._store = store
        self._pool = pool
        self._signer = signer
        self._chain = chain
        self.config = config
        self._observer: PipelineObserver = observer or _NullObserver()
        self._clock = clock
        self._sleep = sleep
        self._ids = request_ids or _random_id
        self._log = get_logger("publisher.pipeline")

    # --- fresh batches -----------------------------------------------------------------------------

    async def publish_queued(self, owner: str, batch_id: str, *, take_stuck: bool = False) -> int:
        """Collect one batch (stuck PROCESSING jobs first when `take_stuck`) and publish it. Returns
        how many jobs it handled (0: nothing to do)."""
        actor = Actor(owner, batch_id)
        started = self._clock()
        claims = await self._collect(owner, batch_id, actor, take_stuck)
        if not claims:
            return 0
        self._observer.stage("collect", self._clock() - started, len(claims))
        await self._publish(claims, owner, batch_id, actor)
        return len(claims)

    async def _collect(self, owner: str, batch_id: str, actor: Actor, take_stuck: bool) -> list[ClaimedJob]:
        config = self.config
        claims: list[ClaimedJob] = []
        if take_stuck:
            async with self._store.unit_of_work() as uow:
                claims += await uow.claim_stuck(
                    owner, config.batch_max_jobs, config.job_lease_s, actor, statuses=(JobStatus.PROCESSING,)
                )
        async with self._store.unit_of_work() as uow:
            claims += await uow.claim_queued(
                owner, config.batch_max_jobs - len(claims), config.job_lease_s, batch_id, actor
            )
        if not claims:
            return claims
        closes_at = self._clock() + config.batch_window_s
        while len(claims) < config.batch_max_jobs:
            left = closes_at - self._clock()
            if left <= 0:
                break
            await self._sleep(min(config.claim_poll_s, left))
            async with self._store.unit_of_work() as uow:
                claims += await uow.claim_queued(
                    owner, config.batch_max_jobs - len(claims), config.job_lease_s, batch_id, actor
                )
        return claims

    async def _publish(self, claims: list[ClaimedJob], owner: str, batch_id: str, actor: Actor) -> None:
        config = self.config
        rate = await self._chain.fee_rate()
        datas = {c.job.job_id: data_script(data_pushes(c.record, c.job.job_id, config.data_format)) for c in claims}
        started = self._clock()
        try:
            lease = await self._pool.lease(
                self._ids("lease"),
                len(claims),
                max(min_funding(d, rate) for d in datas.values()),
                config.funding_key_id,
                config.utxo_lease_s,
                f"publisher/{owner}/{batch_id}",
            )
        except DomainError as error:
            reason = POOL_EXHAUSTED if error.reason == POOL_EXHAUSTED else POOL_UNAVAILABLE
            if error.kind is not ErrorKind.UNAVAILABLE and reason != POOL_EXHAUSTED:
                reason = reason_of(error, POOL_UNAVAILABLE)
            self._log.warning("batch.no_utxos", batch_id=batch_id, reason=error.reason, detail=error.message)
            await self._requeue(claims, reason, error.message, actor)
            return
        self._observer.stage("lease", self._clock() - started, len(claims))

        try:
            planned, leftover = await plan_batch(
                self._signer, claims, lease, datas, rate, config.change_key_id, config.dust_limit_satoshis
            )
        except DomainError as error:
            reason, _ = signing_failure(error)
            await self._requeue(claims, reason, error.message, actor)
            await self._release(lease, [u.outpoint for u in lease.utxos])
            return
        if leftover:
            await self._requeue(leftover, POOL_EXHAUSTED, "the pool leased fewer UTXOs than the batch needs", actor)
        if not planned:
            await self._release(lease, [u.outpoint for u in lease.utxos])
            return
        started = self._clock()
        failures = await self._sign_all(planned)
        self._observer.stage("sign", self._clock() - started, len(planned))

        started = self._clock()
        moves: list[JobMove] = []
        for plan in planned:
            failure = failures.get(plan.job_id)
            if failure is None:
                assert plan.signed is not None
                moves.append(signed_move(plan, batch_id))
            else:
                moves.append(self._requeue_move(plan.claim, failure[0], failure[1]))
        async with self._store.unit_of_work() as uow:
            moved = await uow.apply_moves(moves, actor)
        self._observer.stage("store", self._clock() - started, len(planned))
        stored = [p for p in planned if p.job_id in moved and p.job_id not in failures]
        for move in moves:
            if move.job_id in moved:
                self._observer.moved(move.target.value, move.reason)
        if len(stored) < len(planned):
            self._log.info("batch.not_stored", batch_id=batch_id, planned=len(planned), stored=len(stored))
        if not stored:
            await self._release(lease, [u.outpoint for u in lease.utxos])
            return

        jobs = [in_flight(p) for p in stored]
        started = self._clock()
        committed, later = await self._commit_batch(lease, jobs)
        self._observer.stage("commit", self._clock() - started, len(jobs))
        if later:
            await self.settle(
                [j for j in jobs if j.job_id in later],
                {j: Judgement(Verdict.UNAVAILABLE, POOL_UNAVAILABLE, "CommitSpend failed") for j in later},
                owner,
                actor,
                # Counted as an attempt so that a pool that stays unreachable fails the job in the end.
                attempted=True,
                committed=False,
            )
        await self._broadcast_and_settle([j for j in jobs if j.job_id in committed], owner, actor)

    async def _sign_all(self, planned: list[Planned]) -> dict[str, tuple[str, str]]:
        """Signs every planned transaction. Returns the failures: job id → (reason, detail)."""
        if self.config.sign_mode is SignMode.BATCH:
            return await sign_blind(self._signer, planned, self._log)
        return await sign_each(self._signer, planned, self.config.sign_chunk_txs, self._log)

    def _requeue_move(self, claim: ClaimedJob, reason: str, detail: str) -> JobMove:
        return JobMove(
            claim.job.job_id,
            JobStatus.PROCESSING,
            JobStatus.QUEUED,
            reason,
            lease_token=claim.lease_token,
            error_reason=reason,
            error_detail=detail[:1000],
            delay_s=self.config.requeue_delay_s,
        )

    async def _requeue(self, claims: Sequence[ClaimedJob], reason: str, detail: str, actor: Actor) -> None:
        """Jobs given back before anything was signed for them."""
        async with self._store.unit_of_work() as uow:
            moved = await uow.apply_moves([self._requeue_move(c, reason, detail) for c in claims], actor)
        self._observer.moved(JobStatus.QUEUED.value, reason, len(moved))

    async def _release(self, lease: PoolLease, outpoints: Sequence[Outpoint]) -> None:
        if not outpoints:
            return
        try:
            await self._pool.release(self._ids("release"), lease.lease_id, outpoints)
        except DomainError as error:
            # The lease expires by itself; the pool gives the UTXOs back then.
            self._log.warning("pool.release_failed", lease_id=lease.lease_id, reason=error.reason)

    async def _commit_batch(self, lease: PoolLease, jobs: list[InFlightJob]) -> tuple[set[str], set[str]]:
        """CommitSpend for the stored transactions, releasing the lease's unused UTXOs. Returns
        (jobs to broadcast now, jobs to retry later because the pool could not be reached)."""
        spends = {j.job_id: _spend_of(j) for j in jobs}
        try:
            await self._pool.commit(
                self._ids("commit"), lease.lease_id, lease.fencing_token, list(spends.values()), True
            )
            return set(spends), set()
        except DomainError as error:
            if error.kind is ErrorKind.UNAVAILABLE:
                self._log.warning("pool.commit_unavailable", lease_id=lease.lease_id, detail=error.message)
                return set(), set(spends)
            self._log.warning("pool.commit_refused", lease_id=lease.lease_id, reason=error.reason)
        # One refused spend fails the whole (atomic) call: commit them one at a time.
        now, later = await self._commit_each(lease.lease_id, lease.fencing_token, spends)
        used = {spends[j].funding for j in spends}
        await self._release(lease, [u.outpoint for u in lease.utxos if u.outpoint not in used])
        return now, later

    async def _commit_each(
        self, lease_id: str, fencing_token: int, spends: dict[str, PoolSpend]
    ) -> tuple[set[str], set[str]]:
        now: set[str] = set()
        later: set[str] = set()
        for job_id, spend in spends.items():
            try:
                await self._pool.commit(self._ids("commit"), lease_id, fencing_token, [spend], False)
            except DomainError as error:
                if error.kind is ErrorKind.UNAVAILABLE:
                    later.add(job_id)
                    continue
                # Refused (the UTXO was taken over, or is committed to another transaction): the
                # signed transaction is stored, so it is broadcast anyway and the chain decides.
                self._log.warning("pool.spend_refused", job_id=job_id, txid=spend.txid, reason=error.reason)
            now.add(job_id)
        return now, later

    # --- SIGNED jobs: re-broadcast after a backoff or a takeover ------------------------------------

    async def resume_signed(self, owner: str, batch_id: str) -> int:
        """Re-broadcast the stored bytes of SIGNED jobs that are due (after a backoff) or whose
        worker died, committing their spends first where that had not happened."""
        actor = Actor(owner, batch_id)
        async with self._store.unit_of_work() as uow:
            jobs = await uow.claim_signed(owner, self.config.batch_max_jobs, self.config.job_lease_s, actor)
        if not jobs:
            return 0
        pending = [j for j in jobs if not j.spend_committed]
        later: set[str] = set()
        if pending:
            by_lease: dict[tuple[str, int], dict[str, PoolSpend]] = {}
            for job in pending:
                key = (job.tx.utxo_lease_id, job.tx.utxo_fencing_token)
                by_lease.setdefault(key, {})[job.job_id] = _spend_of(job)
            for (lease_id, token), spends in by_lease.items():
                try:
                    await self._pool.commit(self._ids("commit"), lease_id, token, list(spends.values()), False)
                except DomainError as error:
                    if error.kind is ErrorKind.UNAVAILABLE:
                        later |= set(spends)
                    else:
                        later |= (await self._commit_each(lease_id, token, spends))[1]
        if later:
            await self.settle(
                [j for j in jobs if j.job_id in later],
                {j: Judgement(Verdict.UNAVAILABLE, POOL_UNAVAILABLE, "CommitSpend failed") for j in later},
                owner,
                actor,
                attempted=True,
                committed=False,
            )
        await self._broadcast_and_settle([j for j in jobs if j.job_id not in later], owner, actor)
        return len(jobs)

    # --- broadcast and outcomes ---------------------------------------------------------------------

    async def _broadcast_and_settle(self, jobs: list[InFlightJob], owner: str, actor: Actor) -> None:
        if not jobs:
            return
        prepared = [
            PreparedTx.from_bytes(extended_format(j.tx.raw_tx, TxOutput(j.tx.funding_satoshis, j.tx.funding_script)))
            for j in jobs
        ]
        started = self._clock()
        outcomes = await self._chain.broadcast(prepared)
        self._observer.stage("broadcast", self._clock() - started, len(jobs))
        judgements = {j.job_id: judge(outcomes[j.tx.txid]) for j in jobs}
        for j in jobs:
            self._observer.outcome(outcomes[j.tx.txid].kind.value)
        await self.gather_evidence(jobs, judgements)
        if any(judgement.reason == FEE_TOO_LOW for judgement in judgements.values()):
            self._chain.fee_rate_stale()
        started = self._clock()
        await self.settle(jobs, judgements, owner, actor, attempted=True, committed=True)
        self._observer.stage("settle", self._clock() - started, len(jobs))

    async def gather_evidence(self, jobs: Sequence[InFlightJob], judgements: dict[str, Judgement]) -> None:
        """Turns WAIT into DEAD where the chain proves it: a competing transaction is mined, or the
        input is spent by another transaction (or does not exist). Lookups that fail leave WAIT."""
        waiting = [j for j in jobs if judgements[j.job_id].verdict is Verdict.WAIT]
        if not waiting:
            return

        def competitors(job: InFlightJob) -> tuple[str, ...]:
            named = judgements[job.job_id].competing or job.competing_txids
            return tuple(t for t in named if t != job.tx.txid)

        try:
            named = sorted({t for j in waiting for t in competitors(j)})
            mined = await self._chain.mined(named) if named else set()
            unnamed = [j for j in waiting if judgements[j.job_id].reason == MISSING_INPUTS or not competitors(j)]
            looked_up = {j.job_id for j in unnamed}
            fundings = [Outpoint(j.tx.funding_txid, j.tx.funding_vout) for j in unnamed]
            spenders = await self._chain.spenders(fundings) if fundings else {}
            others = sorted({s for s in spenders.values() if s is not None} - mined)
            mined |= await self._chain.mined(others) if others else set()
        except ChainUnavailable as error:
            self._log.info("evidence.unavailable", detail=error.message)
            return
        for job in waiting:
            judgement = judgements[job.job_id]
            funding = Outpoint(job.tx.funding_txid, job.tx.funding_vout)
            proof = ""
            hit = [t for t in competitors(job) if t in mined]
            spender = spenders.get(funding)
            if hit:
                proof = f"competing transaction {hit[0]} is mined"
            elif job.job_id in looked_up and funding not in spenders:
                proof = f"input {funding.txid}:{funding.vout} does not exist on chain"
            elif (
                spender is not None
                and spender != job.tx.txid
                and (spender in mined or judgement.reason == MISSING_INPUTS)
            ):
                proof = f"input {funding.txid}:{funding.vout} is spent by {spender}"
            if proof:
                judgements[job.job_id] = Judgement(
                    Verdict.DEAD, judgement.reason, proof, judgement.competing, judgement.conflict
                )

    async def settle(
        self,
        jobs: Sequence[InFlightJob],
        judgements: dict[str, Judgement],
        owner: str,
        actor: Actor,
        *,
        attempted: bool,
        committed: bool,
    ) -> None:
        """Applies the judgements in one database transaction, then tells the pool about the inputs
        of the transactions that failed or conflict."""
        first: list[JobMove] = []
        then: list[JobMove] = []
        reports: dict[str, ConflictReport] = {}
        for job in jobs:
            judgement = judgements[job.job_id]
            moves = moves_for(
                job, judgement, self.config.retry, guard=job.lease_token, attempted=attempted, committed=committed
            )
            first += moves.first
            then += moves.then
            failing = any(m.target is JobStatus.FAILED for m in moves.first)
            report = conflict_report(job, judgement, failing=failing)
            if report is not None and moves.first:
                reports[job.job_id] = report
        async with self._store.unit_of_work() as uow:
            moved = await uow.apply_moves(first, actor, owner=owner, lease_s=self.config.job_lease_s)
            await uow.apply_moves([m for m in then if m.job_id in moved], actor)
        for move in [*first, *then]:
            if move.job_id in moved:
                self._observer.moved(move.target.value, move.reason)
        lost = len(first) - len(moved)
        if lost:
            self._log.info("settle.fenced_out", jobs=lost)
        await self.report([r for job_id, r in reports.items() if job_id in moved])

    async def report(self, reports: Iterable[ConflictReport]) -> None:
        """Best effort: a report the pool does not get leaves the UTXO spent by a dead transaction
        until the pool's own sync looks at it."""
        for report in reports:
            try:
                await self._pool.report(self._ids("report"), report)
            except DomainError as error:
                self._log.warning(
                    "pool.report_failed", txid=report.spending_txid, kind=report.kind.value, reason=error.reason
                )


def _random_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"
