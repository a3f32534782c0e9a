"""Errors of chain lookups (status, UTXOs, headers, policy). Broadcasts never raise these: they
return a typed outcome instead."""

from __future__ import annotations

from proofline_kit.errors import DomainError, ErrorKind

from .outcomes import Provider

UNAVAILABLE_REASON = "CHAIN_PROVIDER_UNAVAILABLE"
BAD_RESPONSE_REASON = "CHAIN_PROVIDER_BAD_RESPONSE"


class ChainUnavailable(DomainError):
    """The provider gave no usable answer in time (after retries where they apply)."""

    def __init__(
        self,
        provider: Provider,
        message: str,
        *,
        http_status: int | None = None,
        attempts: int = 0,
        reason: str = UNAVAILABLE_REASON,
    ) -> None:
        metadata = {"provider": provider.value, "attempts": str(attempts)}
        if http_status is not None:
            metadata["http_status"] = str(http_status)
        super().__init__(ErrorKind.UNAVAILABLE, reason, message, metadata=metadata)
        self.provider = provider
        self.http_status = http_status
        self.attempts = attempts


class ChainResponseError(ChainUnavailable):
    """The provider answered, but not with anything we can read (wrong shape, wrong types)."""

    def __init__(self, provider: Provider, message: str, *, http_status: int | None = None) -> None:
        super().__init__(provider, message, http_status=http_status, attempts=1, reason=BAD_RESPONSE_REASON)
