"""The LISTEN side of job change notifications (the kit's ChangeHub on the jobs_notify channel)."""

from __future__ import annotations

import asyncpg

from proofline_kit.changes import ChangeHub


def job_changes_channel(schema: str) -> str:
    """The NOTIFY channel of the migration's jobs_notify trigger."""
    return f"{schema}_job_changes"


class JobChangeHub(ChangeHub):
    def __init__(self, pool: asyncpg.Pool, schema: str) -> None:
        super().__init__(pool, job_changes_channel(schema), "publisher.changes")
