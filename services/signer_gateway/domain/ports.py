"""What the gateway needs from the outside world, as interfaces."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

from services.signer_gateway.domain.models import KeyRecord


class SigningBackend(Protocol):
    # True when `sign` already verified every signature against the key's public key in this process
    # group; otherwise the gateway normalises and verifies each one itself.
    checks_signatures: bool

    async def sign(self, keys: Sequence[KeyRecord], digests: Sequence[bytes], timeout_s: float) -> list[bytes]:
        """DER signatures, one per (key, digest) pair, aligned with the input."""
        ...


class ExternalKms(SigningBackend, Protocol):
    async def probe_key(self, key_id: str, timeout_s: float) -> tuple[bytes, bytes]:
        """Sign `key_probe_digest(key_id)`: returns (public key, signature) so the gateway can learn
        the key's public key and check that the KMS really holds it."""
        ...


def key_probe_digest(key_id: str) -> bytes:
    """Domain-separated from sighashes: a probe signature can never spend anything."""
    return hashlib.sha256(f"proofline-signer-key-probe:{key_id}".encode()).digest()
