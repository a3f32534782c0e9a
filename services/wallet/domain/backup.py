"""Backup storage of identity-key shares, and their recovery after a mailed one-time code.

The client splits a key 3-of-5 with SLIP-0039 and hands the wallet shares 1-2. The wallet keeps at
most `MAX_SHARES` (2) per key, ever, so the suite alone never holds enough to rebuild a key; it
refuses shares of a split whose threshold is below 3 (two of those would be the key). Each share
is sealed with AES-256-GCM by the `ShareSealer`; the associated data binds the account, the key,
the slot and the share's member index, so a row moved to another account or key fails to open.

Recovery: BeginRecovery mails a fresh code (purpose `recovery`) to the account's address and is
rate-limited per account and per key; CompleteRecovery verifies it, consumes it (one code, one
release), opens every kept share (any that fails to open: BACKUP_UNREADABLE, nothing released),
records the release in `backup_releases`, and only then answers the shares."""

from __future__ import annotations

import hashlib
import re
import secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from shamir_mnemonic import MnemonicError, Share

from proofline_kit.auth import Caller
from proofline_kit.errors import DomainError, ErrorKind, invalid_argument
from proofline_kit.idempotency import check_request_id, request_fingerprint
from proofline_kit.intents import signatures
from services.wallet.domain.access import require_wallet_role
from services.wallet.domain.accounts import require_account
from services.wallet.domain.models import Account
from services.wallet.domain.otp import OneTimeCodes
from services.wallet.domain.ports import RateLimiter, ShareSealer, Store, StoredShare, UnitOfWork
from services.wallet.domain.signup import normalise_email

MAX_SHARES = 2
MIN_THRESHOLD = 3
_AAD_DOMAIN = b"proofline/wallet/backup-share/v1"
_RECOVERY_ID = re.compile(r"^rc_[0-9a-f]{32}$")
_RATE_WINDOW_S = 86_400


@dataclass(frozen=True, slots=True)
class RecoveryStarted:
    recovery_id: str
    expires_at: float
    max_attempts: int


@dataclass(frozen=True, slots=True)
class ReleasedShares:
    account_id: str
    pubkey: bytes
    shares: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Decoded:
    mnemonic: str
    share: Share

    @property
    def split(self) -> str:
        """What every share of one split has in common (never the share's value)."""
        s = self.share
        return f"{s.identifier}:{int(s.extendable)}:{s.iteration_exponent}:{s.group_count}:{s.member_threshold}"


def associated_data(account_id: str, pubkey: bytes, slot: int, member_index: int) -> bytes:
    """Length-prefixed domain string and account id, then the 33-byte key, the slot and the index."""
    account = account_id.encode()
    return b"".join(
        (
            struct.pack(">H", len(_AAD_DOMAIN)),
            _AAD_DOMAIN,
            struct.pack(">H", len(account)),
            account,
            struct.pack(">H", len(pubkey)),
            pubkey,
            struct.pack(">BB", slot, member_index),
        )
    )


def _not_in_account(pubkey: bytes) -> DomainError:
    return DomainError(
        ErrorKind.PERMISSION_DENIED,
        "IDENTITY_NOT_IN_ACCOUNT",
        "the key is not linked to the account",
        metadata={"pubkey": pubkey.hex()[:66]},
    )


def _recovery_not_found() -> DomainError:
    return DomainError(
        ErrorKind.NOT_FOUND, "RECOVERY_NOT_FOUND", "no such recovery (unknown, used, another caller's or long expired)"
    )


def _decode(index: int, mnemonic: str) -> _Decoded:
    words = " ".join(mnemonic.lower().split())
    try:
        share = Share.from_mnemonic(words)
    except (MnemonicError, ValueError, KeyError):
        # The error of the decoder may quote words: not repeated.
        raise invalid_argument(
            "SHARE_INVALID", f"shares[{index}]", "not a SLIP-0039 share (words or checksum)"
        ) from None
    if share.group_count != 1 or share.member_threshold < MIN_THRESHOLD:
        raise invalid_argument(
            "SHARE_THRESHOLD_TOO_LOW",
            f"shares[{index}]",
            f"a share of a single-group split with a threshold of at least {MIN_THRESHOLD}",
        )
    return _Decoded(words, share)


def _mismatch(detail: str) -> DomainError:
    return invalid_argument("SHARES_MISMATCH", "shares", detail)


async def _require_own_key(uow: UnitOfWork, account_id: str, pubkey: bytes) -> Account:
    """The account, when `pubkey` is linked to it and registered (revoked keys included)."""
    account = await require_account(uow, account_id)
    link = await uow.identity_link(pubkey) if len(pubkey) == signatures.PUBKEY_BYTES else None
    if link is None or link.account_id != account_id or link.identity is None:
        raise _not_in_account(pubkey)
    return account


