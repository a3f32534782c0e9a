"""The backup shares' sealing: AES-256-GCM under the wallet's backup KEK (WALLET_BACKUP_KEK)."""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.wallet.domain.ports import SealedShare

KEK_BYTES = 32
NONCE_BYTES = 12


def parse_kek(text: str) -> bytes | None:
    """32 bytes written as 64 hex digits or as base64; None when it is neither."""
    text = text.strip()
    try:
        raw = bytes.fromhex(text) if len(text) == 2 * KEK_BYTES else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        return None
    return raw if len(raw) == KEK_BYTES else None


class AesGcmSealer:
    """A fresh random 96-bit nonce per seal (at most 2 shares per key: far below GCM's limits)."""

    def __init__(self, kek: bytes, version: int = 1) -> None:
        if len(kek) != KEK_BYTES:
            raise ValueError("the backup KEK must be 32 bytes")
        self._aead = AESGCM(kek)
        self._version = version

    def __repr__(self) -> str:
        return f"AesGcmSealer(version={self._version})"

    async def seal(self, plaintext: bytes, associated_data: bytes) -> SealedShare:
        nonce = os.urandom(NONCE_BYTES)
        return SealedShare(self._version, nonce, self._aead.encrypt(nonce, plaintext, associated_data))

    async def open(self, sealed: SealedShare, associated_data: bytes) -> bytes | None:
        if sealed.kek_version != self._version or len(sealed.nonce) != NONCE_BYTES:
            return None
        try:
            return self._aead.decrypt(sealed.nonce, sealed.ciphertext, associated_data)
        except InvalidTag:
            return None
