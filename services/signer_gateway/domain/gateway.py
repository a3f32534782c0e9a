"""The signing gateway's use cases. Knows nothing of gRPC."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from proofline_kit.auth import ROLE_ADMIN, Caller
from proofline_kit.errors import DomainError, ErrorKind, invalid_argument
from proofline_kit.idempotency import check_request_id, request_fingerprint
from proofline_kit.logging import get_logger
from proofline_kit.pagination import decode_page_token, encode_page_token, page_size
from services.signer_gateway.domain import codec, ecdsa
from services.signer_gateway.domain.acl import KeyAcl
from services.signer_gateway.domain.crypto_pool import CryptoPool
from services.signer_gateway.domain.models import (
    AuditEntry,
    Backend,
    DigestToSign,
    KeyPolicy,
    KeyRecord,
    KeySpend,
    Page,
    SignatureResult,
    SignedTransaction,
    TransactionOutcome,
    TransactionToSign,
    shown_key_id,
)
from services.signer_gateway.domain.policy import (
    address_hashes,
    check_transaction_policy,
    policy_mode_required,
    validate_policy,
)
from services.signer_gateway.domain.ports import (
    ExternalKms,
    LocalKeyBackend,
    LocalSignatureCheckFailed,
    SigningBackend,
    Store,
    UnitOfWork,
    key_probe_digest,
)
from services.signer_gateway.domain.request_checks import (
    ITEM_ERROR_BOUND,
    MAX_BATCH_ITEMS,
    PendingTransaction,
    answer_bytes_bound,
    check_batch,
    check_key_id,
    check_ownership,
    prepare,
    summarize,
    transaction_fingerprint_parts,
)


class SignerGateway:
    def __init__(
        self,
        store: Store,
        acl: KeyAcl,
        local: LocalKeyBackend,
        external: ExternalKms | None,
        default_backend: Backend,
        crypto: CryptoPool,
        max_answer_bytes: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`max_answer_bytes`: the largest answer the transport can carry; a signing call whose
        answer could be larger is refused before anything is signed."""
        self._store = store
        self._acl = acl
        self._local = local
        self._external = external
        self._default_backend = default_backend
        self._crypto = crypto
        self._max_answer_bytes = max_answer_bytes
        self._clock = clock
        self._log = get_logger("signer")

    # --- signing ---------------------------------------------------------------------------------

    async def sign_digests(
        self, caller: Caller, request_id: str, items: Sequence[DigestToSign], timeout_s: float
    ) -> list[SignatureResult]:
        """Blind mode: all or nothing."""
        check_request_id(request_id)
        check_batch(items)
        fingerprint = request_fingerprint("Sign", *((i.key_id, i.digest.hex()) for i in items))
        async with self._store.unit_of_work() as uow:
            replay = await uow.find_answer(caller.caller_id, "Sign", request_id, fingerprint)
            if replay is not None:
                return codec.signatures_from_answer(replay)
            keys = await self._usable_keys(uow, caller, request_id, [i.key_id for i in items])
            if any(k.policy.require_policy_mode for k in keys.values()):
                for item in items:
                    if keys[item.key_id].policy.require_policy_mode:
                        await self._audit_denied(caller, request_id, [item.key_id], "POLICY_DENIED", None)
                        raise policy_mode_required(item.key_id)
            records = [keys[k] for k, _ in items]
            digests = [d for _, d in items]
            signatures = await self._sign_checked(records, digests, timeout_s)
            results = [SignatureResult(k.key_id, sig, k.public_key) for k, sig in zip(records, signatures, strict=True)]
            caller_id = caller.caller_id
            await uow.append_audit([AuditEntry(caller_id, request_id, k, d, None, "signed") for k, d in items])
            await uow.record_answer(caller_id, "Sign", request_id, fingerprint, codec.signatures_to_answer(results))
        return results

    async def sign_transaction(
        self, caller: Caller, request_id: str, request: TransactionToSign, timeout_s: float
    ) -> SignedTransaction:
        """Policy mode: the gateway computes every sighash itself and checks the keys' policies.

        A batch of one with all-or-nothing answers: the transaction's error fails the call."""
        check_request_id(request_id)
        pending = prepare(request)
        if pending.error is not None:
            if pending.error_is_denial:
                await self._audit_denied(caller, request_id, pending.key_ids, pending.error.reason, None)
            raise pending.error
        fingerprint = request_fingerprint("SignTransaction", *transaction_fingerprint_parts(request))
        outcomes = await self._sign_transactions(
            caller,
            request_id,
            "SignTransaction",
            fingerprint,
            [pending],
            timeout_s,
            partial=False,
            encode=lambda results: codec.signed_tx_to_json(_signed(results[0])),
            decode=lambda raw: [codec.signed_tx_from_json(raw)],
        )
        return _signed(outcomes[0])

    async def sign_transactions(
        self, caller: Caller, request_id: str, requests: Sequence[TransactionToSign], timeout_s: float
    ) -> list[TransactionOutcome]:
        """Policy mode for many transactions: one answer per transaction, in request order.

        Each transaction goes through SignTransaction's checks and fails alone (its DomainError is
        its answer); problems of the call itself (request_id, batch size, request_id reuse, a
        backend failure) fail the call."""
        check_request_id(request_id)
        if not requests:
            raise invalid_argument("BATCH_EMPTY", "transactions", "at least one transaction is required")
        if len(requests) > MAX_BATCH_ITEMS:
            raise invalid_argument(
                "BATCH_TOO_LARGE", "transactions", f"at most {MAX_BATCH_ITEMS} transactions per call"
            )
        fingerprint = request_fingerprint("SignTransactions", *(transaction_fingerprint_parts(r) for r in requests))
        return await self._sign_transactions(
            caller,
            request_id,
            "SignTransactions",
            fingerprint,
            [prepare(r) for r in requests],
            timeout_s,
            partial=True,
            encode=codec.outcomes_to_json,
            decode=codec.outcomes_from_json,
        )

    async def _sign_transactions(
        self,
        caller: Caller,
        request_id: str,
        method: str,
        fingerprint: bytes,
        pending: list[PendingTransaction],
        timeout_s: float,
        *,
        partial: bool,
        encode: Callable[[list[TransactionOutcome]], bytes],
        decode: Callable[[bytes], list[TransactionOutcome]],
    ) -> list[TransactionOutcome]:
        """One unit of work for the whole call: one idempotency lookup and record, keys read once,
        daily-limited keys locked once, spends and audit rows written with one statement each.
        Unless `partial`, the first transaction error fails the call and nothing is written but the
        denials."""
        denials: list[AuditEntry] = []
        try:
            async with self._store.unit_of_work() as uow:
                replay = await uow.find_answer(caller.caller_id, method, request_id, fingerprint)
                if replay is not None:
                    return decode(replay)
                outcomes, spends, signed = await self._check_and_sign(
                    uow, caller, request_id, pending, timeout_s, denials, "transactions" if partial else "input_keys"
                )
                if not partial:
                    for outcome in outcomes:
                        if isinstance(outcome, DomainError):
                            raise outcome
                if spends:
                    await uow.record_spends(spends)
                await uow.append_audit([*signed, *denials])
                await uow.record_answer(caller.caller_id, method, request_id, fingerprint, encode(outcomes))
        except Exception:
            if denials:
                # Their own transaction: denials are recorded even though the request's transaction
                # rolled back.
                async with self._store.unit_of_work() as uow:
                    await uow.append_audit(denials)
            raise
        return outcomes

    async def _check_and_sign(
        self,
        uow: UnitOfWork,
        caller: Caller,
        request_id: str,
        pending: list[PendingTransaction],
        timeout_s: float,
        denials: list[AuditEntry],
        answer_field: str,
    ) -> tuple[list[TransactionOutcome], list[KeySpend], list[AuditEntry]]:
        """SignTransaction's checks, in its order, for every transaction; then one signing pass.

        Everything the answer holds is known and bounded before the signing pass (amounts by
        `prepare` and SpendSummary, the size by `_check_answer_fits`): what follows a signature
        cannot fail on the request's content.

        Returns the outcomes, the spends to record and the audit rows of the signatures; appends
        the denials (amounts, ACL, policy) to `denials`."""
        caller_id = caller.caller_id
        allowed: dict[str, bool] = {}
        live: list[PendingTransaction] = []
        for item in pending:
            if item.error is not None:
                if item.error_is_denial:
                    reason = item.error.reason
                    denials.extend(
                        AuditEntry(caller_id, request_id, k, None, None, "denied", reason) for k in item.key_ids
                    )
                continue
            denied = []
            for key_id in item.key_ids:
                ok = allowed.get(key_id)
                if ok is None:
                    ok = allowed[key_id] = self._acl.allows(caller, key_id)
                if not ok:
                    denied.append(key_id)
            if denied:
                denials.extend(
                    AuditEntry(caller_id, request_id, k, None, None, "denied", "KEY_ACCESS_DENIED") for k in denied
                )
                item.error = _access_denied(caller, denied[0])
            else:
                live.append(item)
        keys: dict[str, KeyRecord] = {}
        if live:
            keys = await uow.keys_by_id(sorted({k for item in live for k in item.key_ids}))
        hashes = {key_id: ecdsa.pubkey_hash(key.public_key) for key_id, key in keys.items()}
        checked: list[PendingTransaction] = []
        for item in live:
            missing = [k for k in item.key_ids if k not in keys]
            if missing:
                item.error = _key_not_found(missing[0])
                continue
            try:
                check_ownership(item, hashes)
            except DomainError as error:
                item.error = error
                continue
            checked.append(item)
        now = self._clock()
        # Only keys with a daily limit pay for it: their rows are locked (once per call) so that
        # concurrent signatures are counted one after the other, and their last 24 hours are summed.
        # Within the call, transactions are counted in request order.
        limited = sorted({k for item in checked for k in item.key_ids if keys[k].policy.max_amount_per_day_satoshis})
        sent_today: dict[str, int] = {}
        if limited:
            keys.update(await uow.keys_by_id(limited, for_update=True))
            sent_today = await uow.sent_last_24h(limited, now)
        # Summarised with the policies the limits are checked against (read again under the lock):
        # each key counts as sent away what pays neither the signing keys nor its change addresses.
        change = {
            k: address_hashes(key.policy.change_addresses) for k, key in keys.items() if key.policy.change_addresses
        }
        to_sign: list[PendingTransaction] = []
        for item in checked:
            spend = item.spend = summarize(item, hashes, change)
            try:
                for key_id in item.key_ids:
                    try:
                        check_transaction_policy(
                            key_id, keys[key_id].policy, spend.per_key[key_id], sent_today.get(key_id, 0)
                        )
                    except DomainError as denial:
                        denials.append(AuditEntry(caller_id, request_id, key_id, None, None, "denied", denial.reason))
                        raise
            except DomainError as error:
                item.error = error
                continue
            for key_id in item.key_ids:
                sent_today[key_id] = sent_today.get(key_id, 0) + spend.per_key[key_id].sent_satoshis
            to_sign.append(item)
        self._check_answer_fits(to_sign, len(pending) - len(to_sign), answer_field)
        records: list[KeyRecord] = []
        digests: list[bytes] = []
        for item in to_sign:
            assert item.unsigned is not None
            sighashes = item.unsigned.sighashes()
            for input_key in item.request.input_keys:
                records.append(keys[input_key.key_id])
                digests.append(sighashes[input_key.input_index])
        signatures = await self._sign_checked(records, digests, timeout_s) if records else []
        spends: list[KeySpend] = []
        audit: list[AuditEntry] = []
        position = 0
        for item in to_sign:
            unsigned, spent = item.unsigned, item.spend
            assert unsigned is not None and spent is not None
            first = position
            for input_key in item.request.input_keys:
                unsigned.apply_signature(input_key.input_index, signatures[position], records[position].public_key)
                position += 1
            raw = unsigned.serialize()
            txid = unsigned.txid()
            results = tuple(
                SignatureResult(records[i].key_id, signatures[i], records[i].public_key) for i in range(first, position)
            )
            answer = spent.transaction
            item.result = SignedTransaction(raw, txid, answer.fee_satoshis, answer.sent_satoshis, results)
            # The ledger records what each key's limits counted, not the answer's figure.
            spends.extend(KeySpend(k, txid, spent.per_key[k].sent_satoshis, now) for k in item.key_ids)
            audit.extend(
                AuditEntry(caller_id, request_id, records[i].key_id, digests[i], txid, "signed")
                for i in range(first, position)
            )
        outcomes: list[TransactionOutcome] = []
        for item in pending:
            if item.result is not None:
                outcomes.append(item.result)
            else:
                assert item.error is not None
                outcomes.append(item.error)
        return outcomes, spends, audit

    # --- keys ------------------------------------------------------------------------------------

    async def get_key(self, caller: Caller, key_id: str) -> KeyRecord:
        check_key_id(key_id)
        async with self._store.unit_of_work() as uow:
            keys = await self._usable_keys(uow, caller, "", [key_id], audit=False)
        return keys[key_id]

    async def create_key(
        self,
        caller: Caller,
        request_id: str,
        key_id: str,
        backend: Backend | None,
        policy: KeyPolicy,
        timeout_s: float,
    ) -> KeyRecord:
        _require_admin(caller)
        check_request_id(request_id)
        check_key_id(key_id)
        validate_policy(policy)
        backend = backend or self._default_backend
        fingerprint = request_fingerprint("CreateKey", key_id, backend.value, _policy_json(policy))
        async with self._store.unit_of_work() as uow:
            if await uow.find_answer(caller.caller_id, "CreateKey", request_id, fingerprint) is not None:
                return (await uow.keys_by_id([key_id]))[key_id]
        if backend is Backend.LOCAL:
            public_key, sealed = self._local.generate(key_id)
        else:
            if self._external is None:
                raise DomainError(ErrorKind.FAILED_PRECONDITION, "KMS_NOT_CONFIGURED", "KMS_SIGN_URL is not configured")
            public_key, signature = await self._external.probe_key(key_id, timeout_s)
            sealed = None
            if not ecdsa.is_valid_public_key(public_key):
                raise DomainError(ErrorKind.INTERNAL, "KMS_BAD_RESPONSE", "KMS returned an invalid public key")
            self._checked_signature(key_id, public_key, signature, key_probe_digest(key_id))
        async with self._store.unit_of_work() as uow:
            created = await uow.insert_key(key_id, backend, public_key, sealed, policy)
            if created is None:
                raise DomainError(
                    ErrorKind.ALREADY_EXISTS,
                    "KEY_EXISTS",
                    f"key {shown_key_id(key_id)} already exists",
                    metadata={"keyId": key_id},
                )
            await uow.record_answer(caller.caller_id, "CreateKey", request_id, fingerprint, key_id.encode())
        self._log.info("key.created", key_id=key_id, backend=backend.value)
        return created

    async def set_key_policy(self, caller: Caller, request_id: str, key_id: str, policy: KeyPolicy) -> KeyRecord:
        _require_admin(caller)
        check_request_id(request_id)
        check_key_id(key_id)
        validate_policy(policy)
        fingerprint = request_fingerprint("SetKeyPolicy", key_id, _policy_json(policy))
        async with self._store.unit_of_work() as uow:
            if await uow.find_answer(caller.caller_id, "SetKeyPolicy", request_id, fingerprint) is not None:
                return (await uow.keys_by_id([key_id]))[key_id]
            updated = await uow.set_policy(key_id, policy)
            if updated is None:
                raise _key_not_found(key_id)
            await uow.record_answer(caller.caller_id, "SetKeyPolicy", request_id, fingerprint, key_id.encode())
        self._log.info("key.policy_set", key_id=key_id)
        return updated

    async def list_keys(self, caller: Caller, requested_size: int, page_token: str) -> Page:
        size = page_size(requested_size)
        after = str(decode_page_token(page_token).get("after", ""))
        found: list[KeyRecord] = []
        async with self._store.unit_of_work() as uow:
            cursor = after
            while len(found) < size:
                batch = await uow.list_keys(cursor, size)
                if not batch:
                    cursor = ""
                    break
                found.extend(k for k in batch if self._acl.allows(caller, k.key_id))
                cursor = batch[-1].key_id
                if len(batch) < size:
                    cursor = ""
                    break
        found = found[:size]
        more = bool(cursor) or len(found) == size
        token = encode_page_token({"after": found[-1].key_id}) if found and more else ""
        return Page(tuple(found), token)

    async def reseal_old_keys(self) -> int:
        """Rotation: re-seal every local key still under an older master key version."""
        current = self._local.current_master_key_version
        async with self._store.unit_of_work() as uow:
            stale = await uow.keys_sealed_before(current)
            for key in stale:
                assert key.sealed_secret is not None
                await uow.reseal(key.key_id, self._local.reseal(key.key_id, key.sealed_secret))
        return len(stale)

    # --- helpers ---------------------------------------------------------------------------------

    async def _usable_keys(
        self,
        uow: UnitOfWork,
        caller: Caller,
        request_id: str,
        key_ids: Sequence[str],
        *,
        for_update: bool = False,
        audit: bool = True,
    ) -> dict[str, KeyRecord]:
        unique = set(key_ids)
        denied = sorted(k for k in unique if not self._acl.allows(caller, k))
        if denied:
            if audit:
                await self._audit_denied(caller, request_id, denied, "KEY_ACCESS_DENIED", None)
            raise _access_denied(caller, denied[0])
        keys = await uow.keys_by_id(list(unique), for_update=for_update)
        missing = sorted(unique - set(keys))
        if missing:
            raise _key_not_found(missing[0])
        return keys

    async def _sign_checked(self, keys: Sequence[KeyRecord], digests: Sequence[bytes], timeout_s: float) -> list[bytes]:
        """Sign through each key's backend; every signature normalised to low-S and verified."""
        signatures: list[bytes] = [b""] * len(keys)
        unchecked: list[int] = []
        for backend in (Backend.LOCAL, Backend.EXTERNAL_KMS):
            positions = [i for i, k in enumerate(keys) if k.backend is backend]
            if not positions:
                continue
            signer = self._signer_for(backend)
            try:
                raw = await signer.sign([keys[i] for i in positions], [digests[i] for i in positions], timeout_s)
            except LocalSignatureCheckFailed as failure:
                raise _check_failed(failure.key_id) from None
            for i, signature in zip(positions, raw, strict=True):
                signatures[i] = signature if signer.checks_signatures else _normalised(keys[i].key_id, signature)
            if not signer.checks_signatures:
                unchecked.extend(positions)
        if unchecked:
            verified = await self._crypto.verify_many(
                [keys[i].public_key for i in unchecked],
                [signatures[i] for i in unchecked],
                [digests[i] for i in unchecked],
            )
            for i, ok in zip(unchecked, verified, strict=True):
                if not ok:
                    raise _check_failed(keys[i].key_id)
        return signatures

    def _check_answer_fits(self, to_sign: Sequence[PendingTransaction], refused: int, field_name: str) -> None:
        bound = sum(answer_bytes_bound(item) for item in to_sign) + refused * ITEM_ERROR_BOUND
        if bound > self._max_answer_bytes:
            raise invalid_argument(
                "BATCH_TOO_LARGE",
                field_name,
                f"the signed answer could take {bound} bytes, above the {self._max_answer_bytes} an answer may"
                " carry: sign fewer transactions or inputs per call",
            )

    def _signer_for(self, backend: Backend) -> SigningBackend:
        if backend is Backend.LOCAL:
            return self._local
        if self._external is None:
            raise DomainError(ErrorKind.FAILED_PRECONDITION, "KMS_NOT_CONFIGURED", "KMS_SIGN_URL is not configured")
        return self._external

    def _checked_signature(self, key_id: str, public_key: bytes, signature: bytes, digest: bytes) -> bytes:
        normalised = _normalised(key_id, signature)
        if not ecdsa.verify_digest(public_key, normalised, digest):
            raise _check_failed(key_id)
        return normalised

    async def _audit_denied(
        self, caller: Caller, request_id: str, key_ids: Sequence[str], reason: str, txid: str | None
    ) -> None:
        # Its own transaction: the denial is recorded even though the request's transaction rolls back.
        async with self._store.unit_of_work() as uow:
            await uow.append_audit(
                [AuditEntry(caller.caller_id, request_id, k, None, txid, "denied", reason) for k in key_ids]
            )


