"""Identity keys of accounts: linked in the wallet's schema, registered with the publisher.

RegisterIdentity checks the consent proof before anything is stored, claims the key for the
account (a pending link: two accounts racing for one key meet at the primary key, and the loser
never reaches the publisher), then registers it with the publisher under a request id that follows
from the account, key and label (a retry after a lost answer replays the publisher's answer), and
stores what the publisher answered. A refusal, or a publisher that could not be reached, drops the
pending link again."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime

import orjson

from proofline_kit.auth import Caller
from proofline_kit.errors import DomainError, ErrorKind, invalid_argument
from proofline_kit.idempotency import check_request_id, request_fingerprint
from proofline_kit.intents import signatures
from proofline_kit.intents.checks import IntakePolicy
from proofline_kit.intents.models import SignedIntent
from services.wallet.domain.access import require_account_access, require_wallet_role
from services.wallet.domain.accounts import require_account
from services.wallet.domain.consent import check_proof
from services.wallet.domain.models import Identity, IdentityStatus, Page
from services.wallet.domain.ports import Publisher, Store

MAX_LABEL = 128
MAX_REVOKE_REASON = 512


def identity_not_found(pubkey: bytes) -> DomainError:
    return DomainError(
        ErrorKind.NOT_FOUND,
        "IDENTITY_NOT_FOUND",
        "no identity key with this pubkey is linked to the account",
        metadata={"pubkey": pubkey.hex()[:66]},
    )


def _register_request_id(account_id: str, pubkey: bytes, label: str) -> str:
    digest = hashlib.sha256(f"{account_id}\x00{pubkey.hex()}\x00{label}".encode()).hexdigest()
    return f"wreg-{digest[:48]}"


class Identities:
    def __init__(
        self,
        store: Store,
        publisher: Publisher,
        proof_policy: IntakePolicy,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._policy = proof_policy
        self._clock = clock

    async def register(
        self, caller: Caller, request_id: str, account_id: str, pubkey: bytes, label: str, proof: SignedIntent | None
    ) -> Identity:
        require_wallet_role(caller)
        check_request_id(request_id)
        if not signatures.is_compressed_pubkey(pubkey):
            raise invalid_argument("PUBKEY_INVALID", "pubkey", "must be a 33-byte compressed secp256k1 public key")
        if not 1 <= len(label) <= MAX_LABEL:
            raise invalid_argument("LABEL_INVALID", "label", f"1-{MAX_LABEL} characters")
        check_proof(proof, pubkey, account_id, self._policy, self._clock())
        fingerprint = request_fingerprint(account_id, pubkey.hex(), label)
        async with self._store.unit_of_work() as uow:
            await require_account(uow, account_id)
            if await uow.find_answer(caller.caller_id, "RegisterIdentity", request_id, fingerprint) is not None:
                recorded = await uow.identity_link(pubkey)
                if recorded is not None and recorded.identity is not None:
                    return recorded.identity
            link = await uow.claim_identity(pubkey, account_id, label, caller.caller_id)
        if link.account_id != account_id:
            raise DomainError(
                ErrorKind.ALREADY_EXISTS,
                "IDENTITY_ALREADY_REGISTERED",
                "this key is linked to another account",
                metadata={"pubkey": pubkey.hex()},
            )
        if link.identity is not None:
            return link.identity  # already linked to this account: unchanged
        try:
            identity = await self._publisher.register_identity(
                _register_request_id(account_id, pubkey, link.label), pubkey, link.label, account_id
            )
        except DomainError:
            async with self._store.unit_of_work() as uow:
                await uow.drop_pending_identity(pubkey, account_id)
            raise
        async with self._store.unit_of_work() as uow:
            await uow.store_identity(account_id, identity)
            await uow.record_answer(
                caller.caller_id, "RegisterIdentity", request_id, fingerprint, orjson.dumps({"pubkey": pubkey.hex()})
            )
        return identity

    async def revoke(
        self, caller: Caller, request_id: str, account_id: str, pubkey: bytes, reason: str, cancel_queued_jobs: bool
    ) -> tuple[Identity, int]:
        """Forwarded with the caller's request_id: the publisher's own replay makes a retry safe."""
        require_wallet_role(caller)
        check_request_id(request_id)
        if len(reason) > MAX_REVOKE_REASON:
            raise invalid_argument("REASON_INVALID", "reason", f"at most {MAX_REVOKE_REASON} characters")
        async with self._store.reader() as uow:
            await require_account(uow, account_id)
            link = await uow.identity_link(pubkey) if len(pubkey) == signatures.PUBKEY_BYTES else None
        if link is None or link.account_id != account_id or link.identity is None:
            raise identity_not_found(pubkey)
        identity, cancelled = await self._publisher.revoke_identity(request_id, pubkey, reason, cancel_queued_jobs)
        async with self._store.unit_of_work() as uow:
            await uow.store_identity(account_id, identity)
        return identity, cancelled

    async def list(
        self, caller: Caller, account_id: str, status: IdentityStatus | None, size: int, token: str
    ) -> Page[Identity]:
        """The publisher's list of the keys it holds for the account (owner_ref = account id)."""
        require_account_access(caller, account_id)
        async with self._store.reader() as uow:
            await require_account(uow, account_id)
        return await self._publisher.list_identities(status, account_id, size, token)
