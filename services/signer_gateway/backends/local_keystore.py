"""Keys generated inside the gateway, sealed under the master key in the database."""

from __future__ import annotations

import os
from collections.abc import Sequence

from services.signer_gateway.domain import ecdsa
from services.signer_gateway.domain.crypto_pool import CryptoPool
from services.signer_gateway.domain.keystore import MasterKeyring, SealedSecret
from services.signer_gateway.domain.models import KeyRecord
from services.signer_gateway.domain.ports import LocalSignatureCheckFailed

UNSEALED_CACHE_KEYS = 4096


class LocalKeystoreBackend:
    checks_signatures = True

    def __init__(self, keyring: MasterKeyring, crypto: CryptoPool) -> None:
        self._keyring = keyring
        self._crypto = crypto
        # Unsealed secrets already checked against their public keys, by row version (oldest first).
        self._unsealed: dict[tuple[str, bytes, bytes, bytes, int], bytes] = {}

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

    def unseal(self, key: KeyRecord) -> bytes:
        """The key's secret, checked once to be the secret of its public key (Q == d*G) and kept.

        The signing check in the crypto workers (a fixed-base multiplication, see
        `ecdsa.sign_and_check_with_secret`) is the ECDSA verification only for that secret, so a
        secret that does not match the stored public key never signs anything."""
        sealed = key.sealed_secret
        if sealed is None:
            raise ValueError(f"key {key.key_id} has no local secret")
        cache_key = (key.key_id, key.public_key, sealed.ciphertext, sealed.nonce, sealed.master_key_version)
        secret = self._unsealed.get(cache_key)
        if secret is None:
            secret = self._keyring.open(key.key_id, sealed)
            if ecdsa.public_key_of(secret) != key.public_key:
                raise LocalSignatureCheckFailed(key.key_id)
            if len(self._unsealed) >= UNSEALED_CACHE_KEYS:
                self._unsealed.pop(next(iter(self._unsealed)))
            self._unsealed[cache_key] = secret
        return secret

    async def sign(self, keys: Sequence[KeyRecord], digests: Sequence[bytes], timeout_s: float) -> list[bytes]:
        opened: dict[str, bytes] = {}
        for key in keys:
            if key.key_id not in opened:
                opened[key.key_id] = self.unseal(key)
        signatures = await self._crypto.sign_checked(
            [opened[k.key_id] for k in keys], [k.public_key for k in keys], digests
        )
        failed = [k.key_id for k, s in zip(keys, signatures, strict=True) if s is None]
        if failed:
            raise LocalSignatureCheckFailed(failed[0])
        return [s for s in signatures if s is not None]
