"""ARC callbacks as hints: the sends they name are made due now (nothing else about them changes)."""

from __future__ import annotations

from collections.abc import Sequence

from proofline_kit.database import Queries
from services.wallet.domain.models import TxStatus

# What a round claims by next_attempt_at: SENDING (the broadcast round) and UNCONFIRMED not in a
# block yet (the recheck round).
_CLAIMABLE = "(status = 'sending' OR (status = 'unconfirmed' AND block_height IS NULL))"


class CallbackQueries(Queries):
    async def nudge_sends(self, txids: Sequence[str]) -> dict[str, tuple[TxStatus, bool]]:
        """Of our sends with these txids: txid -> (status, whether it is now due for its round).
        A claimable send not due yet gets next_attempt_at = now; no other column changes. Txids
        that are not our sends' are not in the answer."""
        rows = await self._conn.fetch(
            f"""WITH ours AS (
                    SELECT transaction_id, txid, status, {_CLAIMABLE} AS due FROM wallet_txs
                    WHERE direction = 'outgoing' AND txid = ANY($1::text[])
                ), nudged AS (
                    UPDATE wallet_txs w SET next_attempt_at = now()
                    FROM ours o
                    WHERE w.transaction_id = o.transaction_id AND o.due AND w.next_attempt_at > now()
                      AND (w.status = 'sending' OR (w.status = 'unconfirmed' AND w.block_height IS NULL))
                )
                SELECT txid, status, due FROM ours""",
            list(txids),
        )
        return {r["txid"]: (TxStatus(r["status"]), bool(r["due"])) for r in rows}
