"""The acceptance pipeline (arc-woc.md §6.2): ARC pre-validation (B) and node acceptance (C)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from services.chainsim.chain.clock import Clock
from services.chainsim.chain.scriptcheck import ScriptVerifier
from services.chainsim.chain.state import UNCONFIRMED, CallbackTarget, ChainState, NodeState, TxRecord
from services.chainsim.chain.status import ArcError, ArcStatus
from services.chainsim.chain.txcodec import ParsedTx, is_data_script, max_money, parse_one, push_only
from services.chainsim.settings import ChainsimSettings, Policy, Profile

_ZERO_TXID = bytes(32)
Prevouts = list[tuple[int, bytes]]


@dataclass(frozen=True, slots=True)
class SubmitOptions:
    """The X-Skip*/X-Force*/X-Cumulative* request headers."""

    skip_fee: bool = False
    skip_script: bool = False
    skip_tx: bool = False
    force: bool = False
    cumulative: bool = False


class Outcome(Enum):
    ACCEPTED = "accepted"
    KNOWN = "known"
    CONFLICT = "conflict"
    MISSING = "missing"
    INVALID = "invalid"


class NodeResult:
    __slots__ = ("competing", "kind", "reason", "record")

    def __init__(
        self,
        kind: Outcome,
        record: TxRecord | None,
        reason: str = "",
        competing: Sequence[bytes] = (),
    ) -> None:
        self.kind = kind
        self.record = record
        self.reason = reason
        self.competing = competing


class ArcValidator:
    """ARC's own checks before a transaction reaches the node (46x errors, §2.4 step 3)."""

    def __init__(self, state: ChainState, policy: Policy, verifier: ScriptVerifier) -> None:
        self.state = state
        self.policy = policy
        self.verifier = verifier
        self.block_height_available = True

    def extend(self, tx: ParsedTx) -> Prevouts:
        """Prevouts of a raw transaction from known parents, else 460 (as ARC's tx finder)."""
        out: Prevouts = []
        for op, _, _ in tx.inputs:
            found = self.state.output_of(op)
            if found is None:
                raise ArcError(460, "transaction is not in extended format\nparent transaction not found")
            out.append(found)
        return out

    def validate(self, tx: ParsedTx, opts: SubmitOptions) -> Prevouts | None:
        """Raise :class:`ArcError` on the first failed check; return the prevouts whose scripts
        were verified (None when scripts were not checked)."""
        if opts.skip_tx:
            return None
        policy = self.policy
        prevouts: Prevouts | None
        if tx.ef is not None:
            prevouts = tx.ef
        elif not policy.standard_format_supported:
            raise ArcError(460, "transaction is not in extended format")
        elif opts.skip_fee and opts.skip_script:
            prevouts = None
        else:
            prevouts = self.extend(tx)
        size = len(tx.raw)
        if not tx.inputs or not tx.outputs:
            raise ArcError(462, "transaction has no inputs or outputs")
        if size > policy.max_tx_size:
            raise ArcError(474, f"transaction size in bytes is greater than {policy.max_tx_size} bytes")
        limit = max_money()
        in_total = 0
        for i, (op, _, _) in enumerate(tx.inputs):
            if op[:32] == _ZERO_TXID:
                raise ArcError(462, f"transaction input is invalid\ninput {i} is a coinbase input")
            if prevouts is not None:
                sats = prevouts[i][0]
                if sats > limit:
                    raise ArcError(462, f"transaction input is invalid\ninput {i} satoshis is too high")
                in_total += sats
        if in_total > limit:
            raise ArcError(462, "transaction input is invalid\ninput total satoshis is too high")
        out_total = 0
        for i, (value, script) in enumerate(tx.outputs):
            data = is_data_script(script)
            if not data and (value > limit or value < 1):
                raise ArcError(464, f"transaction output is invalid\noutput {i} satoshis is invalid")
            if data and value != 0:
                raise ArcError(464, f"transaction output is invalid\noutput {i} has non 0 value op return")
            out_total += value
        if out_total > limit:
            raise ArcError(464, "transaction output is invalid\noutput total satoshis is too high")
        if size < 61:
            raise ArcError(463, "transaction size in bytes is less than 61 bytes")
        if policy.max_tx_sigops < 4_294_967_295:
            sigops = sum(s.count(b"\xac") + s.count(b"\xad") for _, s in tx.outputs)
            if sigops > policy.max_tx_sigops:
                raise ArcError(463, f"transaction unlocking scripts have too many sigops\nsigops: {sigops}")
        if tx.version < 2:
            for i, (_, unlock, _) in enumerate(tx.inputs):
                if not unlock:
                    raise ArcError(463, f"transaction input unlocking script is empty\ninput: {i}")
                if not push_only(unlock):
                    raise ArcError(463, f"transaction input unlocking script is not push only\ninput: {i}")
        if not opts.skip_fee and prevouts is not None:
            expected = policy.min_fee(size)
            actual = in_total - out_total if in_total >= out_total else 0
            if actual < expected:
                raise ArcError(
                    465,
                    f"transaction fee is too low\nminimum expected fee: {expected}, actual fee: {actual}",
                )
            if opts.cumulative:
                self._cumulative(tx, actual)
        if opts.skip_script or prevouts is None:
            return None
        if not self.block_height_available:
            raise ArcError(409, "block height not yet available", prefixed=False)
        reason = self.verifier.verify(tx, prevouts)
        if reason is not None:
            raise ArcError(461, f"script execution failed\n{reason}")
        return prevouts

    def _cumulative(self, tx: ParsedTx, own_fee: int) -> None:
        """Fee of ``tx`` plus its unmined ancestors against their combined minimum (473)."""
        state = self.state
        expected = self.policy.min_fee(len(tx.raw))
        paid = own_fee
        seen: set[bytes] = set()
        stack = [op[:32] for op, _, _ in tx.inputs]
        while stack:
            parent = state.txs.get(stack.pop())
            if parent is None or parent.txid in seen or parent.node != NodeState.MEMPOOL:
                continue
            seen.add(parent.txid)
            expected += self.policy.min_fee(parent.size)
            paid += parent.fee
            stack.extend(op[:32] for op in parent.inputs)
        if paid < expected:
            raise ArcError(
                473,
                "transaction fee is too low\n"
                f"minimum expected cumulative fee: {expected}, actual cumulative fee: {paid}",
            )


