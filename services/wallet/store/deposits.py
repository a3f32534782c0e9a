"""Deposits: matching scanned outputs against the issued scripts, first sight, mined, credited; the
chain as the follower scanned it."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import asyncpg

from proofline_kit.database import Queries
from proofline_kit.wire import Outpoint
from services.wallet.domain.models import Actor, TxStatus
from services.wallet.domain.ports import DepositWork, ScannedDeposit


def _deposit_work(r: asyncpg.Record) -> DepositWork:
    return DepositWork(
        transaction_id=r["transaction_id"],
        account_id=r["account_id"],
        txid=r["txid"],
        status=TxStatus(r["status"]),
        amount_satoshis=int(r["amount_satoshis"]),
        block_height=int(r["block_height"] or 0) if "block_height" in r else 0,
        coinbase=bool(r["coinbase"]),
        credited=bool(r["credited"]),
        outputs=tuple(
            ScannedDeposit(Outpoint(r["txid"], int(v)), int(s), a, r["account_id"], k, bytes(sc))
            for v, s, a, k, sc in zip(r["vouts"], r["sats"], r["addresses"], r["keys"], r["scripts"], strict=True)
        ),
    )


class DepositQueries(Queries):
    async def match_scripts(self, scripts: Sequence[bytes]) -> dict[bytes, tuple[str, str, str]]:
        rows = await self._conn.fetch(
            "SELECT locking_script, address, account_id, key_id FROM deposit_addresses"
            " WHERE locking_script = ANY($1::bytea[])",
            list(scripts),
        )
        return {bytes(r["locking_script"]): (r["address"], r["account_id"], r["key_id"]) for r in rows}

    async def record_deposits(
        self, txid: str, deposits: Sequence[ScannedDeposit], coinbase: bool, required: int, actor: Actor
    ) -> list[tuple[str, str, int]]:
        """One INCOMING transaction per account paid, UNCONFIRMED with its outputs; the ones already
        known are left as they are. Returns (transaction_id, account_id, satoshis) of the new ones."""
        by_account: dict[str, list[ScannedDeposit]] = {}
        for deposit in deposits:
            by_account.setdefault(deposit.account_id, []).append(deposit)
        created: list[tuple[str, str, int]] = []
        for account_id, outputs in by_account.items():
            transaction_id = f"wtx_{secrets.token_hex(12)}"
            total = sum(o.satoshis for o in outputs)
            inserted = await self._conn.fetchval(
                """WITH inserted AS (
                       INSERT INTO wallet_txs (transaction_id, account_id, direction, status, txid, amount_satoshis,
                                               address, required_confirmations, coinbase)
                       VALUES ($1, $2, 'incoming', 'unconfirmed', $3, $4, $5, $6, $7)
                       ON CONFLICT (account_id, txid) WHERE direction = 'incoming' DO NOTHING
                       RETURNING transaction_id
                   ), outputs AS (
                       INSERT INTO deposit_outputs (txid, vout, transaction_id, address, satoshis)
                       SELECT $3, o.vout, i.transaction_id, o.address, o.satoshis
                       FROM inserted i, unnest($8::bigint[], $9::text[], $10::bigint[]) AS o (vout, address, satoshis)
                   ), audit AS (
                       INSERT INTO tx_audit (transaction_id, from_status, to_status, txid, actor, reason)
                       SELECT transaction_id, NULL, 'unconfirmed', $3, $11, 'DEPOSIT_SEEN' FROM inserted
                   )
                   SELECT transaction_id FROM inserted""",
                transaction_id,
                account_id,
                txid,
                total,
                outputs[0].address,
                required,
                coinbase,
                [o.outpoint.vout for o in outputs],
                [o.address for o in outputs],
                [o.satoshis for o in outputs],
                actor.caller_id,
            )
            if inserted:
                created.append((transaction_id, account_id, total))
        return created

    async def our_txids(self, txids: Sequence[str]) -> set[str]:
        """Those of `txids` that are sends of the wallet waiting for a block (SENDING ones too: mined
        before their acceptance was recorded)."""
        rows = await self._conn.fetch(
            """SELECT DISTINCT txid FROM wallet_txs
               WHERE txid = ANY($1::text[]) AND status IN ('sending', 'unconfirmed', 'reorging')""",
            list(txids),
        )
        return {r["txid"] for r in rows}

    async def raw_sends(self, txids: Sequence[str]) -> dict[str, bytes]:
        """The signed bytes of those of `txids` that are the wallet's own sends."""
        rows = await self._conn.fetch(
            """SELECT txid, raw_tx FROM wallet_txs
               WHERE txid = ANY($1::text[]) AND direction = 'outgoing' AND raw_tx IS NOT NULL""",
            list(txids),
        )
        return {r["txid"]: bytes(r["raw_tx"]) for r in rows}

    async def keys_of_coins_in(self, txids: Sequence[str]) -> set[str]:
        """The keys of the wallet's coins that these transactions created (send change)."""
        rows = await self._conn.fetch(
            "SELECT DISTINCT key_id FROM wallet_coins WHERE txid = ANY($1::text[]) AND NOT dead", list(txids)
        )
        return {r["key_id"] for r in rows}

    async def mark_mined(self, txids: Sequence[str], block_hash: str, height: int, paths: dict[str, str]) -> None:
        await self._conn.execute(
            """UPDATE wallet_txs t SET block_hash = $2, block_height = $3, merkle_path = p.path, missing_since = NULL
               FROM unnest($1::text[], $4::text[]) AS p (txid, path)
               WHERE t.txid = p.txid AND t.status IN ('sending', 'unconfirmed', 'reorging')""",
            list(txids),
            block_hash,
            height,
            [paths[t] for t in txids],
        )

    async def deposits_to_credit(self, tip_height: int, limit: int) -> list[DepositWork]:
        rows = await self._conn.fetch(
            """SELECT t.transaction_id, t.account_id, t.txid, t.status, t.amount_satoshis, t.block_height,
                      t.coinbase, t.credited,
                      array_agg(d.vout ORDER BY d.vout) AS vouts, array_agg(d.satoshis ORDER BY d.vout) AS sats,
                      array_agg(d.address ORDER BY d.vout) AS addresses,
                      array_agg(a.key_id ORDER BY d.vout) AS keys,
                      array_agg(a.locking_script ORDER BY d.vout) AS scripts
               FROM wallet_txs t
               JOIN deposit_outputs d ON d.transaction_id = t.transaction_id
               JOIN deposit_addresses a ON a.address = d.address
               WHERE t.direction = 'incoming' AND t.status = 'unconfirmed' AND NOT t.credited
                 AND t.block_height IS NOT NULL AND $1 - t.block_height + 1 >= t.required_confirmations
               GROUP BY t.transaction_id
               ORDER BY t.block_height, t.seq
               LIMIT $2""",
            tip_height,
            limit,
        )
        return [_deposit_work(r) for r in rows]

    async def credit_deposit(self, work: DepositWork, actor: Actor) -> bool:
        """CONFIRMED and credited, its outputs now the wallet's coins in the pool; False when another
        round credited it first (the caller then posts nothing)."""
        moved = await self._conn.fetchval(
            """WITH moved AS (
                   UPDATE wallet_txs SET status = 'confirmed', credited = true, confirmed_at = now()
                   WHERE transaction_id = $1 AND status = 'unconfirmed' AND NOT credited
                   RETURNING transaction_id, txid
               ), audit AS (
                   INSERT INTO tx_audit (transaction_id, from_status, to_status, txid, actor, reason)
                   SELECT transaction_id, 'unconfirmed', 'confirmed', txid, $2, 'DEPOSIT_CREDITED' FROM moved
               )
               SELECT count(*) FROM moved""",
            work.transaction_id,
            actor.caller_id,
        )
        if not moved:
            return False
        await self._conn.execute(
            """INSERT INTO wallet_coins (txid, vout, satoshis, locking_script, key_id, origin, transaction_id)
               SELECT $1, o.vout, o.satoshis, o.script, o.key_id, 'deposit', $2
               FROM unnest($3::bigint[], $4::bigint[], $5::bytea[], $6::text[]) AS o (vout, satoshis, script, key_id)
               ON CONFLICT (txid, vout) DO NOTHING""",
            work.txid,
            work.transaction_id,
            [d.outpoint.vout for d in work.outputs],
            [d.satoshis for d in work.outputs],
            [d.locking_script for d in work.outputs],
            [d.key_id for d in work.outputs],
        )
        await self._conn.execute(
            """UPDATE deposit_addresses a SET received_satoshis = a.received_satoshis + o.satoshis
               FROM (SELECT address, sum(satoshis)::bigint AS satoshis FROM deposit_outputs
                     WHERE transaction_id = $1 GROUP BY address) o
               WHERE a.address = o.address""",
            work.transaction_id,
        )
        return True

    async def settle_depths(self, tip_height: int, actor: Actor) -> int:
        """Mined deep enough (sends, and deposits already credited) -> CONFIRMED; REORGING not (yet)
        deep enough again -> UNCONFIRMED. Returns how many moved."""
        value = await self._conn.fetchval(
            """WITH due AS (
                   SELECT transaction_id, status,
                          CASE WHEN block_height IS NOT NULL AND $1 - block_height + 1 >= required_confirmations
                                    AND (direction = 'outgoing' OR credited)
                               THEN 'confirmed' ELSE 'unconfirmed' END AS target
                   FROM wallet_txs
                   WHERE (status = 'reorging')
                      OR (status = 'unconfirmed' AND block_height IS NOT NULL AND (direction = 'outgoing' OR credited)
                          AND $1 - block_height + 1 >= required_confirmations)
                   FOR UPDATE
               ), moved AS (
                   UPDATE wallet_txs t SET status = due.target,
                          confirmed_at = CASE WHEN due.target = 'confirmed' THEN now() ELSE NULL END
                   FROM due WHERE t.transaction_id = due.transaction_id
                   RETURNING t.transaction_id, due.status AS from_status, t.status, t.txid
               ), audit AS (
                   INSERT INTO tx_audit (transaction_id, from_status, to_status, txid, actor, reason)
                   SELECT transaction_id, from_status, status, txid, $2,
                          CASE WHEN status = 'confirmed' THEN 'MINED_DEEP_ENOUGH' ELSE 'REORGED_OUT' END
                   FROM moved
               )
               SELECT count(*) FROM moved""",
            tip_height,
            actor.caller_id,
        )
        return int(value)

    async def undo_block(self, height: int, actor: Actor) -> None:
        """The scanned block at `height` left the main chain: its transactions lose their block
        (CONFIRMED ones go REORGING, balances unchanged) and the block is forgotten."""
        await self._conn.execute(
            """WITH stale AS (
                   SELECT t.transaction_id, t.status FROM wallet_txs t
                   JOIN scanned_blocks b ON b.block_hash = t.block_hash
                   WHERE b.height >= $1
                   FOR UPDATE OF t
               ), moved AS (
                   UPDATE wallet_txs t SET
                       status = CASE WHEN stale.status = 'confirmed' THEN 'reorging' ELSE t.status END,
                       block_hash = NULL, block_height = NULL, merkle_path = NULL,
                       confirmed_at = NULL
                   FROM stale WHERE t.transaction_id = stale.transaction_id
                   RETURNING t.transaction_id, stale.status AS from_status, t.status, t.txid
               ), audit AS (
                   INSERT INTO tx_audit (transaction_id, from_status, to_status, txid, actor, reason)
                   SELECT transaction_id, from_status, status, txid, $2, 'BLOCK_REORGANIZED' FROM moved
                   WHERE from_status <> status
               )
               DELETE FROM scanned_blocks WHERE height >= $1""",
            height,
            actor.caller_id,
        )

    async def unmined_deposits(self, limit: int) -> list[DepositWork]:
        """Deposits waiting for a block, due for a check that they are still in the mempool."""
        rows = await self._conn.fetch(
            """SELECT t.transaction_id, t.account_id, t.txid, t.status, t.amount_satoshis, t.coinbase, t.credited,
                      array_agg(d.vout ORDER BY d.vout) AS vouts, array_agg(d.satoshis ORDER BY d.vout) AS sats,
                      array_agg(d.address ORDER BY d.vout) AS addresses,
                      array_agg(a.key_id ORDER BY d.vout) AS keys,
                      array_agg(a.locking_script ORDER BY d.vout) AS scripts
               FROM wallet_txs t
               JOIN deposit_outputs d ON d.transaction_id = t.transaction_id
               JOIN deposit_addresses a ON a.address = d.address
               WHERE t.direction = 'incoming' AND t.status = 'unconfirmed' AND t.block_height IS NULL
                 AND t.next_attempt_at <= now()
               GROUP BY t.transaction_id
               ORDER BY t.next_attempt_at
               LIMIT $1""",
            limit,
        )
        return [_deposit_work(r) for r in rows]

    async def seen_again(self, transaction_id: str) -> None:
        await self._conn.execute(
            """UPDATE wallet_txs SET missing_since = NULL, next_attempt_at = now() + interval '5 seconds'
               WHERE transaction_id = $1""",
            transaction_id,
        )

    async def drop_deposit(self, work: DepositWork, drop_after_s: float, actor: Actor) -> bool:
        """Found neither mined nor in the mempool: FAILED with DEPOSIT_DROPPED once that has lasted
        `drop_after_s` since a check first found it so (its credited coins are no longer the
        wallet's); True when it was dropped now."""
        missing_for = await self._conn.fetchval(
            """UPDATE wallet_txs SET missing_since = coalesce(missing_since, now()),
                      next_attempt_at = now() + interval '5 seconds'
               WHERE transaction_id = $1 AND status = 'unconfirmed' AND block_height IS NULL
               RETURNING extract(epoch FROM now() - missing_since)""",
            work.transaction_id,
        )
        if missing_for is None or float(missing_for) < drop_after_s:
            return False
        await self._conn.execute(
            """WITH moved AS (
                   UPDATE wallet_txs SET status = 'failed', failure_reason = 'DEPOSIT_DROPPED',
                          failure_detail = 'neither mined nor in the mempool: its inputs were spent elsewhere'
                   WHERE transaction_id = $1 AND status = 'unconfirmed'
                   RETURNING transaction_id, txid
               )
               INSERT INTO tx_audit (transaction_id, from_status, to_status, txid, actor, reason)
               SELECT transaction_id, 'unconfirmed', 'failed', txid, $2, 'DEPOSIT_DROPPED' FROM moved""",
            work.transaction_id,
            actor.caller_id,
        )
        await self._conn.execute("UPDATE wallet_coins SET dead = true WHERE transaction_id = $1", work.transaction_id)
        return True

    async def scanned_tip(self) -> tuple[int, str] | None:
        row = await self._conn.fetchrow("SELECT height, block_hash FROM scanned_blocks ORDER BY height DESC LIMIT 1")
        return (int(row["height"]), row["block_hash"]) if row else None

    async def record_block(
        self, height: int, block_hash: str, previous: str, merkle_root: str, outputs: int, matched: int
    ) -> None:
        await self._conn.execute(
            # Two replicas may scan one block: what they record from it is idempotent, and so is this.
            """INSERT INTO scanned_blocks (height, block_hash, previous_hash, merkle_root, outputs, matched)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (height) DO NOTHING""",
            height,
            block_hash,
            previous,
            merkle_root,
            outputs,
            matched,
        )

    async def tip_height(self) -> int:
        value = await self._conn.fetchval("SELECT coalesce(max(height), 0) FROM scanned_blocks")
        return int(value)
