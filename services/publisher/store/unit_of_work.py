"""The publisher's unit of work: every query family over one connection."""

from __future__ import annotations

from proofline_kit.idempotency import RecordedAnswers
from services.publisher.store.claims import ClaimQueries
from services.publisher.store.confirmations import ConfirmationQueries
from services.publisher.store.identities import IdentityQueries
from services.publisher.store.intake import IntakeQueries
from services.publisher.store.moves import MoveQueries


class PublisherUnitOfWork(
    RecordedAnswers, IdentityQueries, IntakeQueries, ClaimQueries, MoveQueries, ConfirmationQueries
):
    """One database transaction of the publisher (or autocommit reads, from `PublisherStore.reader`)."""
