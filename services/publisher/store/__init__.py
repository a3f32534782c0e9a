"""All SQL of the publisher, and the LISTEN side of job change notifications."""

from services.publisher.store.changes import JobChangeHub
from services.publisher.store.store import MIGRATIONS, PublisherStore
from services.publisher.store.unit_of_work import PublisherUnitOfWork

__all__ = ["MIGRATIONS", "JobChangeHub", "PublisherStore", "PublisherUnitOfWork"]