class BackupShares:
    def __init__(
        self,
        store: Store,
        sealer: ShareSealer,
        codes: OneTimeCodes,
        per_account: RateLimiter,
        per_key: RateLimiter,
    ) -> None:
        self._store = store
        self._sealer = sealer
        self._codes = codes
        self._per_account = per_account
        self._per_key = per_key

    async def store_shares(
        self, caller: Caller, request_id: str, account_id: str, pubkey: bytes, mnemonics: Sequence[str]
    ) -> int:
        """Seals and keeps 1-2 shares of the account's key; the number kept for it after this call."""
        require_wallet_role(caller)
        check_request_id(request_id)
        if not 1 <= len(mnemonics) <= MAX_SHARES:
            raise invalid_argument("SHARES_INVALID", "shares", f"1-{MAX_SHARES} shares")
        decoded = [_decode(i, m) for i, m in enumerate(mnemonics)]
        if len({d.split for d in decoded}) != 1:
            raise _mismatch("the shares are not of one split")
        if len({d.share.index for d in decoded}) != len(decoded):
            raise _mismatch("the same share twice")
        # The fingerprint is a hash of the shares: the recorded answers hold no share.
        fingerprint = request_fingerprint(
            account_id, pubkey.hex(), hashlib.sha256("\n".join(d.mnemonic for d in decoded).encode()).hexdigest()
        )
        async with self._store.unit_of_work() as uow:
            await _require_own_key(uow, account_id, pubkey)
            recorded = await uow.find_answer(caller.caller_id, "StoreBackupShares", request_id, fingerprint)
            if recorded is not None:
                return int(orjson.loads(recorded)["stored"])
            kept = await uow.lock_backup_shares(pubkey)
            if kept and kept[0].split != decoded[0].split:
                raise _mismatch("the shares are not of the split already kept for this key")
            taken = {k.member_index for k in kept}
            if any(d.share.index in taken for d in decoded):
                raise DomainError(
                    ErrorKind.ALREADY_EXISTS, "SHARE_ALREADY_STORED", "this share is already kept for the key"
                )
            if len(kept) + len(decoded) > MAX_SHARES:
                raise DomainError(
                    ErrorKind.FAILED_PRECONDITION,
                    "BACKUP_FULL",
                    f"at most {MAX_SHARES} shares of a key are kept (fewer than rebuild it)",
                    metadata={"stored": str(len(kept))},
                )
            new = []
            for slot, d in enumerate(decoded, start=len(kept) + 1):
                aad = associated_data(account_id, pubkey, slot, d.share.index)
                new.append(
                    StoredShare(
                        account_id,
                        pubkey,
                        slot,
                        d.share.index,
                        d.split,
                        await self._sealer.seal(d.mnemonic.encode(), aad),
                    )
                )
            await uow.insert_backup_shares(new, caller.caller_id)
            stored = len(kept) + len(new)
            await uow.record_answer(
                caller.caller_id, "StoreBackupShares", request_id, fingerprint, orjson.dumps({"stored": stored})
            )
        return stored

    async def begin_recovery(self, caller: Caller, account_id: str, pubkey: bytes) -> RecoveryStarted:
        require_wallet_role(caller)
        async with self._store.reader() as uow:
            account = await _require_own_key(uow, account_id, pubkey)
            kept = await uow.backup_shares(pubkey)
        if not kept:
            raise DomainError(ErrorKind.FAILED_PRECONDITION, "BACKUP_NOT_FOUND", "no shares are kept for this key")
        try:
            email = normalise_email(account.external_id)
        except DomainError:
            raise DomainError(
                ErrorKind.FAILED_PRECONDITION,
                "RECOVERY_EMAIL_MISSING",
                "the account has no email address to mail a recovery code to",
            ) from None
        [account_ok] = await self._per_account.allow([account_id])
        [key_ok] = await self._per_key.allow([pubkey.hex()])
        if not (account_ok and key_ok):
            raise DomainError(
                ErrorKind.RESOURCE_EXHAUSTED,
                "RECOVERY_RATE_LIMITED",
                "too many recoveries; try again later",
                metadata={"limit": "per account" if not account_ok else "per key"},
                retry_after_ms=_RATE_WINDOW_S * 1000,
            )
        recovery_id = f"rc_{secrets.token_hex(16)}"
        subject = "\n".join((caller.caller_id, account_id, pubkey.hex()))
        expires_at = await self._codes.issue(
            recovery_id, subject, email, "Your Proofline recovery code", "Proofline key recovery code"
        )
        return RecoveryStarted(recovery_id, expires_at, self._codes.max_attempts)

    async def complete_recovery(self, caller: Caller, recovery_id: str, code: str) -> ReleasedShares:
        require_wallet_role(caller)
        if not _RECOVERY_ID.match(recovery_id):
            raise _recovery_not_found()
        pending = await self._codes.verify(recovery_id, code, _recovery_not_found)
        begun_by, account_id, pubkey_hex = pending.subject.split("\n")
        if begun_by != caller.caller_id:
            raise _recovery_not_found()
        # One code, one release: of two completions racing with the right code, one consumes it.
        if not await self._codes.consume(recovery_id):
            raise _recovery_not_found()
        pubkey = bytes.fromhex(pubkey_hex)
        async with self._store.unit_of_work() as uow:
            await _require_own_key(uow, account_id, pubkey)
            kept = await uow.backup_shares(pubkey)
            shares = tuple([await self._open(k) for k in kept])
            if not shares:
                raise DomainError(ErrorKind.FAILED_PRECONDITION, "BACKUP_NOT_FOUND", "no shares are kept for this key")
            await uow.record_backup_release(account_id, pubkey, caller.caller_id, recovery_id, len(shares))
        return ReleasedShares(account_id, pubkey, shares)

    async def _open(self, kept: StoredShare) -> str:
        aad = associated_data(kept.account_id, kept.pubkey, kept.slot, kept.member_index)
        opened = await self._sealer.open(kept.sealed, aad)
        if opened is None:
            raise DomainError(
                ErrorKind.INTERNAL,
                "BACKUP_UNREADABLE",
                "a kept share failed to open (tampered, or moved); nothing is released",
                metadata={"slot": str(kept.slot)},
            )
        return opened.decode()
