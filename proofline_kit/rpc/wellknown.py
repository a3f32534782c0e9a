"""google.protobuf Timestamp and Duration to and from the domain's types, the same for every service."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def datetime_of(stamp: Timestamp, present: bool) -> datetime | None:
    return stamp.ToDatetime(tzinfo=UTC) if present else None


def duration_seconds(duration: Duration, present: bool) -> float | None:
    return duration.seconds + duration.nanos / 1e9 if present else None
