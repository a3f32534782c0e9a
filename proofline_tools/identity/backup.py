"""An identity key and its SLIP-0039 backup: 5 shares, any 3 rebuild the key.

Shares 1 and 2 are for the wallet's backup storage (2 < 3: the service alone can never rebuild
the key), shares 3 to 5 are the user's. The upload of the service's shares plugs in as a
`ShareUploader`; `wallet_client.WalletBackupClient` is the wallet's (StoreBackupShares).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from proofline_tools.identity.shares import combine_shares, split_secret
from proofline_tools.signed_intents import IdentityKey

THRESHOLD: Final = 3
SHARE_COUNT: Final = 5
SERVICE_SHARES: Final = 2  # the first shares of the split; always below THRESHOLD


@dataclass(frozen=True, slots=True)
class Backup:
    """The 5 mnemonic shares of one key, in member order (share n is `shares[n - 1]`)."""

    pubkey: bytes
    shares: tuple[str, ...]

    @property
    def service_shares(self) -> tuple[str, ...]:
        """Shares 1-2: uploaded to the wallet's backup storage."""
        return self.shares[:SERVICE_SHARES]

    @property
    def user_shares(self) -> tuple[str, ...]:
        """Shares 3-5: for the user to write down."""
        return self.shares[SERVICE_SHARES:]

    def is_for_service(self, number: int) -> bool:
        """Whether share `number` (1-based) belongs to the service's part."""
        return number <= SERVICE_SHARES


class ShareUploader(Protocol):
    """Where the service's shares go (the wallet's StoreBackupShares: `WalletBackupClient`)."""

    def upload(self, pubkey: bytes, shares: Sequence[str]) -> None: ...


def back_up(key: IdentityKey, passphrase: bytes = b"") -> Backup:
    """Split `key` 3-of-5; the result checks itself (the service's shares plus one of the user's)."""
    shares = tuple(split_secret(key.secret, threshold=THRESHOLD, count=SHARE_COUNT, passphrase=passphrase))
    backup = Backup(key.pubkey, shares)
    if restore(shares[: THRESHOLD - 1] + shares[-1:], passphrase).pubkey != key.pubkey:
        raise RuntimeError("a fresh backup did not rebuild its key")
    return backup


def restore(mnemonics: Sequence[str], passphrase: bytes = b"") -> IdentityKey:
    """The key behind `mnemonics` (raises `ShareError`, or ValueError for a secret off the curve)."""
    return IdentityKey.from_secret(combine_shares(mnemonics, passphrase))
