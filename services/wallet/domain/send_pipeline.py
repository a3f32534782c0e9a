"""The send pipeline, in the background: PENDING -> (select, lease, build, sign) -> SENDING ->
(commit the spend, broadcast) -> UNCONFIRMED (finalize). CONFIRMED comes from the deposit follower,
which finds our sends in the blocks it scans (merkle path from the block's own tree, root checked
against the header) exactly as it finds deposits.

Every round claims its sends under fresh fencing tokens (safe with several replicas): a write whose
token is no longer the row's changes nothing. The signed bytes and txid are stored (SENDING) before
the first broadcast; after a crash the same bytes are broadcast again, and a second transaction is
built only once the first is proven dead (rejected, or its inputs spent by another transaction and
it is not on the chain).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from proofline_kit.chain import OutcomeKind, PreparedTx, TxChainState
from proofline_kit.errors import DomainError
from proofline_kit.logging import get_logger
from proofline_kit.wire import Outpoint, TxOutput
from services.wallet.domain import ledger
from services.wallet.domain.chains import ChainRules
from services.wallet.domain.models import Actor, FailureReason, TxStatus, derived_request_id
from services.wallet.domain.planning import Candidates, SendPlan, plan_send
from services.wallet.domain.ports import (
    ChainGateway,
    CoinPool,
    CoinWindow,
    IssuedKey,
    PoolLease,
    PoolSpend,
    SendWork,
    SignedSend,
    Signer,
    Store,
    TxToSign,
    UnitOfWork,
    WalletCoin,
)

_ACCEPTED_STATES = (TxChainState.MEMPOOL, TxChainState.MINED)


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    batch: int = 100
    work_lease_s: float = 60.0
    coin_lease_s: float = 600.0
    long_term_fee_rate_per_kb: int = 1
    # How often a send waits for coins (none leasable now) before it fails COINS_UNAVAILABLE.
    max_builds: int = 10
    max_broadcast_attempts: int = 20
    retry_base_s: float = 1.0
    retry_max_s: float = 60.0
    # Our own change may be spent before it is mined, up to this many unmined transactions of ours in
    # a chain (Bitcoin Core's default ancestor limit; ARC allows 10,000, the BSV node 1,000); 0 = mined
    # coins only.
    max_unconfirmed_depth: int = 25


@dataclass(frozen=True, slots=True)
class _Built:
    work: SendWork
    plan: SendPlan
    lease: PoolLease
    unsigned: bytes
    change: WalletCoin | None


class SendPipeline:
    def __init__(
        self,
        store: Store,
        chain: ChainRules,
        pool: CoinPool,
        window: CoinWindow,
        signer: Signer,
        gateway: ChainGateway,
        change_key: IssuedKey,
        config: PipelineConfig,
        owner: str,
    ) -> None:
        self._store = store
        self._chain = chain
        self._pool = pool
        self._window = window
        self._signer = signer
        self._gateway = gateway
        self._change_key = change_key
        self._config = config
        self._owner = owner
        self._actor = Actor(f"wallet-worker/{owner}")
        self._log = get_logger("wallet.sends")

    def _retry_in(self, attempts: int) -> float:
        return float(min(self._config.retry_max_s, self._config.retry_base_s * 2 ** min(attempts, 16)))

    # --- PENDING -> SENDING ----------------------------------------------------------------------

    async def build_round(self) -> int:
        async with self._store.unit_of_work() as uow:
            works = await uow.claim_sends(
                [TxStatus.PENDING], self._owner, self._config.batch, self._config.work_lease_s
            )
        if not works:
            return 0
        candidates = await self._window.candidates()
        planned: list[tuple[SendWork, SendPlan]] = []
        for work in works:
            plan = await self._plan(work, candidates)
            if plan is not None:
                planned.append((work, plan))
                self._window.take(plan.coins)
        built = await self._lease(planned) if planned else []
        if built:
            await self._broadcast(await self._sign(built))
        return len(works)

    async def _plan(self, work: SendWork, candidates: Candidates) -> SendPlan | None:
        amount = work.debit_satoshis if work.subtract_fee else work.amount_satoshis
        plan = plan_send(
            self._chain,
            candidates,
            work.to_script,
            amount,
            work.fee_rate_satoshis_per_kb,
            self._config.long_term_fee_rate_per_kb,
            work.subtract_fee,
        )
        if plan is None:
            await self._wait_for_coins(work, "no leasable coins cover the send now")
            return None
        if plan.fee_satoshis > work.max_fee_satoshis:
            await self._fail_unsigned(
                work,
                FailureReason.FEE_LIMIT_EXCEEDED,
                f"fee {plan.fee_satoshis} sat above the limit {work.max_fee_satoshis}",
            )
            return None
        return plan

    async def _lease(self, planned: Sequence[tuple[SendWork, SendPlan]]) -> list[_Built]:
        """One lease for the round's coins; when one of them was taken meanwhile, one lease per send,
        so the others go ahead."""
        try:
            lease = await self._pool.lease_outpoints(
                derived_request_id("wlease", *(f"{w.transaction_id}/{w.fence}" for w, _ in planned)),
                [c.outpoint for _, plan in planned for c in plan.coins],
                self._config.coin_lease_s,
                f"wallet/{self._owner}/{len(planned)} sends",
                self._config.max_unconfirmed_depth,
            )
            return [self._built(work, plan, lease) for work, plan in planned]
        except DomainError:
            self._window.invalidate()
            if len(planned) == 1:
                self._window.forget(c.outpoint for c in planned[0][1].coins)
                await self._wait_for_coins(planned[0][0], "coins taken meanwhile")
                return []
        built: list[_Built] = []
        for work, plan in planned:
            try:
                lease = await self._pool.lease_outpoints(
                    derived_request_id("wlease", work.transaction_id, work.fence),
                    [c.outpoint for c in plan.coins],
                    self._config.coin_lease_s,
                    f"wallet/{self._owner}/{work.transaction_id}",
                    self._config.max_unconfirmed_depth,
                )
            except DomainError as error:
                self._window.forget(c.outpoint for c in plan.coins)
                await self._wait_for_coins(work, f"coins taken meanwhile ({error.reason})")
                continue
            built.append(self._built(work, plan, lease))
        return built

    def _built(self, work: SendWork, plan: SendPlan, lease: PoolLease) -> _Built:
        outputs = [TxOutput(plan.recipient_satoshis, work.to_script)]
        change = None
        if plan.change_satoshis:
            outputs.append(TxOutput(plan.change_satoshis, self._change_key.locking_script))
            change = WalletCoin(
                Outpoint("", 1), plan.change_satoshis, self._change_key.locking_script, self._change_key.key_id
            )
        unsigned = self._chain.unsigned_transaction([c.outpoint for c in plan.coins], outputs)
        return _Built(work, plan, lease, unsigned, change)

    async def _release(self, item: _Built) -> None:
        outpoints = [c.outpoint for c in item.plan.coins]
        self._window.forget(outpoints)
        await self._pool.release(
            derived_request_id("wrelease", item.lease.lease_id, *outpoints), item.lease.lease_id, outpoints
        )

    async def _sign(self, built: Sequence[_Built]) -> list[SendWork]:
        """Signs the round, stores it SENDING and commits its spends; the sends as they now are (the
        worker still holds them: it broadcasts them next)."""
        request_id = derived_request_id("wsign", *(f"{b.work.transaction_id}/{b.work.fence}" for b in built))
        results = await self._signer.sign_transactions(request_id, [TxToSign(b.unsigned, b.plan.coins) for b in built])
        signed: list[tuple[_Built, SignedSend, WalletCoin | None]] = []
        for item, result in zip(built, results, strict=True):
            if isinstance(result, DomainError):
                await self._release(item)
                await self._fail_unsigned(
                    item.work,
                    FailureReason.POLICY_DENIED if result.reason == "POLICY_DENIED" else result.reason,
                    result.message,
                )
                continue
            change = None
            if item.change is not None:
                change = WalletCoin(
                    Outpoint(result.txid, 1), item.change.satoshis, item.change.locking_script, item.change.key_id
                )
            plan = item.plan
            send = SignedSend(
                item.work, result.txid, result.raw, plan.fee_satoshis, plan.recipient_satoshis, item.lease
            )
            signed.append((item, send, change))
        stored = await self._store_signed(signed) if signed else {}
        spends: dict[str, list[tuple[str, PoolSpend]]] = {}
        leases: dict[str, PoolLease] = {}
        for item, send, change in signed:
            if item.work.transaction_id not in stored:
                await self._release(item)
                continue
            spend = PoolSpend(send.txid, tuple(c.outpoint for c in item.plan.coins), change)
            spends.setdefault(item.lease.lease_id, []).append((item.work.transaction_id, spend))
            leases[item.lease.lease_id] = item.lease
        for lease_id, committed in spends.items():
            await self._commit_spends(leases[lease_id], committed, release_unspent=True)
        return list(stored.values())

    async def _commit_spends(
        self, lease: PoolLease, spends: Sequence[tuple[str, PoolSpend]], *, release_unspent: bool
    ) -> None:
        """CommitSpend before any broadcast; the round's lease lets go of what no spend used. The
        round's own sends are marked committed when accepted (`mark_accepted`); a repair after a
        crash commits one send at a time, releases nothing (other sends of the same lease may still
        be waiting for theirs) and marks it committed at once."""
        await self._pool.commit(
            # The lease is part of it: a send rebuilt from the same coin signs the same bytes again. A
            # repair asks anew (it releases nothing); an input already committed to the same txid is
            # the pool's "done before", whatever the request.
            derived_request_id(
                "wcommit" if release_unspent else "wcommit-repair",
                lease.lease_id,
                lease.fencing_token,
                *(s.txid for _, s in spends),
            ),
            lease,
            [s for _, s in spends],
            release_unspent=release_unspent,
        )
        if not release_unspent:
            async with self._store.unit_of_work() as uow:
                await uow.mark_spend_committed([t for t, _ in spends])

    async def _store_signed(
        self, signed: Sequence[tuple[_Built, SignedSend, WalletCoin | None]]
    ) -> dict[str, SendWork]:
        """The round's signed sends stored SENDING in one transaction: bytes, txid, spent inputs,
        change and ledger entry. A send whose fee grew beyond its reservation reserves the rest
        first, or waits PENDING when the account cannot pay it. The sends stored, as they now are."""
        async with self._store.unit_of_work() as uow:
            # The signed entries move only the house's books; a fee top-up moves its account's too.
            await uow.lock_books(
                [i.work.account_id for i, _, _ in signed if not i.work.subtract_fee and _fee_grew(i.work, i.plan)]
            )
            ready: list[tuple[_Built, SignedSend, WalletCoin | None]] = []
            debits: dict[str, int] = {}
            for item, send, change in signed:
                work, plan = item.work, item.plan
                debits[work.transaction_id] = work.debit_satoshis
                if not work.subtract_fee and _fee_grew(work, plan):
                    extra = plan.fee_satoshis - work.reserved_fee_satoshis
                    available, _ = (await uow.lock_accounts([work.account_id])).get(work.account_id, (0, 0))
                    if available < extra:
                        await uow.move_send(
                            work,
                            TxStatus.PENDING,
                            self._actor,
                            "INSUFFICIENT_FUNDS",
                            failure="INSUFFICIENT_FUNDS",
                            detail=f"the fee grew by {extra} sat",
                            retry_in_s=self._retry_in(work.builds),
                        )
                        continue
                    if not await uow.top_up(work, extra):
                        continue
                    await uow.post(ledger.reserve(work.transaction_id, work.account_id, extra), self._actor)
                    debits[work.transaction_id] += extra
                ready.append((item, send, change))
            moved = await uow.mark_signed([send for _, send, _ in ready], self._actor)
            stored = [(item, send, change) for item, send, change in ready if item.work.transaction_id in moved]
            await uow.spend_coins(
                [(i.work.transaction_id, send.txid, [c.outpoint for c in i.plan.coins]) for i, send, _ in stored]
            )
            await uow.add_coins(
                "change", [(item.work.transaction_id, change) for item, _, change in stored if change is not None]
            )
            await uow.post_many(
                [ledger.signed(i.work.transaction_id, i.work.account_id, i.plan.leaving) for i, _, _ in stored],
                self._actor,
            )
        return {
            item.work.transaction_id: replace(
                item.work,
                status=TxStatus.SENDING,
                txid=send.txid,
                raw_tx=send.raw_tx,
                fee_satoshis=send.fee_satoshis,
                amount_satoshis=send.amount_satoshis,
                debit_satoshis=debits[item.work.transaction_id],
                reserved_fee_satoshis=item.work.reserved_fee_satoshis
                + debits[item.work.transaction_id]
                - item.work.debit_satoshis,
                builds=item.work.builds + 1,
            )
            for item, send, _ in stored
        }

    async def _wait_for_coins(self, work: SendWork, detail: str) -> None:
        async with self._store.unit_of_work() as uow:
            if work.builds + 1 >= self._config.max_builds:
                await self._fail_unsigned_in(uow, work, FailureReason.COINS_UNAVAILABLE, detail)
            else:
                await uow.move_send(
                    work,
                    TxStatus.PENDING,
                    self._actor,
                    "COINS_UNAVAILABLE",
                    failure="COINS_UNAVAILABLE",
                    detail=detail,
                    builds=work.builds + 1,
                    retry_in_s=self._retry_in(work.builds),
                )

    async def _fail_unsigned(self, work: SendWork, reason: str, detail: str) -> None:
        async with self._store.unit_of_work() as uow:
            await self._fail_unsigned_in(uow, work, reason, detail)

    async def _fail_unsigned_in(self, uow: UnitOfWork, work: SendWork, reason: str, detail: str) -> None:
        if await uow.move_send(work, TxStatus.FAILED, self._actor, reason, failure=reason, detail=detail):
            await uow.post(ledger.release(work.transaction_id, work.account_id, work.debit_satoshis), self._actor)

    # --- SENDING -> UNCONFIRMED ------------------------------------------------------------------

    async def broadcast_round(self) -> int:
        async with self._store.unit_of_work() as uow:
            works = await uow.claim_sends(
                [TxStatus.SENDING], self._owner, self._config.batch, self._config.work_lease_s
            )
            uncommitted = await uow.uncommitted_spends([w.transaction_id for w in works])
        if not works:
            return 0
        for transaction_id, (lease, inputs, change, txid) in uncommitted.items():
            await self._commit_spends(lease, [(transaction_id, PoolSpend(txid, inputs, change))], release_unspent=False)
        await self._broadcast(works)
        return len(works)

    async def _broadcast(self, works: Sequence[SendWork]) -> None:
        """The same bytes to the network; the verdicts decide: accepted, proven dead, or later again."""
        if not works:
            return
        outcomes = await self._gateway.broadcast([PreparedTx.from_bytes(w.raw_tx) for w in works])
        dead: list[tuple[SendWork, OutcomeKind, str]] = []
        accepted: list[SendWork] = []
        for work in works:
            outcome = outcomes.get(work.txid)
            kind = outcome.kind if outcome else OutcomeKind.UNAVAILABLE
            if kind is OutcomeKind.ACCEPTED:
                accepted.append(work)
            elif kind in (
                OutcomeKind.DOUBLE_SPEND,
                OutcomeKind.MISSING_INPUTS,
                OutcomeKind.INVALID,
                OutcomeKind.FEE_TOO_LOW,
            ):
                dead.append((work, kind, outcome.reason if outcome else ""))
            else:
                await self._retry_broadcast(work, outcome.reason if outcome else "no answer")
        await self._accepted(accepted)
        if dead:
            states = await self._gateway.chain_states([w.txid for w, _, _ in dead])
            for work, kind, detail in dead:
                if states.get(work.txid) in _ACCEPTED_STATES:
                    await self._accepted([work])
                else:
                    await self._proven_dead(work, kind, detail)

    async def _accepted(self, works: Sequence[SendWork]) -> None:
        """Accepted by the network: UNCONFIRMED (final), each with its finalize entry, in one
        transaction."""
        if not works:
            return
        async with self._store.unit_of_work() as uow:
            await uow.lock_books([w.account_id for w in works])
            moved = await uow.mark_accepted(works, self._actor, self._config.retry_max_s)
            await uow.post_many(
                [
                    ledger.finalize(w.transaction_id, w.account_id, w.debit_satoshis, _leaving(w))
                    for w in works
                    if w.transaction_id in moved
                ],
                self._actor,
            )
        await self._change_spendable([w.txid for w in works if w.transaction_id in moved])

    async def _change_spendable(self, txids: Sequence[str]) -> None:
        """Best effort: the pool may lease the change of these accepted sends before a block has
        it. When the pool cannot be told, the change waits for its block, as any coin does."""
        if not txids or not self._config.max_unconfirmed_depth:
            return
        try:
            await self._pool.report_accepted(derived_request_id("waccepted", *txids), txids)
        except DomainError as error:
            self._log.warning("pool.accepted_not_reported", reason=error.reason, txids=len(txids))

    async def _report_dead(
        self, work: SendWork, inputs: Sequence[Outpoint], double_spend: bool, competing: Sequence[str], detail: str
    ) -> None:
        """The pool judges the coins; sends of ours that spent this one's change are dead with it, and
        get their look at the chain at once."""
        descendants = await self._pool.report_dead(
            derived_request_id("wdead", work.txid, work.fence), work.txid, inputs, double_spend, competing, detail
        )
        if descendants:
            async with self._store.unit_of_work() as uow:
                await uow.due_now(descendants)

    async def _retry_broadcast(self, work: SendWork, detail: str) -> None:
        """No verdict: the same bytes again later, a bounded number of times. Then, unless the chain
        has it after all, the send FAILED with RETRIES_EXHAUSTED and the reservation released."""
        attempts = work.broadcast_attempts + 1
        if attempts >= self._config.max_broadcast_attempts:
            state = (await self._gateway.chain_states([work.txid])).get(work.txid)
            if state in _ACCEPTED_STATES:
                await self._accepted([work])
            else:
                await self._proven_dead(work, OutcomeKind.UNAVAILABLE, detail)
            return
        async with self._store.unit_of_work() as uow:
            await uow.move_send(
                work,
                TxStatus.SENDING,
                self._actor,
                "CHAIN_UNAVAILABLE",
                failure="CHAIN_UNAVAILABLE",
                detail=detail,
                broadcast_attempts=attempts,
                retry_in_s=self._retry_in(attempts),
            )

    async def _proven_dead(self, work: SendWork, kind: OutcomeKind, detail: str) -> None:
        """Rejected, or its inputs spent elsewhere, and not on the chain: its coins are the pool's to
        judge (DIRTY until the chain says), the send is built again from other coins while builds
        remain, else FAILED with the reservation released."""
        async with self._store.reader() as uow:
            inputs = [c.outpoint for c in await uow.coins_spent_by(work.transaction_id)]
        self._window.forget(inputs)
        double_spend = kind in (OutcomeKind.DOUBLE_SPEND, OutcomeKind.MISSING_INPUTS)
        await self._report_dead(work, inputs, double_spend, (), detail[:1024])
        leaving = work.amount_satoshis + work.fee_satoshis
        rebuild = kind not in (OutcomeKind.INVALID, OutcomeKind.UNAVAILABLE) and work.builds < self._config.max_builds
        async with self._store.unit_of_work() as uow:
            reason = {
                OutcomeKind.INVALID: FailureReason.BROADCAST_REJECTED,
                OutcomeKind.FEE_TOO_LOW: "FEE_TOO_LOW",
                OutcomeKind.UNAVAILABLE: FailureReason.RETRIES_EXHAUSTED,
            }.get(kind, FailureReason.DOUBLE_SPEND)
            target = TxStatus.PENDING if rebuild else TxStatus.FAILED
            if not await uow.move_send(
                work,
                target,
                self._actor,
                reason,
                failure=reason,
                detail=detail,
                broadcast_attempts=work.broadcast_attempts + 1,
            ):
                return
            await uow.forget_spends(work.transaction_id, work.txid)
            if double_spend:
                await uow.mark_suspect(inputs)
            await uow.post(ledger.unsigned(work.transaction_id, work.account_id, leaving), self._actor)
            if kind is OutcomeKind.FEE_TOO_LOW:
                await uow.refresh_fee_rate(work.transaction_id, await self._gateway.fee_rate_per_kb())
            if not rebuild:
                await uow.post(ledger.release(work.transaction_id, work.account_id, work.debit_satoshis), self._actor)

    # --- accepted, not mined yet ---------------------------------------------------------------

    async def recheck_round(self) -> int:
        """Accepted sends the blocks have not shown yet: still on the chain (mempool) → look again
        later; gone → the same bytes again; proven dead (an input spent by another transaction) →
        FAILED with the send credited back (its other coins are custody's again, and the coin spent
        elsewhere is judged by the audit round)."""
        async with self._store.unit_of_work() as uow:
            works = await uow.claim_unmined_sends(self._owner, self._config.batch, self._config.work_lease_s)
        if not works:
            return 0
        states = await self._gateway.chain_states([w.txid for w in works])
        gone = [w for w in works if states.get(w.txid) is TxChainState.UNKNOWN]
        async with self._store.unit_of_work() as uow:
            await uow.defer_sends([w for w in works if w not in gone], self._config.retry_max_s)
        if not gone:
            return 0
        inputs: dict[str, list[Outpoint]] = {}
        async with self._store.reader() as uow:
            for work in gone:
                inputs[work.transaction_id] = [c.outpoint for c in await uow.coins_spent_by(work.transaction_id)]
        pool_states = await self._pool.coin_states([o for os in inputs.values() for o in os])
        spenders = await self._gateway.spenders([o for os in inputs.values() for o in os])
        again: list[SendWork] = []
        for work in gone:
            others = {spenders[o] for o in inputs[work.transaction_id] if spenders.get(o, work.txid) != work.txid}
            dead_parents = [o for o in inputs[work.transaction_id] if pool_states.get(o, ("", ""))[0] == "INVALID"]
            if dead_parents:
                await self._reopen(work, inputs[work.transaction_id], dead_parents)
            elif others:
                await self._reverse_final(work, inputs[work.transaction_id], sorted(others))
            else:
                again.append(work)
        if again:
            # Accepted again or not, the chain is asked again later.
            await self._gateway.broadcast([PreparedTx.from_bytes(w.raw_tx) for w in again])
            async with self._store.unit_of_work() as uow:
                await uow.defer_sends(again, self._config.retry_max_s)
        return len(gone)

    async def _reverse_final(self, work: SendWork, inputs: list[Outpoint], others: list[str]) -> None:
        self._window.forget(inputs)
        await self._report_dead(work, inputs, True, others, "inputs spent elsewhere")
        leaving = work.amount_satoshis + work.fee_satoshis
        async with self._store.unit_of_work() as uow:
            if not await uow.move_send(
                work,
                TxStatus.FAILED,
                self._actor,
                FailureReason.DOUBLE_SPEND,
                failure=FailureReason.DOUBLE_SPEND,
                detail=f"an input is spent by {others[0]}",
            ):
                return
            await uow.forget_spends(work.transaction_id, work.txid)
            await uow.mark_suspect(inputs)
            await uow.post(ledger.send_reversed(work.transaction_id, work.account_id, leaving), self._actor)

    async def _reopen(self, work: SendWork, inputs: list[Outpoint], dead: list[Outpoint]) -> None:
        """An accepted send that spent change of ours whose transaction proved dead can never be
        mined: built again from other coins (UNCONFIRMED -> PENDING), with what it took (recipient +
        fee) reserved again; FAILED with the account credited back once its builds are used up."""
        self._window.forget(inputs)
        detail = f"it spends {dead[0]}, an output of a transaction that proved dead"
        await self._report_dead(work, inputs, True, (), detail)
        leaving = _leaving(work)
        rebuild = work.builds < self._config.max_builds
        async with self._store.unit_of_work() as uow:
            await uow.lock_books([work.account_id])
            if not await uow.move_send(
                work,
                TxStatus.PENDING if rebuild else TxStatus.FAILED,
                self._actor,
                FailureReason.ANCESTOR_DEAD,
                failure=FailureReason.ANCESTOR_DEAD,
                detail=detail,
                finalized=False if rebuild else None,
                reserved=(leaving, work.fee_satoshis) if rebuild else None,
            ):
                return
            await uow.forget_spends(work.transaction_id, work.txid)
            # Its other coins are most likely unspent again; the audit round settles each by the chain.
            await uow.mark_suspect(inputs)
            entry = ledger.reopened if rebuild else ledger.send_reversed
            await uow.post(entry(work.transaction_id, work.account_id, leaving), self._actor)

    # --- coins a failed send found spent ---------------------------------------------------------

    async def audit_round(self) -> int:
        """Coins our sends failed on: once the pool has the chain's word, a coin still unspent is
        ours again; one spent by a transaction we did not make (or gone) is written off as the
        house's loss, so no account pays for it and the ledger keeps matching the pool."""
        async with self._store.reader() as uow:
            suspects = await uow.suspect_coins(self._config.batch)
        if not suspects:
            return 0
        await self._pool.sync(sorted({c.key_id for c in suspects}))
        states = await self._pool.coin_states([c.outpoint for c in suspects])
        settled = 0
        for coin in suspects:
            status, spender = states.get(coin.outpoint, ("", ""))
            async with self._store.unit_of_work() as uow:
                # Change of ours whose transaction proved dead: its value left the books with that
                # send's own entries (unsigned, reversed or reopened), so nothing is written off.
                if status in ("AVAILABLE", "RESERVED", "UNCONFIRMED") or (
                    status == "INVALID" and await uow.is_our_change(coin.outpoint)
                ):
                    await uow.clear_suspect(coin.outpoint)
                    settled += 1
                elif status in ("SPENT", "INVALID") and not (spender and await uow.is_our_txid(spender)):
                    if await uow.write_off_coin(coin.outpoint, spender):
                        await uow.post(ledger.written_off(str(coin.outpoint), coin.satoshis), self._actor)
                        self._log.warning(
                            "coin.written_off", outpoint=str(coin.outpoint), spender=spender, satoshis=coin.satoshis
                        )
                    settled += 1
        return settled


def _leaving(work: SendWork) -> int:
    """What a signed send takes from custody: the recipient's output and the fee."""
    return work.amount_satoshis + work.fee_satoshis


def _fee_grew(work: SendWork, plan: SendPlan) -> bool:
    return plan.fee_satoshis > work.reserved_fee_satoshis
