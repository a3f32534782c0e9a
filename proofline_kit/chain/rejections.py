"""Reading a node's reject text (relayed by WhatsOnChain, or in ARC's extraInfo for REJECTED).

Node wording varies between versions and relays, so only well-known markers are matched; anything
else stays a plain rejection whose text is kept for logs.
"""

from __future__ import annotations

from .outcomes import OutcomeKind

_MARKERS: tuple[tuple[OutcomeKind, tuple[str, ...]], ...] = (
    # "duplicate" is deliberately absent: bad-txns-inputs-duplicate is an invalid tx, not a resend.
    (OutcomeKind.ACCEPTED, ("already in the mempool", "txn-already-in-mempool", "txn-already-known", "already known")),
    (OutcomeKind.DOUBLE_SPEND, ("txn-mempool-conflict", "double spend", "double-spend", "txn-double-spend")),
    (OutcomeKind.MISSING_INPUTS, ("missing inputs", "missingorspent", "missing-inputs", "orphan")),
    (OutcomeKind.FEE_TOO_LOW, ("min fee not met", "insufficient priority", "insufficient fee", "fee too low")),
)


def classify_node_text(text: str) -> OutcomeKind | None:
    """The outcome a node message names, or None when it names none we know."""
    lowered = text.lower()
    for kind, markers in _MARKERS:
        if any(marker in lowered for marker in markers):
            return kind
    return None
