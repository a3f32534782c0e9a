"""A batch's build-and-sign stage: each claimed job paired with a leased UTXO and its transaction
built, then signed (policy mode: the signer checks every transaction; batch mode: one blind Sign
call), and the SIGNED move that stores it."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from structlog.typing import FilteringBoundLogger

from proofline_kit.chain import FeeRate
from proofline_kit.errors import DomainError, ErrorKind
from proofline_kit.wire import TxOutput, txid_of
from services.publisher.domain.models import BuiltTx, ClaimedJob, InFlightJob, JobMove, JobStatus, LeaseChange
from services.publisher.domain.outcomes import SIGNER_UNAVAILABLE, SIGNING_FAILED
from services.publisher.domain.ports import PoolLease, PoolUtxo, SignedTx, TxSigner, TxToSign
from services.publisher.domain.txbuild import (
    FundingTooSmall,
    UnsignedPublish,
    build_publish,
    check_signed,
    p2pkh_unlocking,
    serialize,
    sighash,
)

_REASON = re.compile(r"^[A-Z0-9_]{1,64}$")


@dataclass(slots=True)
class Planned:
    claim: ClaimedJob
    lease: PoolLease
    utxo: PoolUtxo
    unsigned: UnsignedPublish
    change_key_id: str
    signed: SignedTx | None = None

    @property
    def job_id(self) -> str:
        return self.claim.job.job_id


def reason_of(error: DomainError, fallback: str) -> str:
    return error.reason if _REASON.match(error.reason) else fallback


def signing_failure(error: DomainError) -> tuple[str, str]:
    """(job error reason, detail): the signer's own reason, or SIGNER_UNAVAILABLE when it could not answer."""
    if error.kind is ErrorKind.UNAVAILABLE:
        return SIGNER_UNAVAILABLE, error.message
    return reason_of(error, SIGNING_FAILED), error.message


async def plan_batch(
    signer: TxSigner,
    claims: list[ClaimedJob],
    lease: PoolLease,
    datas: dict[str, bytes],
    rate: FeeRate,
    change_key_id: str,
    dust_limit_satoshis: int,
) -> tuple[list[Planned], list[ClaimedJob]]:
    """Pairs each job with a leased UTXO and builds its unsigned transaction."""
    change_script = b""
    if change_key_id:
        change_script = await signer.locking_script(change_key_id)
    planned: list[Planned] = []
    leftover = list(claims[len(lease.utxos) :])
    for claim, utxo in zip(claims, lease.utxos, strict=False):
        try:
            unsigned = build_publish(
                utxo.outpoint,
                TxOutput(utxo.satoshis, utxo.locking_script),
                datas[claim.job.job_id],
                change_script or utxo.locking_script,
                rate,
                dust_limit_satoshis,
            )
        except FundingTooSmall:
            leftover.append(claim)
            continue
        planned.append(Planned(claim, lease, utxo, unsigned, change_key_id or utxo.owner_key_id))
    return planned, leftover


async def sign_blind(signer: TxSigner, planned: list[Planned], log: FilteringBoundLogger) -> dict[str, tuple[str, str]]:
    """Every sighash of the batch in one blind Sign call; the signed bytes are put together here.
    Returns the failures: job id → (reason, detail)."""
    items = [(p.utxo.owner_key_id, sighash(p.unsigned)) for p in planned]
    request_id = f"signb-{planned[0].claim.job.job_id}-{planned[0].claim.lease_token}"[:64]
    try:
        signatures = await signer.sign_digests(request_id, items)
    except DomainError as error:
        log.warning("batch.signing_failed", failed=len(planned), reason=error.reason)
        return {p.job_id: signing_failure(error) for p in planned}
    if len(signatures) != len(planned):
        return {p.job_id: (SIGNING_FAILED, "the signer answered for another number of digests") for p in planned}
    for plan, (signature, public_key) in zip(planned, signatures, strict=True):
        raw = serialize(plan.unsigned.funding, p2pkh_unlocking(signature, public_key), plan.unsigned.outputs)
        plan.signed = SignedTx(raw, txid_of(raw))
    return {}


async def sign_each(
    signer: TxSigner, planned: list[Planned], chunk_txs: int, log: FilteringBoundLogger
) -> dict[str, tuple[str, str]]:
    """Policy mode: the signer parses and checks every transaction itself. Chunks of `chunk_txs`
    transactions, one SignTransactions call each, all chunks in flight at once. Returns the failures."""
    chunks = [planned[i : i + chunk_txs] for i in range(0, len(planned), chunk_txs)]
    failures: dict[str, tuple[str, str]] = {}
    for chunk_failures in await asyncio.gather(*(_sign_chunk(signer, c) for c in chunks)):
        failures.update(chunk_failures)
    if failures:
        log.warning("batch.signing_failed", failed=len(failures), sample=next(iter(failures.values())))
    return failures


async def _sign_chunk(signer: TxSigner, chunk: list[Planned]) -> dict[str, tuple[str, str]]:
    request_id = f"signs-{chunk[0].job_id}-{chunk[0].claim.lease_token}"[:64]
    txs = [TxToSign(p.unsigned.raw, p.unsigned.spent, p.utxo.owner_key_id) for p in chunk]
    try:
        answers = await signer.sign_transactions(request_id, txs)
    except DomainError as error:
        return {p.job_id: signing_failure(error) for p in chunk}
    if len(answers) != len(chunk):
        return {p.job_id: (SIGNING_FAILED, "the signer answered for another number of transactions") for p in chunk}
    failures: dict[str, tuple[str, str]] = {}
    for plan, answer in zip(chunk, answers, strict=True):
        if isinstance(answer, DomainError):
            failures[plan.job_id] = signing_failure(answer)
            continue
        try:
            check_signed(plan.unsigned, answer.raw, answer.txid)
        except ValueError as error:
            failures[plan.job_id] = (SIGNING_FAILED, str(error))
            continue
        plan.signed = answer
    return failures


def signed_move(plan: Planned, batch_id: str) -> JobMove:
    assert plan.signed is not None
    utxo = plan.utxo
    return JobMove(
        plan.job_id,
        JobStatus.PROCESSING,
        JobStatus.SIGNED,
        "SIGNED",
        lease_token=plan.claim.lease_token,
        lease=LeaseChange.KEEP,
        error_reason="",
        error_detail="",
        tx=BuiltTx(
            txid=plan.signed.txid,
            raw_tx=plan.signed.raw,
            fee_satoshis=plan.unsigned.fee_satoshis,
            funding_txid=utxo.outpoint.txid,
            funding_vout=utxo.outpoint.vout,
            funding_satoshis=utxo.satoshis,
            funding_script=utxo.locking_script,
            change_key_id=plan.change_key_id if plan.unsigned.change is not None else "",
            utxo_lease_id=plan.lease.lease_id,
            utxo_fencing_token=plan.lease.fencing_token,
        ),
        batch_id=batch_id,
    )


def in_flight(plan: Planned) -> InFlightJob:
    """The job as the broadcast stage sees it once its signed transaction is stored."""
    move = signed_move(plan, "")
    assert move.tx is not None
    return InFlightJob(
        job_id=plan.job_id,
        status=JobStatus.SIGNED,
        lease_token=plan.claim.lease_token,
        tx=move.tx,
        attempts=plan.claim.job.attempts,
        builds=plan.claim.builds + 1,
        error_reason="",
        competing_txids=(),
        spend_committed=False,
        block_hash="",
        block_height=0,
    )
