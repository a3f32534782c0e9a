"""Accounts, deposit addresses and balances."""

from __future__ import annotations

import hashlib
import secrets

import orjson

from proofline_kit.auth import Caller
from proofline_kit.errors import DomainError, ErrorKind, invalid_argument
from proofline_kit.idempotency import check_request_id, request_fingerprint
from proofline_kit.pagination import decode_page_token, encode_page_token, page_size
from services.wallet.domain.access import require_account_access, require_wallet_role
from services.wallet.domain.models import Account, Balance, DepositAddress, Network, Page
from services.wallet.domain.ports import KeyLimits, Signer, Store, UnitOfWork

MAX_EXTERNAL_ID = 128
MAX_LABEL = 128


def account_not_found(account_id: str) -> DomainError:
    return DomainError(
        ErrorKind.NOT_FOUND, "ACCOUNT_NOT_FOUND", "no such account", metadata={"accountId": account_id[:64]}
    )


def _check_label(label: str) -> str:
    if len(label) > MAX_LABEL:
        raise invalid_argument("LABEL_INVALID", "label", f"at most {MAX_LABEL} characters")
    return label


async def require_account(uow: UnitOfWork, account_id: str) -> Account:
    if not account_id:
        raise invalid_argument("ACCOUNT_ID_INVALID", "account_id", "required")
    account = await uow.account(account_id) if len(account_id) <= 64 else None
    if account is None:
        raise account_not_found(account_id)
    return account


class Accounts:
    def __init__(self, store: Store, signer: Signer, network: Network, key_limits: KeyLimits) -> None:
        self._store = store
        self._signer = signer
        self._network = network
        self._key_limits = key_limits

    async def create_account(self, caller: Caller, request_id: str, external_id: str, label: str) -> Account:
        require_wallet_role(caller)
        check_request_id(request_id)
        external_id = external_id.strip()
        if not 1 <= len(external_id) <= MAX_EXTERNAL_ID:
            raise invalid_argument("EXTERNAL_ID_INVALID", "external_id", f"1-{MAX_EXTERNAL_ID} characters")
        _check_label(label)
        fingerprint = request_fingerprint(external_id, label)
        async with self._store.unit_of_work() as uow:
            answer = await uow.find_answer(caller.caller_id, "CreateAccount", request_id, fingerprint)
            if answer is not None:
                account = await uow.account(orjson.loads(answer)["accountId"])
                assert account is not None
                return account
            account = await uow.insert_account(f"acct_{secrets.token_hex(10)}", external_id, label, caller.caller_id)
            if account is None:
                existing = await uow.account_by_external_id(external_id)
                raise DomainError(
                    ErrorKind.ALREADY_EXISTS,
                    "ACCOUNT_ALREADY_EXISTS",
                    "an account with this external_id exists",
                    metadata={"accountId": existing.account_id if existing else ""},
                )
            await uow.record_answer(
                caller.caller_id,
                "CreateAccount",
                request_id,
                fingerprint,
                orjson.dumps({"accountId": account.account_id}),
            )
        return account

    async def open_account(self, caller: Caller, external_id: str, label: str) -> tuple[Account, bool]:
        """The account of `external_id` (a verified sign-up's address), created if there is none;
        whether it was created now."""
        require_wallet_role(caller)
        _check_label(label)
        async with self._store.unit_of_work() as uow:
            account = await uow.insert_account(f"acct_{secrets.token_hex(10)}", external_id, label, caller.caller_id)
            if account is not None:
                return account, True
            existing = await uow.account_by_external_id(external_id)
        assert existing is not None, "insert_account found a conflict, so the account exists"
        return existing, False

    async def get_account(self, caller: Caller, account_id: str) -> Account:
        require_account_access(caller, account_id)
        async with self._store.reader() as uow:
            return await require_account(uow, account_id)

    async def list_accounts(self, caller: Caller, external_id: str, size: int, token: str) -> Page[Account]:
        require_wallet_role(caller)
        limit = page_size(size)
        external_id = external_id.strip()
        cursor = decode_page_token(token)
        if cursor and cursor.get("x") != external_id:
            raise invalid_argument("PAGE_TOKEN_INVALID", "page_token", "the filters changed since this token")
        after = cursor.get("s", 0)
        if type(after) is not int:
            raise invalid_argument("PAGE_TOKEN_INVALID", "page_token", "not a token this service issued")
        async with self._store.reader() as uow:
            rows = await uow.list_accounts(external_id, after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        next_token = encode_page_token({"s": rows[-1][0], "x": external_id}) if more and rows else ""
        return Page([a for _, a in rows], next_token)

    async def new_deposit_address(self, caller: Caller, request_id: str, account_id: str, label: str) -> DepositAddress:
        require_wallet_role(caller)
        check_request_id(request_id)
        _check_label(label)
        fingerprint = request_fingerprint(account_id, label)
        async with self._store.reader() as uow:
            await require_account(uow, account_id)
            answer = await uow.find_answer(caller.caller_id, "NewDepositAddress", request_id, fingerprint)
            if answer is not None:
                return await self._recorded_address(uow, account_id, orjson.loads(answer)["address"])
        # The key id follows from the request, so a retry after a crash finds the key it created.
        seed = hashlib.sha256(f"{caller.caller_id}\x00{account_id}\x00{request_id}".encode()).hexdigest()
        key = await self._signer.create_key(f"wdep-{seed[:40]}", f"wallet-deposit-{seed[:32]}", self._key_limits)
        async with self._store.unit_of_work() as uow:
            answer = await uow.find_answer(caller.caller_id, "NewDepositAddress", request_id, fingerprint)
            if answer is not None:
                return await self._recorded_address(uow, account_id, orjson.loads(answer)["address"])
            address = await uow.insert_deposit_address(
                DepositAddress(
                    address=key.address,
                    account_id=account_id,
                    network=self._network,
                    locking_script=key.locking_script,
                    key_id=key.key_id,
                    label=label,
                    received_satoshis=0,
                    create_time=await uow.now(),
                )
            )
            await uow.record_answer(
                caller.caller_id,
                "NewDepositAddress",
                request_id,
                fingerprint,
                orjson.dumps({"address": address.address}),
            )
        return address

    async def _recorded_address(self, uow: UnitOfWork, account_id: str, address: str) -> DepositAddress:
        found = await uow.deposit_address(address)
        assert found is not None and found.account_id == account_id, "a recorded deposit address is missing"
        return found

    async def list_deposit_addresses(
        self, caller: Caller, account_id: str, size: int, token: str
    ) -> Page[DepositAddress]:
        require_account_access(caller, account_id)
        limit = page_size(size)
        cursor = decode_page_token(token)
        if cursor and cursor.get("a") != account_id:
            raise invalid_argument("PAGE_TOKEN_INVALID", "page_token", "the filters changed since this token")
        before = cursor.get("s")
        if before is not None and type(before) is not int:
            raise invalid_argument("PAGE_TOKEN_INVALID", "page_token", "not a token this service issued")
        async with self._store.reader() as uow:
            await require_account(uow, account_id)
            rows = await uow.list_deposit_addresses(account_id, before, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        next_token = encode_page_token({"s": rows[-1][0], "a": account_id}) if more and rows else ""
        return Page([a for _, a in rows], next_token)

    async def get_balance(self, caller: Caller, account_id: str) -> Balance:
        require_account_access(caller, account_id)
        async with self._store.reader() as uow:
            await require_account(uow, account_id)
            return await uow.balance(account_id)
