"""What the gateway needs from the outside world, as interfaces."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from services.signer_gateway.domain.keystore import SealedSecret
from services.signer_gateway.domain.models import AuditEntry, Backend, KeyPolicy, KeyRecord, KeySpend


class SigningBackend(Protocol):
    # True when `sign` already verified every signature against the key's public key in this process
    # group; otherwise the gateway normalises and verifies each one itself.
    checks_signatures: bool

    async def sign(self, keys: Sequence[KeyRecord], digests: Sequence[bytes], timeout_s: float) -> list[bytes]:
        """DER signatures, one per (key, digest) pair, aligned with the input."""
        ...


class LocalSignatureCheckFailed(Exception):
    """A locally made signature did not verify (memory or hardware fault); nothing may leave."""

    def __init__(self, key_id: str) -> None:
        super().__init__(key_id)
        self.key_id = key_id


class LocalKeyBackend(SigningBackend, Protocol):
    """Keys generated inside the gateway, sealed under the master key; `sign` raises
    LocalSignatureCheckFailed when a signature does not verify."""

    def generate(self, key_id: str) -> tuple[bytes, SealedSecret]:
        """A new random key: its public key and its sealed secret."""
        ...

    def reseal(self, key_id: str, sealed: SealedSecret) -> SealedSecret:
        """The same secret sealed under the current master key version (rotation)."""
        ...

    @property
    def current_master_key_version(self) -> int: ...


class ExternalKms(SigningBackend, Protocol):
    async def probe_key(self, key_id: str, timeout_s: float) -> tuple[bytes, bytes]:
        """Sign `key_probe_digest(key_id)`: returns (public key, signature) so the gateway can learn
        the key's public key and check that the KMS really holds it."""
        ...


class UnitOfWork(Protocol):
    """One database transaction of the gateway."""

    async def keys_by_id(self, key_ids: Sequence[str], *, for_update: bool = False) -> dict[str, KeyRecord]: ...

    async def insert_key(
        self, key_id: str, backend: Backend, public_key: bytes, sealed: SealedSecret | None, policy: KeyPolicy
    ) -> KeyRecord | None:
        """None when the key id is taken."""
        ...

    async def set_policy(self, key_id: str, policy: KeyPolicy) -> KeyRecord | None:
        """None when there is no such key."""
        ...

    async def list_keys(self, after: str, limit: int) -> list[KeyRecord]: ...

    async def keys_sealed_before(self, version: int) -> list[KeyRecord]:
        """Locked for update."""
        ...

    async def reseal(self, key_id: str, sealed: SealedSecret) -> None: ...

    async def sent_last_24h(self, key_ids: Sequence[str], now: datetime) -> dict[str, int]: ...

    async def record_spends(self, spends: Sequence[KeySpend]) -> None:
        """A (key, txid) already recorded is not counted twice."""
        ...

    async def append_audit(self, entries: Sequence[AuditEntry]) -> None: ...

    async def find_answer(self, caller_id: str, method: str, request_id: str, fingerprint: bytes) -> bytes | None: ...

    async def record_answer(
        self, caller_id: str, method: str, request_id: str, fingerprint: bytes, answer: bytes
    ) -> None: ...


class Store(Protocol):
    def unit_of_work(self) -> AbstractAsyncContextManager[UnitOfWork]: ...


def key_probe_digest(key_id: str) -> bytes:
    """Domain-separated from sighashes: a probe signature can never spend anything."""
    return hashlib.sha256(f"proofline-signer-key-probe:{key_id}".encode()).digest()
