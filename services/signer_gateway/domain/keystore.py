"""Encryption of locally generated private keys under a versioned master key (AES-256-GCM)."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MASTER_KEY_BYTES = 32
NONCE_BYTES = 12


class MasterKeyError(ValueError):
    """The master key configuration is missing or malformed (never contains key material)."""


@dataclass(frozen=True, slots=True)
class SealedSecret:
    ciphertext: bytes
    nonce: bytes
    master_key_version: int


class MasterKeyring:
    """Master keys by version; new secrets are sealed under the newest one."""

    def __init__(self, keys: dict[int, bytes]) -> None:
        if not keys:
            raise MasterKeyError("no master key configured")
        for version, key in keys.items():
            if version < 1 or len(key) != MASTER_KEY_BYTES:
                raise MasterKeyError(f"master key version {version} must be 32 bytes with version >= 1")
        self._keys = dict(keys)
        self.current_version = max(keys)

    def __repr__(self) -> str:
        return f"MasterKeyring(versions={sorted(self._keys)})"

    @classmethod
    def parse(cls, spec: str) -> MasterKeyring:
        """`version:base64,version:base64` (the highest version is current)."""
        keys: dict[int, bytes] = {}
        for entry in filter(None, (p.strip() for p in spec.replace("\n", ",").split(","))):
            version, sep, encoded = entry.partition(":")
            if not sep or not version.isdigit():
                raise MasterKeyError("master keys must look like version:base64")
            try:
                keys[int(version)] = base64.b64decode(encoded, validate=True)
            except ValueError as exc:
                raise MasterKeyError(f"master key version {version} is not valid base64") from exc
        return cls(keys)

    @classmethod
    def from_file(cls, path: Path) -> MasterKeyring:
        """A file of `version:base64` lines, or exactly 32 raw bytes (version 1)."""
        data = path.read_bytes()
        if len(data) == MASTER_KEY_BYTES:
            return cls({1: data})
        try:
            return cls.parse(data.decode())
        except UnicodeDecodeError as exc:
            raise MasterKeyError(f"{path} holds neither 32 raw bytes nor version:base64 lines") from exc

    def seal(self, key_id: str, secret: bytes) -> SealedSecret:
        nonce = os.urandom(NONCE_BYTES)
        aead = AESGCM(self._keys[self.current_version])
        ciphertext = aead.encrypt(nonce, secret, _associated_data(key_id, self.current_version))
        return SealedSecret(ciphertext, nonce, self.current_version)

    def open(self, key_id: str, sealed: SealedSecret) -> bytes:
        key = self._keys.get(sealed.master_key_version)
        if key is None:
            raise MasterKeyError(f"master key version {sealed.master_key_version} is not configured")
        return AESGCM(key).decrypt(sealed.nonce, sealed.ciphertext, _associated_data(key_id, sealed.master_key_version))


def _associated_data(key_id: str, version: int) -> bytes:
    # Binds a ciphertext to its row: it cannot be moved to another key id or version.
    return f"proofline-signer:{key_id}:{version}".encode()
