"""What the wallet's use cases need from the outside world, as interfaces."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from proofline_kit.chain import BroadcastOutcome, PreparedTx, TxChainState
from proofline_kit.errors import DomainError
from proofline_kit.intents.models import SignedIntent
from proofline_kit.wire import Outpoint
from services.wallet.domain.ledger import Entry
from services.wallet.domain.models import (
    Account,
    Actor,
    Balance,
    DepositAddress,
    ForwardedJob,
    ForwardedResult,
    Identity,
    IdentityLink,
    IdentityStatus,
    Page,
    TxFilter,
    TxStatus,
    WalletTx,
)

if TYPE_CHECKING:
    from services.wallet.domain.planning import Candidates

# --- the database --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewSend:
    transaction_id: str
    account_id: str
    caller_id: str
    request_id: str
    to_address: str
    to_script: bytes
    amount_satoshis: int  # what the recipient receives (estimate when the fee is subtracted)
    debit_satoshis: int  # what the account is debited
    reserved_fee_satoshis: int
    fee_rate_satoshis_per_kb: int
    max_fee_satoshis: int
    subtract_fee: bool
    memo: str
    required_confirmations: int


@dataclass(frozen=True, slots=True)
class SendWork:
    """A send claimed by a worker: the row's fencing token guards every write that follows."""

    transaction_id: str
    account_id: str
    status: TxStatus
    fence: int
    txid: str
    raw_tx: bytes
    to_script: bytes
    amount_satoshis: int
    debit_satoshis: int
    reserved_fee_satoshis: int
    fee_satoshis: int
    fee_rate_satoshis_per_kb: int
    max_fee_satoshis: int
    subtract_fee: bool
    broadcast_attempts: int
    builds: int
    block_height: int
    required_confirmations: int


@dataclass(frozen=True, slots=True)
class WalletCoin:
    outpoint: Outpoint
    satoshis: int
    locking_script: bytes
    key_id: str
    # 0: held on chain evidence (mined); n >= 1: change of our own accepted, unmined transactions.
    unconfirmed_depth: int = 0


@dataclass(frozen=True, slots=True)
class ScannedDeposit:
    """A deposit output found on the chain or in the mempool, matched to an address."""

    outpoint: Outpoint
    satoshis: int
    address: str
    account_id: str
    key_id: str
    locking_script: bytes


@dataclass(frozen=True, slots=True)
class DepositWork:
    transaction_id: str
    account_id: str
    txid: str
    status: TxStatus
    amount_satoshis: int
    block_height: int
    coinbase: bool
    credited: bool
    outputs: tuple[ScannedDeposit, ...]


@dataclass(frozen=True, slots=True)
class BookTotals:
    """The ledger's side of the reconciliation."""

    available: int
    locked: int
    pending: int
    deficit: int
    custody: int
    in_flight: int
    incoming: int
    written_off: int
    fees_paid: int
    sending_value: int  # Σ recipient + fee of signed sends not yet final


