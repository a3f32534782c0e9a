"""Translation between the identity side's protos (the publisher's own messages, re-exposed by
wallet.proto) and the domain: intents in, identities out, jobs and batch results handed back as the
publisher gave them."""

from __future__ import annotations

from proofline.common.v1 import common_pb2
from proofline.publisher.v1 import publisher_pb2

from proofline_kit.errors import DomainError
from proofline_kit.intents.models import SignedIntent
from proofline_kit.rpc.status import to_item_error
from proofline_kit.rpc.wellknown import timestamp
from services.wallet.domain.models import ForwardedJob, ForwardedResult, Identity, IdentityStatus
from services.wallet.rpc.mappers import ERROR_DOMAIN

_STATUSES_IN: dict[publisher_pb2.IdentityStatus.ValueType, IdentityStatus] = {
    publisher_pb2.IDENTITY_STATUS_ACTIVE: IdentityStatus.ACTIVE,
    publisher_pb2.IDENTITY_STATUS_REVOKED: IdentityStatus.REVOKED,
}
_STATUSES_OUT: dict[IdentityStatus, publisher_pb2.IdentityStatus.ValueType] = {v: k for k, v in _STATUSES_IN.items()}


def intent_from_proto(intent: publisher_pb2.SignedIntent) -> SignedIntent:
    return SignedIntent(intent.signed_payload, intent.signature, intent.pubkey)


def identity_status_from_proto(status: publisher_pb2.IdentityStatus.ValueType) -> IdentityStatus | None:
    return _STATUSES_IN.get(status)


def identity_to_proto(identity: Identity) -> publisher_pb2.Identity:
    return publisher_pb2.Identity(
        pubkey=identity.pubkey,
        label=identity.label,
        owner_ref=identity.owner_ref,
        status=_STATUSES_OUT[identity.status],
        registered_by=identity.registered_by,
        create_time=timestamp(identity.created_at),
        revoke_time=timestamp(identity.revoked_at),
        revoke_reason=identity.revoke_reason,
    )


def job_to_proto(job: ForwardedJob) -> publisher_pb2.Job:
    assert isinstance(job.message, publisher_pb2.Job)
    return job.message


def result_to_proto(result: ForwardedResult | DomainError) -> publisher_pb2.PublishResult:
    if isinstance(result, DomainError):
        return publisher_pb2.PublishResult(error=_item_error(result))
    assert isinstance(result.message, publisher_pb2.PublishResult)
    return result.message


def _item_error(error: DomainError) -> common_pb2.ItemError:
    return to_item_error(error, ERROR_DOMAIN)
