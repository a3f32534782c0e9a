"""What the publisher's use cases need from the outside world, as interfaces."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Protocol

from proofline_kit.chain import ArcTxStatus, BroadcastOutcome, FeeRate, PreparedTx, ProofCheck, TxChainState
from proofline_kit.errors import DomainError
from proofline_kit.wire import Outpoint, TxOutput
from services.publisher.domain.models import (
    Actor,
    ClaimedJob,
    Identity,
    IdentityStatus,
    InFlightJob,
    Job,
    JobFilter,
    JobMove,
    JobStatus,
    NewJob,
)


class UnitOfWork(Protocol):
    """One database transaction (or autocommit reads), as the use cases call it."""

    # --- recorded answers ------------------------------------------------------------------------

    async def find_answer(self, caller_id: str, method: str, request_id: str, fingerprint: bytes) -> bytes | None: ...

    async def record_answer(
        self, caller_id: str, method: str, request_id: str, fingerprint: bytes, answer: bytes
    ) -> None: ...

    # --- identities ------------------------------------------------------------------------------

    async def insert_identity(self, pubkey: bytes, label: str, owner_ref: str, actor: Actor) -> Identity | None: ...

    async def identity(self, pubkey: bytes, *, for_update: bool = ...) -> Identity | None: ...

    async def identity_statuses(self, pubkeys: Iterable[bytes]) -> dict[bytes, IdentityStatus]: ...

    async def revoke_identity(self, pubkey: bytes, reason: str, actor: Actor) -> Identity: ...

    async def append_identity_event(
        self, pubkey: bytes, action: str, actor: Actor, reason: str, cancelled_jobs: int
    ) -> None: ...

    async def cancel_queued_jobs(self, pubkey: bytes, detail: str, actor: Actor) -> int: ...

    async def list_identities(
        self, status: IdentityStatus | None, owner_ref: str, after_seq: int, limit: int
    ) -> list[tuple[int, Identity]]: ...

    # --- intake and reads ------------------------------------------------------------------------

    async def jobs_by_intent(self, keys: Sequence[tuple[bytes, bytes]], *, full: bool = ...) -> dict[bytes, Job]: ...

    async def digests_by_nonce(self, keys: Sequence[tuple[bytes, str]]) -> dict[tuple[bytes, str], bytes]: ...

    async def insert_jobs(self, jobs: Sequence[NewJob], actor: Actor) -> dict[str, Job]: ...

    async def count_queued(self) -> int: ...

    async def jobs(self, job_ids: Sequence[str], *, full: bool = ...) -> dict[str, Job]: ...

    async def list_jobs(
        self, where: JobFilter, after: tuple[datetime, str] | None, limit: int, *, full: bool = ...
    ) -> list[Job]: ...

    # --- the pipeline ----------------------------------------------------------------------------

    async def claim_queued(
        self, owner: str, limit: int, lease_s: float, batch_id: str, actor: Actor
    ) -> list[ClaimedJob]: ...

    async def claim_stuck(
        self, owner: str, limit: int, lease_s: float, actor: Actor, statuses: Sequence[JobStatus] = ...
    ) -> list[ClaimedJob]: ...

    async def claim_signed(self, owner: str, limit: int, lease_s: float, actor: Actor) -> list[InFlightJob]: ...

    async def apply_moves(
        self, moves: Sequence[JobMove], actor: Actor, *, owner: str = ..., lease_s: float = ...
    ) -> set[str]: ...

    # --- confirmations and reorgs ----------------------------------------------------------------

    async def claim_sent_due(self, limit: int, recheck_s: float, max_recheck_s: float) -> list[InFlightJob]: ...

    async def in_flight_by_txids(self, txids: Sequence[str]) -> list[InFlightJob]: ...

    async def confirmed_blocks(self, min_height: int) -> list[tuple[str, int]]: ...

    async def confirmed_in_block(self, block_hash: str) -> list[InFlightJob]: ...


class Store(Protocol):
    def unit_of_work(self) -> AbstractAsyncContextManager[UnitOfWork]: ...

    def reader(self) -> AbstractAsyncContextManager[UnitOfWork]:
        """Autocommit reads: no transaction to open and close."""
        ...

    async def ping(self) -> None: ...


class NonceCache(Protocol):
    """Fast path for NONCE_REPLAYED (may forget; PostgreSQL's unique constraint is the truth)."""

    async def digests(self, keys: Sequence[tuple[bytes, str]]) -> list[bytes | None]:
        """The intent digest remembered for each (pubkey, nonce), aligned with `keys`."""
        ...

    async def remember(self, entries: Mapping[tuple[bytes, str], bytes]) -> None:
        """Remember (pubkey, nonce) -> digest for jobs that were just committed."""
        ...


class RateLimiter(Protocol):
    async def take(self, pubkey: bytes, count: int) -> tuple[int, int]:
        """Take up to `count` units for this key in the current window: (granted, retry_after_ms).
        Units are not given back when an intent is refused later: a window lasts one second."""
        ...


class ChangeSubscription(Protocol):
    async def wait(self, timeout_s: float) -> bool:
        """Until a watched job may have changed (True) or the timeout passed (False)."""
        ...

    @property
    def draining(self) -> bool:
        """The server is shutting down: watchers should end."""
        ...


class JobChanges(Protocol):
    def subscribe(self, job_ids: Sequence[str]) -> AbstractAsyncContextManager[ChangeSubscription]: ...


# --- publishing pipeline -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PoolUtxo:
    outpoint: Outpoint
    satoshis: int
    locking_script: bytes
    owner_key_id: str


@dataclass(frozen=True, slots=True)
class PoolLease:
    lease_id: str
    fencing_token: int
    utxos: tuple[PoolUtxo, ...]


@dataclass(frozen=True, slots=True)
class ChangeOutput:
    vout: int
    satoshis: int
    locking_script: bytes
    owner_key_id: str


@dataclass(frozen=True, slots=True)
class PoolSpend:
    """One publish transaction's spend of its pool UTXO, and its change back to the pool."""

    txid: str
    funding: Outpoint
    change: ChangeOutput | None


class ConflictKind(Enum):
    DOUBLE_SPEND = "double_spend"
    MISSING_INPUTS = "missing_inputs"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class ConflictReport:
    """A publish transaction that failed or conflicts, for the pool (its input becomes DIRTY)."""

    funding: Outpoint
    kind: ConflictKind
    spending_txid: str
    competing_txids: tuple[str, ...] = ()
    detail: str = ""
    # When the spend was never committed, the input is still under this lease.
    lease_id: str = ""
    fencing_token: int = 0


class PublishPool(Protocol):
    """The utxo service, as the publisher uses it. Errors are DomainErrors carrying the pool's
    reason (POOL_EXHAUSTED, ALREADY_SPENT, FENCING_TOKEN_STALE...) or kind UNAVAILABLE."""

    async def lease(
        self, request_id: str, count: int, min_satoshis: int, owner_key_id: str, lease_s: float, holder: str
    ) -> PoolLease:
        """Up to `count` PUBLISH UTXOs worth at least `min_satoshis` each (fewer if that is all)."""
        ...

    async def commit(
        self, request_id: str, lease_id: str, fencing_token: int, spends: Sequence[PoolSpend], release_unspent: bool
    ) -> None: ...

    async def release(self, request_id: str, lease_id: str, outpoints: Sequence[Outpoint]) -> None: ...

    async def report(self, request_id: str, report: ConflictReport) -> None: ...


@dataclass(frozen=True, slots=True)
class SignedTx:
    raw: bytes
    txid: str


@dataclass(frozen=True, slots=True)
class TxToSign:
    """A one-input transaction for the signer's policy mode: the bytes, the output it spends, the key."""

    unsigned_tx: bytes
    spent: TxOutput
    key_id: str


class TxSigner(Protocol):
    """signer_gateway in policy mode (it sees the whole transaction and checks its policy)."""

    async def sign_transactions(self, request_id: str, txs: Sequence[TxToSign]) -> list[SignedTx | DomainError]:
        """One call for many transactions, each answered on its own (signed, or the error it met).
        Raises a DomainError only when the call as a whole fails."""
        ...

    async def locking_script(self, key_id: str) -> bytes:
        """The P2PKH locking script paying `key_id` (for change to a configured key)."""
        ...

    async def sign_digests(self, request_id: str, items: Sequence[tuple[str, bytes]]) -> list[tuple[bytes, bytes]]:
        """Blind mode: one call signs every (key_id, 32-byte digest); (DER signature, public key) each,
        in order. Only for keys whose signer policy does not require policy mode."""
        ...


class ChainGateway(Protocol):
    """ARC for broadcasts, statuses and fee policy; WhatsOnChain for headers and spends. Lookups raise
    ChainUnavailable when no provider answers; broadcasts never raise (UNAVAILABLE outcome)."""

    async def fee_rate(self) -> FeeRate: ...

    def fee_rate_stale(self) -> None:
        """A broadcast was refused for its fee: fetch the policy rate again before the next build."""
        ...

    async def broadcast(self, txs: Sequence[PreparedTx]) -> dict[str, BroadcastOutcome]:
        """All in one ARC /v1/txs call (WhatsOnChain only for those ARC gave no verdict on)."""
        ...

    async def status(self, txid: str) -> ArcTxStatus | None: ...

    async def verify(self, txid: str, bump_hex: str) -> ProofCheck: ...

    async def mined(self, txids: Sequence[str]) -> set[str]:
        """Which of `txids` are in a block of the longest chain."""
        ...

    async def chain_states(self, txids: Sequence[str]) -> dict[str, TxChainState]:
        """Mined / in the mempool / unknown, for many txids in few requests (WhatsOnChain bulk)."""
        ...

    async def spenders(self, outpoints: Sequence[Outpoint]) -> dict[Outpoint, str | None]:
        """Who spends each outpoint (txid), None when unspent; outpoints the chain does not know at
        all (no such output) are left out."""
        ...

    async def tip_height(self) -> int: ...

    async def block_hash_at(self, height: int) -> str | None: ...


class PipelineObserver(Protocol):
    """Metrics of the pipeline."""

    def stage(self, name: str, seconds: float, jobs: int) -> None: ...

    def outcome(self, kind: str, count: int = 1) -> None: ...

    def moved(self, target: str, reason: str, count: int = 1) -> None: ...
