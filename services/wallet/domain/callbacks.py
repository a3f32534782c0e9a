"""ARC's callbacks (X-CallbackUrl), taken as hints, never as evidence.

A callback only says "look now": the send it names is made due for the round that owns it (SENDING:
the broadcast round, which broadcasts the same bytes and reads the verdict; UNCONFIRMED not in a
block yet, when the news is trouble — orphan, double spend, rejected, stale block: the recheck
round, which asks the chain), and a MINED status wakes the deposit follower,
which finds the send in the block and checks its merkle root against the header, as it does for
every block. Nothing here changes a status, a book or a block: whatever a callback claims, the
rounds decide on the chain's own word. Txids that are not our sends' are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from proofline_kit.chain import ArcStatus, ArcTxStatus
from services.wallet.domain.ports import Store

_TXID = re.compile(r"[0-9a-f]{64}")
# The chain under one of our sends moved: mined, or its block left the main chain.
_BLOCK_NEWS = frozenset({ArcStatus.MINED, ArcStatus.MINED_IN_STALE_BLOCK})
# News that an accepted send may be in trouble: worth a recheck before its backoff runs out. A send
# accepted and seen on the network needs no early look (every accepted send gets that callback).
_TROUBLE = frozenset(
    {
        ArcStatus.SEEN_IN_ORPHAN_MEMPOOL,
        ArcStatus.DOUBLE_SPEND_ATTEMPTED,
        ArcStatus.REJECTED,
        ArcStatus.MINED_IN_STALE_BLOCK,
    }
)


class CallbackHints:
    """`wake_sends` starts the broadcast and recheck rounds now; `wake_follower` the block scan."""

    def __init__(self, store: Store, *, wake_sends: Callable[[], None], wake_follower: Callable[[], None]) -> None:
        self._store = store
        self._wake_sends = wake_sends
        self._wake_follower = wake_follower

    async def on_statuses(self, statuses: Sequence[ArcTxStatus]) -> int:
        """Makes the right worker look at the sends named; returns how many sends were nudged (made
        due for the broadcast or the recheck round)."""
        txids = sorted({s.txid.lower() for s in statuses if _TXID.fullmatch(s.txid.lower())})
        if not txids:
            return 0
        trouble = sorted({s.txid.lower() for s in statuses if s.status in _TROUBLE} & set(txids))
        async with self._store.unit_of_work() as uow:
            ours = await uow.nudge_sends(txids, trouble)
        if not ours:
            return 0
        nudged = sum(1 for _, due in ours.values() if due)
        if nudged:
            self._wake_sends()
        if any(s.status in _BLOCK_NEWS and s.txid.lower() in ours for s in statuses):
            self._wake_follower()
        return nudged
