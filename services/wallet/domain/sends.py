"""Send intake and fee estimation: validate, estimate, reserve in the ledger, record PENDING.

Recording (the reservation, decided under the account's book lock) is `send_intake`'s; everything
after that (select, build, sign, broadcast, confirm) is the send pipeline's, in the background.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from proofline_kit.auth import Caller
from proofline_kit.errors import DomainError, ErrorKind, FieldViolation, invalid_argument
from proofline_kit.idempotency import check_request_id, request_fingerprint
from services.wallet.domain.access import require_account_access
from services.wallet.domain.accounts import account_not_found, require_account
from services.wallet.domain.chains import ChainRules
from services.wallet.domain.history import TransactionReader
from services.wallet.domain.models import Network, TxStatus, WalletTx
from services.wallet.domain.planning import SendPlan, below_dust, plan_send, worst_case_fee
from services.wallet.domain.ports import ChainGateway, CoinWindow, NewSend, Store
from services.wallet.domain.send_intake import METHOD, Replayed, SendIntake, SendToRecord

MAX_MEMO = 256


@dataclass(frozen=True, slots=True)
class SendLimits:
    max_send_satoshis: int
    # Per account over any rolling 24 hours; 0 = none.
    daily_limit_satoshis: int
    min_fee_rate_per_kb: int
    max_fee_rate_per_kb: int
    max_fee_satoshis: int
    long_term_fee_rate_per_kb: int
    send_confirmations: int


@dataclass(frozen=True, slots=True)
class FeeRequest:
    fee_rate_satoshis_per_kb: int
    max_fee_satoshis: int
    subtract_fee_from_amount: bool


@dataclass(frozen=True, slots=True)
class Estimate:
    fee_satoshis: int
    fee_rate_satoshis_per_kb: int
    size_bytes: int
    input_count: int
    has_change: bool
    recipient_satoshis: int
    total_debit_satoshis: int
    available_satoshis: int
    sufficient_funds: bool


@dataclass(frozen=True, slots=True)
class _Priced:
    to_script: bytes
    rate: int
    max_fee: int
    plan: SendPlan | None
    fee: int
    recipient: int
    debit: int


class Sends:
    def __init__(
        self,
        store: Store,
        chain: ChainRules,
        network: Network,
        window: CoinWindow,
        gateway: ChainGateway,
        limits: SendLimits,
        reader: TransactionReader,
        intake: SendIntake,
        *,
        user_sends: bool = False,
    ) -> None:
        self._store = store
        self._chain = chain
        self._network = network
        self._window = window
        self._gateway = gateway
        self._limits = limits
        self._reader = reader
        self._intake = intake
        # Sessions (a user's own login) may send and estimate only when WALLET_USER_SENDS is on.
        self._user_sends = user_sends

    async def estimate_fee(
        self, caller: Caller, account_id: str, to_address: str, amount: int, fee: FeeRequest
    ) -> Estimate:
        require_account_access(caller, account_id, sessions=self._user_sends)
        available = 0
        if account_id:
            async with self._store.reader() as uow:
                await require_account(uow, account_id)
                available = (await uow.balance(account_id)).available
        priced = await self._price(to_address, amount, fee)
        plan = priced.plan
        return Estimate(
            fee_satoshis=priced.fee,
            fee_rate_satoshis_per_kb=priced.rate,
            size_bytes=plan.size_bytes if plan else self._chain.sizes.transaction(1, 2),
            input_count=len(plan.coins) if plan else 0,
            has_change=bool(plan and plan.change_satoshis),
            recipient_satoshis=priced.recipient,
            total_debit_satoshis=priced.debit,
            available_satoshis=available,
            sufficient_funds=bool(account_id) and available >= priced.debit,
        )

    async def send(
        self,
        caller: Caller,
        request_id: str,
        account_id: str,
        to_address: str,
        amount: int,
        fee: FeeRequest,
        memo: str,
        wait_for: TxStatus | None,
        wait_timeout_s: float | None,
        time_left_s: float | None,
    ) -> WalletTx:
        require_account_access(caller, account_id, sessions=self._user_sends)
        check_request_id(request_id)
        if len(memo) > MAX_MEMO:
            raise invalid_argument("MEMO_INVALID", "memo", f"at most {MAX_MEMO} characters")
        wait_s = self._reader.wait_budget(wait_for, wait_timeout_s, time_left_s)
        fingerprint = request_fingerprint(
            account_id,
            to_address,
            amount,
            fee.fee_rate_satoshis_per_kb,
            fee.max_fee_satoshis,
            fee.subtract_fee_from_amount,
            memo,
        )
        if not account_id:
            raise invalid_argument("ACCOUNT_ID_INVALID", "account_id", "required")
        if len(account_id) > 64:
            raise account_not_found(account_id)
        try:
            priced = await self._price(to_address, amount, fee)
        except DomainError:
            # A retry of a recorded send gets its answer, whatever pricing says now.
            async with self._store.reader() as uow:
                answer = await uow.find_answer(caller.caller_id, METHOD, request_id, fingerprint)
            if answer is None:
                raise
            return await self._reader.settle(Replayed.from_answer(answer).transaction_id, wait_for, wait_s)
        outcome = await self._intake.record(
            SendToRecord(
                NewSend(
                    transaction_id=f"wtx_{secrets.token_hex(12)}",
                    account_id=account_id,
                    caller_id=caller.caller_id,
                    request_id=request_id,
                    to_address=to_address,
                    to_script=priced.to_script,
                    amount_satoshis=priced.recipient,
                    debit_satoshis=priced.debit,
                    reserved_fee_satoshis=priced.fee,
                    fee_rate_satoshis_per_kb=priced.rate,
                    max_fee_satoshis=priced.max_fee,
                    subtract_fee=fee.subtract_fee_from_amount,
                    memo=memo,
                    required_confirmations=self._limits.send_confirmations,
                ),
                fingerprint,
            )
        )
        if isinstance(outcome, Replayed):
            return await self._reader.settle(outcome.transaction_id, wait_for, wait_s)
        if wait_for is None or wait_s <= 0:
            return outcome
        return await self._reader.settle(outcome.transaction_id, wait_for, wait_s)

    async def _price(self, to_address: str, amount: int, fee: FeeRequest) -> _Priced:
        """Validates what a send asks and prices it against the coins the pool holds now."""
        to_script = self._chain.locking_script_for(to_address, self._network)
        limits = self._limits
        if amount <= 0:  # negative amounts never get here: the contract rules refuse them
            raise invalid_argument("AMOUNT_INVALID", "amount_satoshis", "must be positive")
        if amount > limits.max_send_satoshis:
            description = f"at most {limits.max_send_satoshis} sat per send"
            raise DomainError(
                ErrorKind.INVALID_ARGUMENT,
                "AMOUNT_ABOVE_LIMIT",
                f"amount_satoshis: {description}",
                metadata={"field": "amount_satoshis", "maxSatoshis": str(limits.max_send_satoshis)},
                field_violations=(FieldViolation("amount_satoshis", description),),
            )
        dust = self._chain.dust_limit(to_script)
        if amount < dust:
            raise below_dust(dust)
        rate = fee.fee_rate_satoshis_per_kb
        if rate == 0:
            rate = max(await self._gateway.fee_rate_per_kb(), limits.min_fee_rate_per_kb)
        elif not limits.min_fee_rate_per_kb <= rate <= limits.max_fee_rate_per_kb:
            raise invalid_argument(
                "FEE_RATE_INVALID",
                "fee_policy.fee_rate_satoshis_per_kb",
                f"{limits.min_fee_rate_per_kb} to {limits.max_fee_rate_per_kb} sat per 1000 bytes"
                " (0 = the network's rate)",
            )
        max_fee = min(fee.max_fee_satoshis or limits.max_fee_satoshis, limits.max_fee_satoshis)
        plan = plan_send(
            self._chain,
            await self._window.candidates(),
            to_script,
            amount,
            rate,
            limits.long_term_fee_rate_per_kb,
            fee.subtract_fee_from_amount,
        )
        fee_satoshis = plan.fee_satoshis if plan else worst_case_fee(self._chain, 1, rate)
        if fee_satoshis > max_fee:
            raise DomainError(
                ErrorKind.FAILED_PRECONDITION,
                "FEE_LIMIT_EXCEEDED",
                f"the fee would be {fee_satoshis} sat, above the limit {max_fee}",
                metadata={"feeSatoshis": str(fee_satoshis), "maxFeeSatoshis": str(max_fee)},
            )
        if fee.subtract_fee_from_amount:
            recipient = amount - fee_satoshis
            if recipient < dust:
                raise below_dust(dust)
            debit = amount
        else:
            recipient = amount
            debit = amount + fee_satoshis
        return _Priced(to_script, rate, max_fee, plan, fee_satoshis, recipient, debit)
