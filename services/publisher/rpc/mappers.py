"""Translation between publisher protos and domain objects."""

from __future__ import annotations

from typing import cast

from proofline.common.v1 import common_pb2
from proofline.publisher.v1 import publisher_pb2

from proofline_kit.intents.models import SignedIntent
from proofline_kit.rpc.status import to_item_error
from proofline_kit.rpc.wellknown import datetime_of, timestamp
from services.publisher.domain.intake_outcomes import Outcome
from services.publisher.domain.models import Identity, IdentityStatus, Job, JobFilter, JobStatus

ERROR_DOMAIN = "proofline.publisher"

_JOB_STATUSES = {
    publisher_pb2.JOB_STATUS_QUEUED: JobStatus.QUEUED,
    publisher_pb2.JOB_STATUS_PROCESSING: JobStatus.PROCESSING,
    publisher_pb2.JOB_STATUS_SIGNED: JobStatus.SIGNED,
    publisher_pb2.JOB_STATUS_SENT: JobStatus.SENT,
    publisher_pb2.JOB_STATUS_CONFIRMED: JobStatus.CONFIRMED,
    publisher_pb2.JOB_STATUS_FAILED: JobStatus.FAILED,
}
_JOB_STATUSES_OUT = {v: k for k, v in _JOB_STATUSES.items()}
_IDENTITY_STATUSES = {
    publisher_pb2.IDENTITY_STATUS_ACTIVE: IdentityStatus.ACTIVE,
    publisher_pb2.IDENTITY_STATUS_REVOKED: IdentityStatus.REVOKED,
}
_IDENTITY_STATUSES_OUT = {v: k for k, v in _IDENTITY_STATUSES.items()}


def job_status_from_proto(value: int) -> JobStatus | None:
    """None for UNSPECIFIED (and unknown values, which proto3 may carry)."""
    return _JOB_STATUSES.get(cast(publisher_pb2.JobStatus.ValueType, value))


def identity_status_from_proto(value: int) -> IdentityStatus | None:
    return _IDENTITY_STATUSES.get(cast(publisher_pb2.IdentityStatus.ValueType, value))


def full_view(value: int) -> bool:
    return value == publisher_pb2.JOB_VIEW_FULL


def intent_from_proto(intent: publisher_pb2.SignedIntent) -> SignedIntent:
    return SignedIntent(signed_payload=intent.signed_payload, signature=intent.signature, pubkey=intent.pubkey)


def identity_to_proto(identity: Identity) -> publisher_pb2.Identity:
    return publisher_pb2.Identity(
        pubkey=identity.pubkey,
        label=identity.label,
        owner_ref=identity.owner_ref,
        status=_IDENTITY_STATUSES_OUT[identity.status],
        registered_by=identity.registered_by,
        create_time=timestamp(identity.created_at),
        revoke_time=timestamp(identity.revoked_at),
        revoke_reason=identity.revoke_reason,
    )


def job_to_proto(job: Job) -> publisher_pb2.Job:
    message = publisher_pb2.Job(
        job_id=job.job_id,
        intent_digest=job.intent_digest,
        identity_pubkey=job.identity_pubkey,
        nonce=job.nonce,
        status=_JOB_STATUSES_OUT[job.status],
        txid=job.txid,
        raw_tx=job.raw_tx,
        fee_satoshis=job.fee_satoshis,
        block_hash=job.block_hash,
        block_height=job.block_height,
        error_reason=job.error_reason,
        error_detail=job.error_detail,
        attempts=job.attempts,
        batch_id=job.batch_id,
        intent_expire_time=timestamp(job.intent_expires_at),
        create_time=timestamp(job.created_at),
        update_time=timestamp(job.updated_at),
        sign_time=timestamp(job.signed_at),
        sent_time=timestamp(job.sent_at),
        confirm_time=timestamp(job.confirmed_at),
    )
    if job.status is JobStatus.CONFIRMED:
        message.merkle_proof.CopyFrom(
            common_pb2.MerkleProof(bump=job.merkle_bump, block_hash=job.block_hash, block_height=job.block_height)
        )
    if job.intent is not None:
        message.intent.CopyFrom(
            publisher_pb2.SignedIntent(
                signed_payload=job.intent.signed_payload, signature=job.intent.signature, pubkey=job.intent.pubkey
            )
        )
    return message


def result_to_proto(outcome: Outcome) -> publisher_pb2.PublishResult:
    if outcome.job is not None:
        return publisher_pb2.PublishResult(job=job_to_proto(outcome.job), deduplicated=outcome.deduplicated)
    assert outcome.error is not None
    return publisher_pb2.PublishResult(error=to_item_error(outcome.error, ERROR_DOMAIN))


def job_filter_from_proto(request: publisher_pb2.ListJobsRequest) -> JobFilter:
    statuses = []
    for value in request.statuses:
        status = job_status_from_proto(value)
        if status is not None:
            statuses.append(status)
    return JobFilter(
        statuses=tuple(sorted(set(statuses), key=lambda s: s.value)),
        identity_pubkey=request.identity_pubkey,
        start_time=datetime_of(request.start_time, request.HasField("start_time")),
        end_time=datetime_of(request.end_time, request.HasField("end_time")),
        txid=request.txid,
        batch_id=request.batch_id,
    )
