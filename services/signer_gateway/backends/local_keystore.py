"""Keys generated inside the gateway, sealed under the master key in the database."""

from __future__ import annotations

import os
from collections.abc import Sequence

from services.signer_gateway.domain import ecdsa
from services.signer_gateway.domain.crypto_pool import CryptoPool
from services.signer_gateway.domain.keystore import MasterKeyring, SealedSecret
from services.signer_gateway.domain.models import KeyRecord


class LocalSignatureCheckFailed(Exception):
    """A locally made signature did not verify (memory or hardware fault); nothing may leave."""

    def __init__(self, key_id: str) -> None:
        super().__init__(key_id)
        self.key_id = key_id


class LocalKeystoreBackend:
    checks_signatures = True

    def __init__(self, keyring: MasterKeyring, crypto: CryptoPool) -> None:
        self._keyring = keyring
        self._crypto = crypto

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
        opened: dict[str, bytes] = {}
        for key in keys:
            if key.key_id not in opened:
                if key.sealed_secret is None:
                    raise ValueError(f"key {key.key_id} has no local secret")
                opened[key.key_id] = self._keyring.open(key.key_id, key.sealed_secret)
        signatures = await self._crypto.sign_checked(
            [opened[k.key_id] for k in keys], [k.public_key for k in keys], digests
        )
        failed = [k.key_id for k, s in zip(keys, signatures, strict=True) if s is None]
        if failed:
            raise LocalSignatureCheckFailed(failed[0])
        return [s for s in signatures if s is not None]
