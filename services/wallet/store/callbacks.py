"""ARC callbacks as hints: the sends they name are made due now (nothing else about them changes)."""

from __future__ import annotations

from collections.abc import Sequence

from proofline_kit.database import Queries
from services.wallet.domain.models import TxStatus

# What a round claims by next_attempt_at: SENDING (the broadcast round) and UNCONFIRMED not in a
# block yet (the recheck round), the latter only for the txids in $2; neither while a worker holds
# it (the building worker broadcasts its own round: a callback for it wakes nobody).
_CLAIMABLE = (
    "((status = 'sending' OR (status = 'unconfirmed' AND block_height IS NULL AND txid = ANY($2::text[])))"
    " AND (lease_until IS NULL OR lease_until < now()))"
)


class CallbackQueries(Queries):
    async def nudge_sends(self, txids: Sequence[str], recheck: Sequence[str]) -> dict[str, tuple[TxStatus, bool]]:
        """Of our sends with these txids: txid -> (status, whether it is now due for its round).
        A SENDING send, or an UNCONFIRMED one not in a block whose txid is in `recheck`, that no
        worker holds gets next_attempt_at = now when not due yet; no other column changes. Txids that are not our
        sends' are not in the answer."""
        rows = await self._conn.fetch(
            f"""WITH ours AS (
                    SELECT transaction_id, txid, status, {_CLAIMABLE} AS due FROM wallet_txs
                    WHERE direction = 'outgoing' AND txid = ANY($1::text[])
                ), nudged AS (
                    UPDATE wallet_txs w SET next_attempt_at = now()
                    FROM ours o
                    WHERE w.transaction_id = o.transaction_id AND o.due AND w.next_attempt_at > now()
                      AND w.status = o.status
                )
                SELECT txid, status, due FROM ours""",
            list(txids),
            list(recheck),
        )
        return {r["txid"]: (TxStatus(r["status"]), bool(r["due"])) for r in rows}