class NodeAcceptor:
    """The simulated node's mempool acceptance, shared by the ARC and WoC faces (§6.2 C)."""

    def __init__(self, state: ChainState, settings: ChainsimSettings, verifier: ScriptVerifier, clock: Clock) -> None:
        self.state = state
        self.settings = settings
        self.verifier = verifier
        self.clock = clock
        self.accepted_status = ArcStatus.SEEN_ON_NETWORK
        self.node_fee_sat_per_kb = settings.node_fee_sat_per_kb
        self._promotions: deque[bytes] = deque()
        self._promoting = False

    def submit(
        self,
        tx: ParsedTx,
        origin: str,
        *,
        verified: Prevouts | None = None,
        store_failures: bool = True,
        callback: CallbackTarget | None = None,
        full_updates: bool = False,
    ) -> NodeResult:
        existing = self.state.txs.get(tx.txid)
        # the node itself does not remember rejected transactions: WoC re-evaluates them
        if existing is not None and (existing.node != NodeState.REJECTED or store_failures):
            return NodeResult(Outcome.KNOWN, existing)
        return self.evaluate(
            tx,
            origin,
            existing=existing,
            verified=verified,
            store_failures=store_failures,
            callback=callback,
            full_updates=full_updates,
        )

    def evaluate(
        self,
        tx: ParsedTx,
        origin: str,
        *,
        existing: TxRecord | None = None,
        verified: Prevouts | None = None,
        store_failures: bool = True,
        callback: CallbackTarget | None = None,
        full_updates: bool = False,
        accepted_status: ArcStatus | None = None,
        skip_scripts: bool = False,
    ) -> NodeResult:
        state = self.state
        utxos = state.utxos
        spends = state.mempool_spends
        inputs = tx.inputs
        ops = tuple(i[0] for i in inputs)
        txid = tx.txid
        if not ops or not tx.outputs:
            return self._invalid(
                tx,
                existing,
                origin,
                "bad-txns-vin-empty" if not ops else "bad-txns-vout-empty",
                store_failures,
                callback,
                full_updates,
            )
        if len(ops) > 1 and len(set(ops)) != len(ops):
            return self._invalid(
                tx, existing, origin, "bad-txns-inputs-duplicate", store_failures, callback, full_updates
            )
        conflicts: list[bytes] | None = None
        missing: list[bytes] | None = None
        prevouts: Prevouts = []
        in_total = 0
        depth = 0
        premature = False
        next_height = state.height + 1
        maturity = self.settings.coinbase_maturity
        for op in ops:
            u = utxos.get(op)
            if u is None:
                if missing is None:
                    missing = []
                missing.append(op)
                continue
            spender = spends.get(op)
            if spender is not None and spender != txid:
                if conflicts is None:
                    conflicts = []
                if spender not in conflicts:
                    conflicts.append(spender)
                continue
            prevouts.append((u[0], u[1]))
            in_total += u[0]
            h = u[2]
            if h == UNCONFIRMED:
                parent = state.txs.get(op[:32])
                if parent is not None and parent.depth >= depth:
                    depth = parent.depth + 1
            elif u[3] and next_height - h < maturity:
                premature = True
        if conflicts is not None:
            return self._conflict(tx, existing, origin, conflicts, store_failures, callback, full_updates)
        if missing is not None:
            return self._missing(tx, existing, origin, missing, store_failures, callback, full_updates)
        out_total = 0
        for value, script in tx.outputs:
            if is_data_script(script):
                if value != 0:
                    return self._invalid(
                        tx, existing, origin, "bad-txns-opreturn-nonzero", store_failures, callback, full_updates
                    )
            elif value < 1:
                return self._invalid(tx, existing, origin, "dust", store_failures, callback, full_updates)
            out_total += value
        if in_total < out_total:
            return self._invalid(tx, existing, origin, "bad-txns-in-belowout", store_failures, callback, full_updates)
        if premature:
            return self._invalid(
                tx, existing, origin, "bad-txns-premature-spend-of-coinbase", store_failures, callback, full_updates
            )
        if depth + 1 > self.settings.limit_ancestor_count:
            return self._invalid(tx, existing, origin, "too-long-mempool-chain", store_failures, callback, full_updates)
        if not skip_scripts and (verified is None or verified != prevouts):
            reason = self.verifier.verify(tx, prevouts)
            if reason is not None:
                return self._invalid(tx, existing, origin, reason, store_failures, callback, full_updates)
        fee = in_total - out_total
        floor = (len(tx.raw) * self.node_fee_sat_per_kb + 999) // 1000
        if fee < floor:
            return self._invalid(
                tx, existing, origin, "mempool min fee not met", store_failures, callback, full_updates
            )
        rec = existing
        if rec is None:
            rec = TxRecord(
                txid, tx.raw, ops, len(tx.outputs), fee, NodeState.MEMPOOL, ArcStatus.UNKNOWN, self.clock.now(), origin
            )
            state.txs[txid] = rec
        else:
            rec.fee = fee
        rec.depth = depth
        self._attach(rec, callback, full_updates)
        state.add_to_mempool(rec, tx)
        target = accepted_status or self.accepted_status
        state.set_status(rec, target, "", force=existing is not None and existing.node == NodeState.REJECTED)
        if state.orphan_waits:
            self.promote_orphans(state.orphans_waiting_on(txid, rec.n_out))
        return NodeResult(Outcome.ACCEPTED, rec)

    # ---- outcomes ----------------------------------------------------------------------------

    @staticmethod
    def _attach(rec: TxRecord, callback: CallbackTarget | None, full_updates: bool) -> None:
        if callback is not None:
            if rec.callbacks is None:
                rec.callbacks = [callback]
            elif callback not in rec.callbacks:
                rec.callbacks.append(callback)
        if full_updates:
            rec.full_updates = True

    def _new_record(self, tx: ParsedTx, origin: str, node: NodeState) -> TxRecord:
        rec = TxRecord(
            tx.txid,
            tx.raw,
            tuple(i[0] for i in tx.inputs),
            len(tx.outputs),
            0,
            node,
            ArcStatus.UNKNOWN,
            self.clock.now(),
            origin,
        )
        self.state.txs[tx.txid] = rec
        return rec

    def _conflict(
        self,
        tx: ParsedTx,
        existing: TxRecord | None,
        origin: str,
        conflicts: list[bytes],
        store: bool,
        callback: CallbackTarget | None,
        full_updates: bool,
    ) -> NodeResult:
        state = self.state
        rec: TxRecord | None = existing if store else None
        if rec is None and store:
            rec = self._new_record(tx, origin, NodeState.COMPETITOR)
        if rec is not None:
            rec.node = NodeState.COMPETITOR
            self._attach(rec, callback, full_updates)
            for other in conflicts:
                state.add_competitor(rec, other)
        for winner_txid in conflicts:
            winner = state.txs.get(winner_txid)
            if winner is not None:
                state.add_competitor(winner, tx.txid)
                state.set_status(winner, ArcStatus.DOUBLE_SPEND_ATTEMPTED)
        if rec is not None:
            state.set_status(rec, ArcStatus.DOUBLE_SPEND_ATTEMPTED, force=existing is not None)
        return NodeResult(Outcome.CONFLICT, rec, "txn-mempool-conflict", conflicts)

    def _missing(
        self,
        tx: ParsedTx,
        existing: TxRecord | None,
        origin: str,
        missing: list[bytes],
        store: bool,
        callback: CallbackTarget | None,
        full_updates: bool,
    ) -> NodeResult:
        state = self.state
        if self.settings.profile == Profile.STRICT:
            return self._invalid(
                tx, existing, origin, "missing inputs", store, callback, full_updates, kind=Outcome.MISSING
            )
        rec: TxRecord | None = existing if store else None
        if rec is None and store:
            rec = self._new_record(tx, origin, NodeState.ORPHAN)
        if rec is not None:
            self._attach(rec, callback, full_updates)
            state.add_orphan(rec, missing, self.clock.now() + self.settings.orphan_ttl_s)
            state.set_status(rec, ArcStatus.SEEN_IN_ORPHAN_MEMPOOL, force=existing is not None)
        return NodeResult(Outcome.MISSING, rec, "Missing inputs")

    def _invalid(
        self,
        tx: ParsedTx,
        existing: TxRecord | None,
        origin: str,
        reason: str,
        store: bool,
        callback: CallbackTarget | None,
        full_updates: bool,
        kind: Outcome = Outcome.INVALID,
    ) -> NodeResult:
        rec: TxRecord | None = existing if store else None
        if rec is None and store:
            rec = self._new_record(tx, origin, NodeState.REJECTED)
        if rec is not None:
            rec.node = NodeState.REJECTED
            self._attach(rec, callback, full_updates)
            self.state.set_status(rec, ArcStatus.REJECTED, f"invalid transaction: {reason}", force=existing is not None)
        return NodeResult(kind, rec, reason)

    # ---- orphans -----------------------------------------------------------------------------

    def promote_orphans(self, txids: list[bytes]) -> None:
        """Re-run acceptance for orphans whose missing outputs may now exist."""
        self._promotions.extend(txids)
        if self._promoting:
            return  # the running loop below picks them up (no recursion along long chains)
        self._promoting = True
        try:
            queue = self._promotions
            while queue:
                rec = self.state.txs.get(queue.popleft())
                if rec is None or rec.node != NodeState.ORPHAN:
                    continue
                self.state.drop_orphan(rec)
                self.evaluate(parse_one(rec.raw), rec.origin, existing=rec, accepted_status=ArcStatus.SEEN_ON_NETWORK)
        finally:
            self._promoting = False
            self._promotions.clear()

    def expire_orphans(self) -> int:
        """Reject orphans whose TTL has passed (``discarded from mempool: orphan expired``)."""
        now = self.clock.now()
        expired = [t for t, exp in self.state.orphans.items() if exp <= now]
        for t in expired:
            rec = self.state.txs[t]
            self.state.drop_orphan(rec)
            rec.node = NodeState.REJECTED
            self.state.set_status(rec, ArcStatus.REJECTED, "discarded from mempool: orphan expired", force=True)
        return len(expired)

    def evict(self, rec: TxRecord, extra_info: str) -> list[TxRecord]:
        """Drop ``rec`` and its mempool descendants; all become REJECTED with ``extra_info``."""
        state = self.state
        if rec.node == NodeState.ORPHAN:
            state.drop_orphan(rec)
            rec.node = NodeState.REJECTED
            state.set_status(rec, ArcStatus.REJECTED, extra_info, force=True)
            return [rec]
        if rec.node != NodeState.MEMPOOL:
            rec.node = NodeState.REJECTED
            state.set_status(rec, ArcStatus.REJECTED, extra_info, force=True)
            return [rec]
        victims = [rec, *state.descendants(rec)]
        for victim in reversed(victims):
            state.remove_from_mempool(victim)
            victim.node = NodeState.REJECTED
        for victim in victims:
            state.set_status(victim, ArcStatus.REJECTED, extra_info, force=True)
        return victims