def _normalised(key_id: str, signature: bytes) -> bytes:
    try:
        return ecdsa.to_low_s(signature)
    except ValueError as exc:
        raise DomainError(
            ErrorKind.INTERNAL,
            "SIGNATURE_CHECK_FAILED",
            f"backend returned malformed DER for key {shown_key_id(key_id)}",
        ) from exc


def _check_failed(key_id: str) -> DomainError:
    get_logger("signer").error("signature.check_failed", key_id=key_id)
    return DomainError(
        ErrorKind.INTERNAL,
        "SIGNATURE_CHECK_FAILED",
        f"backend signature for key {shown_key_id(key_id)} does not verify against its public key",
        metadata={"keyId": key_id},
    )


def _require_admin(caller: Caller) -> None:
    if ROLE_ADMIN not in caller.roles:
        raise DomainError(
            ErrorKind.PERMISSION_DENIED,
            "ADMIN_REQUIRED",
            "this operation needs the admin role",
            metadata={"callerId": caller.caller_id},
        )


def _signed(outcome: TransactionOutcome) -> SignedTransaction:
    if isinstance(outcome, DomainError):
        raise outcome
    return outcome


def _access_denied(caller: Caller, key_id: str) -> DomainError:
    return DomainError(
        ErrorKind.PERMISSION_DENIED,
        "KEY_ACCESS_DENIED",
        f"caller {caller.caller_id} may not use key {shown_key_id(key_id)}",
        metadata={"keyId": key_id, "callerId": caller.caller_id},
    )


def _key_not_found(key_id: str) -> DomainError:
    return DomainError(
        ErrorKind.NOT_FOUND, "KEY_NOT_FOUND", f"no key {shown_key_id(key_id)}", metadata={"keyId": key_id}
    )


def _policy_json(policy: KeyPolicy) -> list[object]:
    return [
        policy.require_policy_mode,
        list(policy.allowed_destinations),
        policy.max_amount_per_tx_satoshis,
        policy.max_amount_per_day_satoshis,
        policy.max_fee_satoshis,
        # Only when set: the fingerprints of requests recorded before the field existed stay valid.
        *([list(policy.change_addresses)] if policy.change_addresses else []),
    ]
