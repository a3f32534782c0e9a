"""Keys generated inside the gateway, sealed under the master key in the database."""

from __future__ import annotations

import os
from collections.abc import Sequence

from services.signer_gateway.domain import ecdsa
from services.signer_gateway.domain.keystore import MasterKeyring, SealedSecret
from services.signer_gateway.domain.models import KeyRecord


class LocalKeystoreBackend:
    def __init__(self, keyring: MasterKeyring) -> None:
        self._keyring = keyring

    def generate(self, key_id: str) -> tuple[bytes, SealedSecret]:
        """A new random key: its public key and its sealed secret. The plaintext is dropped here."""
        while True:
            secret = os.urandom(32)
            if ecdsa.is_valid_secret(secret):
                return ecdsa.public_key_of(secret), self._keyring.seal(key_id, secret)

    def reseal(self, key_id: str, sealed: SealedSecret) -> SealedSecret:
        """The same secret sealed under the current master key version (rotation)."""
        return self._keyring.seal(key_id, self._keyring.open(key_id, sealed))

    @property
    def current_master_key_version(self) -> int:
        return self._keyring.current_version

    async def sign(self, keys: Sequence[KeyRecord], digests: Sequence[bytes], timeout_s: float) -> list[bytes]:
        secrets: dict[str, bytes] = {}
        signatures = []
        for key, digest in zip(keys, digests, strict=True):
            secret = secrets.get(key.key_id)
            if secret is None:
                if key.sealed_secret is None:
                    raise ValueError(f"key {key.key_id} has no local secret")
                secret = secrets[key.key_id] = self._keyring.open(key.key_id, key.sealed_secret)
            signatures.append(ecdsa.sign_digest(secret, digest))
        return signatures
