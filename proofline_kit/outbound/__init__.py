"""Outbound HTTP calls: a time budget that travels with the call, and retries with jittered
backoff only where another try can help (429, 5xx, timeouts, broken connections)."""

from .deadline import Clock, Deadline
from .http_caller import GiveUp, HttpCaller, Sleep
from .retry import RetryPolicy, is_retryable_error, is_retryable_status, parse_retry_after

__all__ = [
    "Clock",
    "Deadline",
    "GiveUp",
    "HttpCaller",
    "RetryPolicy",
    "Sleep",
    "is_retryable_error",
    "is_retryable_status",
    "parse_retry_after",
]
