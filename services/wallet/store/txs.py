"""Wallet transactions: sends recorded at intake, reads, claims by the workers and fenced moves.

Every status change writes its tx_audit row in the same statement; the migration refuses a move
the FSM does not have and a status change without its audit row."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from proofline_kit.database import Queries
from proofline_kit.wire import Outpoint
from services.wallet.domain.models import Actor, TxFilter, TxStatus, WalletTx
from services.wallet.domain.ports import NewSend, PoolLease, SendWork, SignedSend, WalletCoin
from services.wallet.store.rows import tx_columns, tx_from_row

_WORK_COLUMNS = (
    "transaction_id, account_id, status, fence, txid, raw_tx, to_script, amount_satoshis, debit_satoshis,"
    " reserved_fee_satoshis, fee_satoshis, fee_rate_satoshis_per_kb, max_fee_satoshis, subtract_fee,"
    " broadcast_attempts, builds, block_height, required_confirmations"
)


def _work(row: asyncpg.Record) -> SendWork:
    return SendWork(
        transaction_id=row["transaction_id"],
        account_id=row["account_id"],
        status=TxStatus(row["status"]),
        fence=int(row["fence"]),
        txid=row["txid"] or "",
        raw_tx=bytes(row["raw_tx"] or b""),
        to_script=bytes(row["to_script"] or b""),
        amount_satoshis=int(row["amount_satoshis"]),
        debit_satoshis=int(row["debit_satoshis"]),
        reserved_fee_satoshis=int(row["reserved_fee_satoshis"]),
        fee_satoshis=int(row["fee_satoshis"]),
        fee_rate_satoshis_per_kb=int(row["fee_rate_satoshis_per_kb"]),
        max_fee_satoshis=int(row["max_fee_satoshis"]),
        subtract_fee=bool(row["subtract_fee"]),
        broadcast_attempts=int(row["broadcast_attempts"]),
        builds=int(row["builds"]),
        block_height=int(row["block_height"] or 0),
        required_confirmations=int(row["required_confirmations"]),
    )


class TxQueries(Queries):
    async def insert_sends(self, sends: Sequence[NewSend]) -> list[WalletTx]:
        """PENDING, each with its SEND_RECORDED audit row (actor: its caller), in one statement."""
        rows = await self._conn.fetch(
            f"""WITH n AS (
                   SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[],
                       $6::bigint[], $7::bigint[], $8::boolean[], $9::text[], $10::bytea[], $11::text[],
                       $12::text[], $13::text[], $14::int[])
                   AS n (transaction_id, account_id, amount, debit, fee, rate, max_fee, subtract_fee, address,
                         to_script, memo, request_id, caller_id, confirmations)
               ), inserted AS (
                   INSERT INTO wallet_txs AS t (transaction_id, account_id, direction, status, amount_satoshis,
                       debit_satoshis, reserved_fee_satoshis, fee_satoshis, fee_rate_satoshis_per_kb,
                       max_fee_satoshis, subtract_fee, address, to_script, memo, request_id, caller_id,
                       required_confirmations)
                   SELECT transaction_id, account_id, 'outgoing', 'pending', amount, debit, fee, fee, rate, max_fee,
                          subtract_fee, address, to_script, memo, request_id, caller_id, confirmations
                   FROM n
                   RETURNING {tx_columns(False)}
               ), audit AS (
                   INSERT INTO tx_audit (transaction_id, from_status, to_status, actor, request_id, reason)
                   SELECT transaction_id, NULL, 'pending', caller_id, request_id, 'SEND_RECORDED' FROM n
               )
               SELECT * FROM inserted""",
            [s.transaction_id for s in sends],
            [s.account_id for s in sends],
            [s.amount_satoshis for s in sends],
            [s.debit_satoshis for s in sends],
            [s.reserved_fee_satoshis for s in sends],
            [s.fee_rate_satoshis_per_kb for s in sends],
            [s.max_fee_satoshis for s in sends],
            [s.subtract_fee for s in sends],
            [s.to_address for s in sends],
            [s.to_script for s in sends],
            [s.memo for s in sends],
            [s.request_id for s in sends],
            [s.caller_id for s in sends],
            [s.required_confirmations for s in sends],
        )
        by_id = {r["transaction_id"]: tx_from_row(r) for r in rows}
        return [by_id[s.transaction_id] for s in sends]

    async def transactions(self, transaction_ids: Sequence[str], *, full: bool = False) -> dict[str, WalletTx]:
        rows = await self._conn.fetch(
            f"SELECT {tx_columns(full)} FROM wallet_txs t WHERE t.transaction_id = ANY($1::text[])",
            list(transaction_ids),
        )
        return {r["transaction_id"]: tx_from_row(r) for r in rows}

    async def list_transactions(
        self, where: TxFilter, before_seq: int | None, limit: int, *, full: bool
    ) -> list[tuple[int, WalletTx]]:
        """Newest first (by `seq`, so a transaction recorded later never shifts a later page)."""
        rows = await self._conn.fetch(
            f"""SELECT t.seq, {tx_columns(full)} FROM wallet_txs t
                WHERE t.account_id = $1
                  AND ($2 = '' OR t.direction = $2)
                  AND (cardinality($3::text[]) = 0 OR t.status = ANY($3::text[]))
                  AND ($4 = '' OR t.txid = $4)
                  AND ($5::timestamptz IS NULL OR t.created_at >= $5)
                  AND ($6::timestamptz IS NULL OR t.created_at < $6)
                  AND ($7::bigint IS NULL OR t.seq < $7)
                ORDER BY t.seq DESC
                LIMIT $8""",
            where.account_id,
            where.direction.value if where.direction else "",
            [s.value for s in where.statuses],
            where.txid,
            where.start_time,
            where.end_time,
            before_seq,
            limit,
        )
        return [(int(r["seq"]), tx_from_row(r)) for r in rows]

    async def claim_sends(self, statuses: Sequence[TxStatus], owner: str, limit: int, lease_s: float) -> list[SendWork]:
        """Sends due in `statuses` that nobody holds (or whose holder's lease ran out), each under a
        new fencing token."""
        rows = await self._conn.fetch(
            f"""UPDATE wallet_txs w SET lease_owner = $2, fence = nextval('wallet_fences'),
                       lease_until = now() + make_interval(secs => $3)
                FROM (
                    SELECT transaction_id FROM wallet_txs
                    WHERE direction = 'outgoing' AND status = ANY($1::text[]) AND next_attempt_at <= now()
                      AND (lease_until IS NULL OR lease_until < now())
                    ORDER BY next_attempt_at, seq
                    LIMIT $4
                    FOR UPDATE SKIP LOCKED
                ) due
                WHERE w.transaction_id = due.transaction_id
                RETURNING {", ".join("w." + c.strip() for c in _WORK_COLUMNS.split(","))}""",
            [s.value for s in statuses],
            owner,
            lease_s,
            limit,
        )
        return [_work(r) for r in rows]

    async def move_send(
        self,
        work: SendWork,
        to: TxStatus,
        actor: Actor,
        reason: str,
        *,
        detail: str = "",
        txid: str | None = None,
        raw_tx: bytes | None = None,
        fee_satoshis: int | None = None,
        amount_satoshis: int | None = None,
        fee_rate_satoshis_per_kb: int | None = None,
        broadcast_attempts: int | None = None,
        builds: int | None = None,
        retry_in_s: float = 0.0,
        finalized: bool | None = None,
        block: tuple[str, int, str] | None = None,
        failure: str = "",
        reserved: tuple[int, int] | None = None,
    ) -> bool:
        """Applies the change when the row still carries `work.fence` and is still in `work.status`
        (else False, nothing written), and lets the row go. `reason` is the audit's; `failure`
        becomes failure_reason (the failure of a FAILED send, or the transient one being retried).
        A move to the same status updates the row without an audit row. `reserved`: the send's
        reservation is now (debit, reserved fee)."""
        row = await self._conn.fetchrow(
            """WITH moved AS (
                   UPDATE wallet_txs SET
                       status = $3,
                       txid = coalesce($4, txid),
                       raw_tx = coalesce($5, raw_tx),
                       fee_satoshis = coalesce($6, fee_satoshis),
                       amount_satoshis = coalesce($7, amount_satoshis),
                       fee_rate_satoshis_per_kb = coalesce($8, fee_rate_satoshis_per_kb),
                       broadcast_attempts = coalesce($9, broadcast_attempts),
                       builds = coalesce($10, builds),
                       failure_reason = $18,
                       failure_detail = CASE WHEN $3 IN ('unconfirmed', 'confirmed') THEN '' ELSE $12 END,
                       next_attempt_at = now() + make_interval(secs => $13),
                       finalized = coalesce($14, finalized),
                       debit_satoshis = coalesce($22, debit_satoshis),
                       reserved_fee_satoshis = coalesce($23, reserved_fee_satoshis),
                       block_hash = CASE WHEN $15::text IS NULL THEN block_hash ELSE nullif($15, '') END,
                       block_height = CASE WHEN $15::text IS NULL THEN block_height
                                           ELSE nullif($16::bigint, 0) END,
                       merkle_path = CASE WHEN $15::text IS NULL THEN merkle_path ELSE nullif($17, '') END,
                       accepted_at = CASE WHEN $3 = 'unconfirmed' AND accepted_at IS NULL THEN now()
                                          ELSE accepted_at END,
                       confirmed_at = CASE WHEN $3 = 'confirmed' THEN coalesce(
                                               CASE WHEN status = 'confirmed' THEN confirmed_at END, now())
                                           WHEN $3 = 'reorging' THEN NULL ELSE confirmed_at END,
                       lease_owner = NULL,
                       lease_until = NULL
                   WHERE transaction_id = $1 AND fence = $2 AND status = $21
                   RETURNING transaction_id, status, txid,
                             (SELECT status FROM wallet_txs o WHERE o.transaction_id = $1) AS from_status
               ), audit AS (
                   INSERT INTO tx_audit (transaction_id, from_status, to_status, txid, actor, request_id,
                                         reason, detail)
                   SELECT transaction_id, from_status, status, txid, $19, $20, $11, left($12, 1024) FROM moved
                   WHERE from_status IS DISTINCT FROM status
               )
               SELECT count(*) AS n FROM moved""",
            work.transaction_id,
            work.fence,
            to.value,
            txid,
            raw_tx,
            fee_satoshis,
            amount_satoshis,
            fee_rate_satoshis_per_kb,
            broadcast_attempts,
            builds,
            reason,
            detail[:1024],
            retry_in_s,
            finalized,
            block[0] if block else None,
            block[1] if block else 0,
            block[2] if block else "",
            failure if to not in (TxStatus.UNCONFIRMED, TxStatus.CONFIRMED) else "",
            actor.caller_id,
            actor.request_id,
            work.status.value,
            reserved[0] if reserved else None,
            reserved[1] if reserved else None,
        )
        return bool(row and row["n"])

    async def spend_coins(self, spends: Sequence[tuple[str, str, Sequence[Outpoint]]]) -> None:
        """Marks the inputs spent by signed transactions, (transaction_id, txid, inputs) each (coins
        the wallet does not know yet, such as a deposit credited meanwhile, are added by their own
        path)."""
        rows = [(transaction_id, txid, o) for transaction_id, txid, inputs in spends for o in inputs]
        await self._conn.execute(
            """UPDATE wallet_coins c SET spent_by = o.transaction_id, spent_txid = o.spent_txid
               FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
                    AS o (transaction_id, spent_txid, txid, vout)
               WHERE c.txid = o.txid AND c.vout = o.vout""",
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2].txid for r in rows],
            [r[2].vout for r in rows],
        )

    async def forget_spends(self, transaction_id: str, txid: str) -> None:
        """The signed transaction proved dead: its inputs are unspent again, its change never was."""
        await self._conn.execute(
            "UPDATE wallet_coins SET spent_by = NULL, spent_txid = NULL WHERE spent_by = $1 AND spent_txid = $2",
            transaction_id,
            txid,
        )
        await self._conn.execute("UPDATE wallet_coins SET dead = true WHERE txid = $1", txid)

    async def add_coins(self, origin: str, coins: Sequence[tuple[str, WalletCoin]]) -> None:
        """Coins the wallet expects in the pool, each with the wallet transaction it came from."""
        await self._conn.execute(
            """INSERT INTO wallet_coins (txid, vout, satoshis, locking_script, key_id, origin, transaction_id)
               SELECT c.txid, c.vout, c.satoshis, c.script, c.key_id, $1, c.transaction_id
               FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bytea[], $7::text[])
                    AS c (transaction_id, txid, vout, satoshis, script, key_id)
               ON CONFLICT (txid, vout) DO NOTHING""",
            origin,
            [t for t, _ in coins],
            [c.outpoint.txid for _, c in coins],
            [c.outpoint.vout for _, c in coins],
            [c.satoshis for _, c in coins],
            [c.locking_script for _, c in coins],
            [c.key_id for _, c in coins],
        )

    async def coins_spent_by(self, transaction_id: str) -> list[WalletCoin]:
        rows = await self._conn.fetch(
            "SELECT txid, vout, satoshis, locking_script, key_id FROM wallet_coins WHERE spent_by = $1"
            " ORDER BY txid, vout",
            transaction_id,
        )
        return [
            WalletCoin(Outpoint(r["txid"], int(r["vout"])), int(r["satoshis"]), bytes(r["locking_script"]), r["key_id"])
            for r in rows
        ]

    async def claim_unmined_sends(self, owner: str, limit: int, lease_s: float) -> list[SendWork]:
        """Accepted sends not in a block yet, due for a look at the chain."""
        rows = await self._conn.fetch(
            f"""UPDATE wallet_txs w SET lease_owner = $1, fence = nextval('wallet_fences'),
                       lease_until = now() + make_interval(secs => $2)
                FROM (
                    SELECT transaction_id FROM wallet_txs
                    WHERE direction = 'outgoing' AND status = 'unconfirmed' AND block_height IS NULL
                      AND next_attempt_at <= now() AND (lease_until IS NULL OR lease_until < now())
                    ORDER BY next_attempt_at
                    LIMIT $3
                    FOR UPDATE SKIP LOCKED
                ) due
                WHERE w.transaction_id = due.transaction_id
                RETURNING {", ".join("w." + c.strip() for c in _WORK_COLUMNS.split(","))}""",
            owner,
            lease_s,
            limit,
        )
        return [_work(r) for r in rows]

    async def top_up(self, work: SendWork, extra: int) -> bool:
        """A PENDING send's reservation grows by `extra` while its row still carries `work.fence`."""
        status = await self._conn.execute(
            """UPDATE wallet_txs SET debit_satoshis = debit_satoshis + $3,
                      reserved_fee_satoshis = reserved_fee_satoshis + $3
               WHERE transaction_id = $1 AND fence = $2 AND status = 'pending'""",
            work.transaction_id,
            work.fence,
            extra,
        )
        return status.endswith(" 1")

    async def refresh_fee_rate(self, transaction_id: str, rate_per_kb: int) -> None:
        await self._conn.execute(
            "UPDATE wallet_txs SET fee_rate_satoshis_per_kb = greatest(fee_rate_satoshis_per_kb, $2)"
            " WHERE transaction_id = $1",
            transaction_id,
            rate_per_kb,
        )

    async def mark_spend_committed(self, transaction_ids: Sequence[str]) -> None:
        """The pool has the spends of these signed sends (a repair after a crash)."""
        await self._conn.execute(
            "UPDATE wallet_txs SET spend_committed = true WHERE transaction_id = ANY($1::text[])",
            list(transaction_ids),
        )

    async def due_now(self, txids: Sequence[str]) -> None:
        """Our sends with these txids, signed or accepted, get a look at once (not claimed ones)."""
        await self._conn.execute(
            """UPDATE wallet_txs SET next_attempt_at = now()
               WHERE txid = ANY($1::text[]) AND direction = 'outgoing' AND status IN ('sending', 'unconfirmed')
                 AND next_attempt_at > now()""",
            list(txids),
        )

    async def defer_sends(self, works: Sequence[SendWork], retry_in_s: float) -> None:
        """Claimed sends let go unchanged (those whose row still carries their fence), due again in
        `retry_in_s`."""
        await self._conn.execute(
            """UPDATE wallet_txs w SET next_attempt_at = now() + make_interval(secs => $3),
                   lease_owner = NULL, lease_until = NULL
               FROM unnest($1::text[], $2::bigint[]) AS s (transaction_id, fence)
               WHERE w.transaction_id = s.transaction_id AND w.fence = s.fence""",
            [w.transaction_id for w in works],
            [w.fence for w in works],
            retry_in_s,
        )

    async def mark_signed(self, signed: Sequence[SignedSend], actor: Actor) -> set[str]:
        """PENDING -> SENDING for the sends whose row still carries their fence, with their signed
        bytes and the pool lease of their coins, and their audit rows; the transaction ids moved.
        The worker keeps its claim: it commits their spends and broadcasts them next."""
        rows = await self._conn.fetch(
            """WITH s AS (
                   SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bytea[], $5::bigint[],
                                        $6::bigint[], $7::text[], $8::bigint[])
                       AS s (transaction_id, fence, txid, raw_tx, fee, amount, lease_id, lease_token)
               ), moved AS (
                   UPDATE wallet_txs w SET status = 'sending', txid = s.txid, raw_tx = s.raw_tx,
                       fee_satoshis = s.fee, amount_satoshis = s.amount, builds = w.builds + 1,
                       failure_reason = '', failure_detail = '', next_attempt_at = now(),
                       pool_lease_id = s.lease_id, pool_lease_token = s.lease_token, spend_committed = false
                   FROM s
                   WHERE w.transaction_id = s.transaction_id AND w.fence = s.fence AND w.status = 'pending'
                   RETURNING w.transaction_id, w.txid
               ), audit AS (
                   INSERT INTO tx_audit (transaction_id, from_status, to_status, txid, actor, request_id,
                                         reason, detail)
                   SELECT transaction_id, 'pending', 'sending', txid, $9, $10, 'SIGNED', '' FROM moved
               )
               SELECT transaction_id FROM moved""",
            [s.work.transaction_id for s in signed],
            [s.work.fence for s in signed],
            [s.txid for s in signed],
            [s.raw_tx for s in signed],
            [s.fee_satoshis for s in signed],
            [s.amount_satoshis for s in signed],
            [s.lease.lease_id for s in signed],
            [s.lease.fencing_token for s in signed],
            actor.caller_id,
            actor.request_id,
        )
        return {r["transaction_id"] for r in rows}

    async def mark_accepted(self, works: Sequence[SendWork], actor: Actor, recheck_in_s: float) -> set[str]:
        """SENDING -> UNCONFIRMED (final) for the sends whose row still carries their fence, with
        their audit rows; the transaction ids moved. A send no block has shown `recheck_in_s` later
        gets a look at the chain."""
        rows = await self._conn.fetch(
            """WITH s AS (
                   SELECT * FROM unnest($1::text[], $2::bigint[]) AS s (transaction_id, fence)
               ), moved AS (
                   UPDATE wallet_txs w SET status = 'unconfirmed', finalized = true, spend_committed = true,
                       broadcast_attempts = w.broadcast_attempts + 1, failure_reason = '', failure_detail = '',
                       next_attempt_at = now() + make_interval(secs => $5),
                       accepted_at = coalesce(w.accepted_at, now()),
                       lease_owner = NULL, lease_until = NULL
                   FROM s
                   WHERE w.transaction_id = s.transaction_id AND w.fence = s.fence AND w.status = 'sending'
                   RETURNING w.transaction_id, w.txid
               ), audit AS (
                   INSERT INTO tx_audit (transaction_id, from_status, to_status, txid, actor, request_id,
                                         reason, detail)
                   SELECT transaction_id, 'sending', 'unconfirmed', txid, $3, $4, 'ACCEPTED', '' FROM moved
               )
               SELECT transaction_id FROM moved""",
            [w.transaction_id for w in works],
            [w.fence for w in works],
            actor.caller_id,
            actor.request_id,
            recheck_in_s,
        )
        return {r["transaction_id"] for r in rows}

    async def uncommitted_spends(
        self, transaction_ids: Sequence[str]
    ) -> dict[str, tuple[PoolLease, tuple[Outpoint, ...], WalletCoin | None, str]]:
        """Signed sends whose CommitSpend may not have reached the pool (a crash in between)."""
        rows = await self._conn.fetch(
            """SELECT t.transaction_id, t.txid, t.pool_lease_id, t.pool_lease_token,
                      (SELECT array_agg(c.txid || ':' || c.vout) FROM wallet_coins c
                        WHERE c.spent_by = t.transaction_id AND c.spent_txid = t.txid) AS inputs,
                      ch.satoshis AS change_satoshis, ch.locking_script AS change_script, ch.key_id AS change_key
               FROM wallet_txs t
               LEFT JOIN wallet_coins ch ON ch.txid = t.txid AND ch.origin = 'change'
               WHERE t.transaction_id = ANY($1::text[]) AND NOT t.spend_committed AND t.pool_lease_id IS NOT NULL""",
            list(transaction_ids),
        )
        found: dict[str, tuple[PoolLease, tuple[Outpoint, ...], WalletCoin | None, str]] = {}
        for r in rows:
            inputs = tuple(Outpoint(t, int(v)) for t, _, v in (i.partition(":") for i in r["inputs"] or []))
            change = (
                WalletCoin(
                    Outpoint(r["txid"], 1), int(r["change_satoshis"]), bytes(r["change_script"]), r["change_key"]
                )
                if r["change_satoshis"] is not None
                else None
            )
            found[r["transaction_id"]] = (
                PoolLease(r["pool_lease_id"], int(r["pool_lease_token"]), ()),
                inputs,
                change,
                r["txid"],
            )
        return found

    async def mark_suspect(self, coins: Sequence[Outpoint]) -> None:
        await self._conn.execute(
            """UPDATE wallet_coins c SET suspect = true
               FROM unnest($1::text[], $2::bigint[]) AS o (txid, vout)
               WHERE c.txid = o.txid AND c.vout = o.vout""",
            [c.txid for c in coins],
            [c.vout for c in coins],
        )

    async def suspect_coins(self, limit: int) -> list[WalletCoin]:
        rows = await self._conn.fetch(
            """SELECT txid, vout, satoshis, locking_script, key_id FROM wallet_coins
               WHERE suspect AND spent_by IS NULL AND NOT dead ORDER BY txid, vout LIMIT $1""",
            limit,
        )
        return [
            WalletCoin(Outpoint(r["txid"], int(r["vout"])), int(r["satoshis"]), bytes(r["locking_script"]), r["key_id"])
            for r in rows
        ]

    async def clear_suspect(self, coin: Outpoint) -> None:
        await self._conn.execute(
            "UPDATE wallet_coins SET suspect = false WHERE txid = $1 AND vout = $2", coin.txid, coin.vout
        )

    async def is_our_change(self, coin: Outpoint) -> bool:
        return bool(
            await self._conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM wallet_coins WHERE txid = $1 AND vout = $2 AND origin = 'change')",
                coin.txid,
                coin.vout,
            )
        )

    async def is_our_txid(self, txid: str) -> bool:
        return bool(await self._conn.fetchval("SELECT EXISTS (SELECT 1 FROM wallet_txs WHERE txid = $1)", txid))

    async def write_off_coin(self, coin: Outpoint, spender: str) -> bool:
        """The coin was spent by `spender`, not ours (or is gone): no longer the wallet's. True when
        this call took it off (so the caller books the loss once)."""
        status = await self._conn.execute(
            """UPDATE wallet_coins SET suspect = false, spent_by = 'outside', spent_txid = nullif($3, '')
               WHERE txid = $1 AND vout = $2 AND spent_by IS NULL AND NOT dead""",
            coin.txid,
            coin.vout,
            spender,
        )
        return status.endswith(" 1")