class UnitOfWork(Protocol):
    # --- recorded answers
    async def find_answer(self, caller_id: str, method: str, request_id: str, fingerprint: bytes) -> bytes | None: ...

    async def record_answer(
        self, caller_id: str, method: str, request_id: str, fingerprint: bytes, answer: bytes
    ) -> None: ...

    async def find_answers(
        self, method: str, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[bytes, bytes]]: ...

    async def record_answers(self, method: str, answers: Sequence[tuple[str, str, bytes, bytes]]) -> None: ...

    async def now(self) -> datetime: ...

    # --- accounts and addresses
    async def insert_account(self, account_id: str, external_id: str, label: str, caller_id: str) -> Account | None: ...

    async def account(self, account_id: str) -> Account | None: ...

    async def account_by_external_id(self, external_id: str) -> Account | None: ...

    async def list_accounts(self, external_id: str, after_seq: int, limit: int) -> list[tuple[int, Account]]: ...

    async def insert_deposit_address(self, address: DepositAddress) -> DepositAddress: ...

    async def deposit_address(self, address: str) -> DepositAddress | None: ...

    async def list_deposit_addresses(
        self, account_id: str, before_seq: int | None, limit: int
    ) -> list[tuple[int, DepositAddress]]: ...

    # --- identity keys linked to accounts
    async def claim_identity(self, pubkey: bytes, account_id: str, label: str, caller_id: str) -> IdentityLink:
        """A new pending link of the key to the account, or the link the key already has."""
        ...

    async def identity_link(self, pubkey: bytes) -> IdentityLink | None: ...

    async def drop_pending_identity(self, pubkey: bytes, account_id: str) -> None: ...

    async def store_identity(self, account_id: str, identity: Identity) -> None: ...

    async def linked_keys(self, account_id: str, pubkeys: Sequence[bytes]) -> set[bytes]: ...

    # --- identity-key backup shares
    async def lock_backup_shares(self, pubkey: bytes) -> list[StoredShare]:
        """The key's kept shares, its identity row locked until commit (stores of one key queue)."""
        ...

    async def backup_shares(self, pubkey: bytes) -> list[StoredShare]: ...

    async def insert_backup_shares(self, shares: Sequence[StoredShare], caller_id: str) -> None: ...

    async def record_backup_release(
        self, account_id: str, pubkey: bytes, caller_id: str, recovery_id: str, shares: int
    ) -> None: ...

    # --- the ledger
    async def balance(self, account_id: str) -> Balance: ...

    async def lock_accounts(self, account_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        """(available, deficit) of each account, its books locked until commit; unknown ones absent."""
        ...

    async def debited_since(self, account_ids: Sequence[str], since: datetime) -> dict[str, int]: ...

    async def post(self, entry: Entry, actor: Actor) -> None: ...

    async def post_many(self, entries: Sequence[Entry], actor: Actor) -> None: ...

    async def lock_books(self, account_ids: Sequence[str]) -> None: ...

    async def book_totals(self) -> BookTotals: ...

    async def unspent_coins(self) -> list[WalletCoin]: ...

    async def deficits(self) -> list[tuple[str, int]]: ...

    # --- sends
    async def insert_sends(self, sends: Sequence[NewSend]) -> list[WalletTx]: ...

    async def transactions(self, transaction_ids: Sequence[str], *, full: bool = ...) -> dict[str, WalletTx]: ...

    async def list_transactions(
        self, where: TxFilter, before_seq: int | None, limit: int, *, full: bool
    ) -> list[tuple[int, WalletTx]]: ...

    async def claim_sends(
        self, statuses: Sequence[TxStatus], owner: str, limit: int, lease_s: float
    ) -> list[SendWork]: ...

    async def move_send(
        self,
        work: SendWork,
        to: TxStatus,
        actor: Actor,
        reason: str,
        *,
        detail: str = ...,
        txid: str | None = ...,
        raw_tx: bytes | None = ...,
        fee_satoshis: int | None = ...,
        amount_satoshis: int | None = ...,
        fee_rate_satoshis_per_kb: int | None = ...,
        broadcast_attempts: int | None = ...,
        builds: int | None = ...,
        retry_in_s: float = ...,
        finalized: bool | None = ...,
        block: tuple[str, int, str] | None = ...,
        failure: str = ...,
        reserved: tuple[int, int] | None = ...,
    ) -> bool:
        """Applies the change when the row still carries `work.fence`; False when it does not."""
        ...

    async def spend_coins(self, spends: Sequence[tuple[str, str, Sequence[Outpoint]]]) -> None: ...

    async def forget_spends(self, transaction_id: str, txid: str) -> None: ...

    async def add_coins(self, origin: str, coins: Sequence[tuple[str, WalletCoin]]) -> None: ...

    async def coins_spent_by(self, transaction_id: str) -> list[WalletCoin]: ...

    async def claim_unmined_sends(self, owner: str, limit: int, lease_s: float) -> list[SendWork]: ...

    async def top_up(self, work: SendWork, extra: int) -> bool: ...

    async def mark_suspect(self, coins: Sequence[Outpoint]) -> None: ...

    async def suspect_coins(self, limit: int) -> list[WalletCoin]: ...

    async def clear_suspect(self, coin: Outpoint) -> None: ...

    async def is_our_change(self, coin: Outpoint) -> bool: ...

    async def is_our_txid(self, txid: str) -> bool: ...

    async def write_off_coin(self, coin: Outpoint, spender: str) -> bool: ...

    async def refresh_fee_rate(self, transaction_id: str, rate_per_kb: int) -> None: ...

    async def mark_spend_committed(self, transaction_ids: Sequence[str]) -> None: ...

    async def due_now(self, txids: Sequence[str]) -> None: ...

    async def defer_sends(self, works: Sequence[SendWork], retry_in_s: float) -> None: ...

    async def mark_signed(self, signed: Sequence[SignedSend], actor: Actor) -> set[str]: ...

    async def mark_accepted(self, works: Sequence[SendWork], actor: Actor, recheck_in_s: float) -> set[str]: ...

    async def uncommitted_spends(
        self, transaction_ids: Sequence[str]
    ) -> dict[str, tuple[PoolLease, tuple[Outpoint, ...], WalletCoin | None, str]]: ...

    # --- deposits
    async def match_scripts(self, scripts: Sequence[bytes]) -> dict[bytes, tuple[str, str, str]]:
        """locking script -> (address, account_id, key_id) of the issued deposit scripts among them."""
        ...

    async def record_deposits(
        self, txid: str, deposits: Sequence[ScannedDeposit], coinbase: bool, required: int, actor: Actor
    ) -> list[tuple[str, str, int]]: ...

    async def raw_sends(self, txids: Sequence[str]) -> dict[str, bytes]: ...

    async def our_txids(self, txids: Sequence[str]) -> set[str]: ...

    async def keys_of_coins_in(self, txids: Sequence[str]) -> set[str]: ...

    async def mark_mined(self, txids: Sequence[str], block_hash: str, height: int, paths: dict[str, str]) -> None: ...

    async def settle_depths(self, tip_height: int, actor: Actor) -> int: ...

    async def undo_block(self, height: int, actor: Actor) -> None: ...

    async def unmined_deposits(self, limit: int) -> list[DepositWork]: ...

    async def seen_again(self, transaction_id: str) -> None: ...

    async def drop_deposit(self, work: DepositWork, drop_after_s: float, actor: Actor) -> bool: ...

    async def deposits_to_credit(self, tip_height: int, limit: int) -> list[DepositWork]: ...

    async def credit_deposit(self, work: DepositWork, actor: Actor) -> bool: ...

    # --- the followed chain
    async def scanned_tip(self) -> tuple[int, str] | None: ...

    async def record_block(
        self, height: int, block_hash: str, previous: str, merkle_root: str, outputs: int, matched: int
    ) -> None: ...

    async def tip_height(self) -> int: ...

    # --- ARC callbacks (hints only)
    async def nudge_sends(self, txids: Sequence[str], recheck: Sequence[str]) -> dict[str, tuple[TxStatus, bool]]:
        """txid -> (status, now due) of our sends among `txids`: SENDING ones, and UNCONFIRMED ones
        not in a block yet whose txid is in `recheck`, become due for their round now."""
        ...


class Store(Protocol):
    def unit_of_work(self) -> AbstractAsyncContextManager[UnitOfWork]: ...

    def reader(self) -> AbstractAsyncContextManager[UnitOfWork]: ...

    def snapshot(self) -> AbstractAsyncContextManager[UnitOfWork]: ...

    async def ping(self) -> None: ...


class ChangeFeed(Protocol):
    """Wake-ups when wallet transactions change (PostgreSQL stays the truth)."""

    def subscribe(self, ids: Sequence[str]) -> AbstractAsyncContextManager[Subscription]: ...


class Subscription(Protocol):
    @property
    def draining(self) -> bool: ...

    async def wait(self, timeout_s: float) -> bool: ...


# --- other services -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key_id: str
    address: str
    locking_script: bytes


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """The signer-side policy of every wallet key: the second line behind the wallet's own limits."""

    max_per_tx_satoshis: int
    max_per_day_satoshis: int
    change_address: str


@dataclass(frozen=True, slots=True)
class TxToSign:
    unsigned_tx: bytes
    spent: tuple[WalletCoin, ...]


@dataclass(frozen=True, slots=True)
class SignedTx:
    raw: bytes
    txid: str
    fee_satoshis: int


class Signer(Protocol):
    async def create_key(self, request_id: str, key_id: str, limits: KeyLimits) -> IssuedKey: ...

    async def key(self, key_id: str) -> IssuedKey: ...

    async def sign_transactions(self, request_id: str, txs: Sequence[TxToSign]) -> list[SignedTx | DomainError]: ...


@dataclass(frozen=True, slots=True)
class PoolLease:
    lease_id: str
    fencing_token: int
    coins: tuple[WalletCoin, ...]


@dataclass(frozen=True, slots=True)
class SignedSend:
    """A send signed in a round, ready to be stored SENDING."""

    work: SendWork
    txid: str
    raw_tx: bytes
    fee_satoshis: int
    amount_satoshis: int
    lease: PoolLease


@dataclass(frozen=True, slots=True)
class PoolSpend:
    txid: str
    inputs: tuple[Outpoint, ...]
    change: WalletCoin | None


class CoinWindow(Protocol):
    """The pool's AVAILABLE coins as selection candidates, as far as pricing a send needs them."""

    async def candidates(self) -> Candidates: ...

    def take(self, coins: Iterable[WalletCoin]) -> None:
        """Coins a send took: out of the candidates now and in the next readings for a while."""

    def forget(self, outpoints: Iterable[Outpoint]) -> None:
        """Their send let go of these coins: a reading may list them again (when the pool does)."""

    def invalidate(self) -> None:
        """The next reading asks the pool (a lease found the candidates stale)."""


class CoinPool(Protocol):
    async def available_coins(self, limit: int) -> list[WalletCoin]: ...

    async def lease_outpoints(
        self, request_id: str, outpoints: Sequence[Outpoint], lease_s: float, holder: str, max_depth: int
    ) -> PoolLease: ...

    async def commit(
        self, request_id: str, lease: PoolLease, spends: Sequence[PoolSpend], *, release_unspent: bool
    ) -> None: ...

    async def release(self, request_id: str, lease_id: str, outpoints: Sequence[Outpoint] = ()) -> None:
        """Gives the lease's outpoints (all when empty) back."""
        ...

    async def report_dead(
        self,
        request_id: str,
        txid: str,
        inputs: Sequence[Outpoint],
        double_spend: bool,
        competing: Sequence[str],
        detail: str,
    ) -> list[str]:
        """The txids of the pool's transactions found dead with it (descendants that spent its
        outputs)."""
        ...

    async def report_accepted(self, request_id: str, txids: Sequence[str]) -> None:
        """The network accepted these committed transactions: their change may be spent unmined."""
        ...

    async def add_outputs(self, request_id: str, coins: Sequence[WalletCoin]) -> None: ...

    async def sync(self, key_ids: Sequence[str]) -> bool:
        """The pool converges these keys with the chain; False when it could not now."""
        ...

    async def coin_states(self, coins: Sequence[Outpoint]) -> dict[Outpoint, tuple[str, str]]:
        """(status name, spending txid) of each coin the pool knows: AVAILABLE, DIRTY, SPENT, ..."""
        ...

    async def held_value(self) -> dict[Outpoint, int]:
        """Every WALLET outpoint the pool still holds for us (not SPENT, not INVALID) and its value."""
        ...


class ChainGateway(Protocol):
    async def fee_rate_per_kb(self) -> int: ...

    async def broadcast(self, txs: Sequence[PreparedTx]) -> dict[str, BroadcastOutcome]: ...

    async def chain_states(self, txids: Sequence[str]) -> dict[str, TxChainState]: ...

    async def spenders(self, outpoints: Sequence[Outpoint]) -> dict[Outpoint, str]:
        """The txid spending each outpoint the chain says is spent (mempool or mined)."""
        ...


class RateLimiter(Protocol):
    async def allow(self, keys: Sequence[str]) -> list[bool]:
        """One answer per key, in order; a key listed n times counts n times."""
        ...


@dataclass(frozen=True, slots=True)
class PendingCode:
    """A one-time code waiting to be entered: what it is for (`subject`: the address of a sign-up,
    the account and key of a recovery), the code's keyed hash, and tries so far."""

    subject: str
    code_mac: str
    expires_at: float
    attempts: int


class CodeStore(Protocol):
    """Short-lived one-time codes of one purpose (Redis): unreachable is EMAIL_UNAVAILABLE."""

    async def put(self, code_id: str, pending: PendingCode, ttl_s: float) -> None: ...

    async def attempt(self, code_id: str) -> PendingCode | None:
        """Counts one try (atomically) and returns the code with that count; None if unknown."""
        ...

    async def consume(self, code_id: str) -> bool:
        """Removes it; False when it was already gone."""
        ...


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """A login challenge waiting for its signature: the key it was made for and the challenge."""

    pubkey: bytes
    challenge: bytes


class ChallengeStore(Protocol):
    """Short-lived login challenges (Redis only): unreachable is LOGIN_UNAVAILABLE."""

    async def put(self, challenge_id: str, pending: PendingLogin, ttl_s: float) -> None: ...

    async def take(self, challenge_id: str) -> PendingLogin | None:
        """Removes and returns it in one atomic step (GETDEL); None when unknown, used or expired."""
        ...


class Mailer(Protocol):
    async def send(self, to: str, subject: str, body: str) -> None:
        """Hands the mail to the SMTP server; EMAIL_UNAVAILABLE when it cannot."""
        ...


@dataclass(frozen=True, slots=True)
class SealedShare:
    """A backup share sealed with AES-256-GCM: the KEK's version, the nonce and the ciphertext (tag
    included)."""

    kek_version: int
    nonce: bytes
    ciphertext: bytes


@dataclass(frozen=True, slots=True)
class StoredShare:
    """One kept share of a key: `slot` 1-2 in storing order; `split` what all shares of its split
    share (identifier and parameters, never the value)."""

    account_id: str
    pubkey: bytes
    slot: int
    member_index: int
    split: str
    sealed: SealedShare


class ShareSealer(Protocol):
    """Seals backup shares under the key-encryption key, with associated data. Async so that a KEK
    held elsewhere (a signer_gateway SealData / UnsealData pair) can stand in without a change here."""

    async def seal(self, plaintext: bytes, associated_data: bytes) -> SealedShare: ...

    async def open(self, sealed: SealedShare, associated_data: bytes) -> bytes | None:
        """The plaintext; None when the ciphertext, nonce or associated data do not authenticate."""
        ...


# --- the publisher ---------------------------------------------------------------------------------


class Publisher(Protocol):
    """PublisherService, called with the wallet's own token (roles `registrar` and `publish`). Its
    refusals are raised as DomainErrors that keep the publisher's code, reason and domain; a
    publisher that cannot be reached is UNAVAILABLE, PUBLISHER_UNAVAILABLE. `wait_for` / `until` are
    publisher.v1.JobStatus numbers, passed on as given (the publisher checks them)."""

    async def register_identity(self, request_id: str, pubkey: bytes, label: str, owner_ref: str) -> Identity: ...

    async def revoke_identity(
        self, request_id: str, pubkey: bytes, reason: str, cancel_queued_jobs: bool
    ) -> tuple[Identity, int]: ...

    async def list_identities(
        self, status: IdentityStatus | None, owner_ref: str, page_size: int, page_token: str
    ) -> Page[Identity]: ...

    async def publish(
        self,
        request_id: str,
        intent: SignedIntent,
        wait_for: int,
        wait_timeout_s: float | None,
        deadline_left_s: float | None,
    ) -> tuple[ForwardedJob, bool]: ...

    async def publish_batch(
        self,
        request_id: str,
        intents: Sequence[SignedIntent],
        wait_for: int,
        wait_timeout_s: float | None,
        deadline_left_s: float | None,
    ) -> list[ForwardedResult]: ...

    async def get_job(self, job_id: str, full: bool) -> ForwardedJob: ...

    def watch_job(self, job_id: str, full: bool, until: int) -> AsyncGenerator[ForwardedJob, None]: ...
