"""BEEF (BRC-62, V1) submissions: decode with bsv-sdk, check BUMP roots against our own chain."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.chainsim.chain.state import ChainState
from services.chainsim.chain.status import ArcError
from services.chainsim.chain.txcodec import ParsedTx, parse_one


@dataclass(slots=True)
class BeefBundle:
    """The unmined transactions of a BEEF, parents first, with the prevouts the BEEF provides."""

    unmined: list[tuple[ParsedTx, list[tuple[int, bytes] | None]]] = field(default_factory=list)
    bumps: list[tuple[int, str | None]] = field(default_factory=list)  # (height, root hex or None)

    @property
    def latest(self) -> ParsedTx:
        return self.unmined[-1][0]


def decode_beef(data: bytes) -> BeefBundle:
    from bsv import Transaction

    try:
        latest: Any = Transaction.from_beef(data)
    except Exception as exc:
        raise ArcError(463, f"error while decoding BEEF\n{exc}") from exc
    if latest is None:
        raise ArcError(463, "error while decoding BEEF")
    order: list[Any] = []
    seen: set[str] = set()

    def visit(tx: Any) -> None:
        txid = tx.txid()
        if txid in seen:
            return
        seen.add(txid)
        if tx.merkle_path is None:
            for inp in tx.inputs:
                if inp.source_transaction is not None:
                    visit(inp.source_transaction)
        order.append(tx)

    visit(latest)
    bundle = BeefBundle()
    for tx in order:
        if tx.merkle_path is not None:
            try:
                root = tx.merkle_path.compute_root(tx.txid())
            except Exception:
                root = None
            bundle.bumps.append((int(tx.merkle_path.block_height), root))
            continue
        prevouts: list[tuple[int, bytes] | None] = []
        for inp in tx.inputs:
            src = inp.source_transaction
            if src is None:
                prevouts.append(None)
            else:
                out = src.outputs[inp.source_output_index]
                prevouts.append((int(out.satoshis), bytes(out.locking_script.serialize())))
        bundle.unmined.append((parse_one(tx.serialize()), prevouts))
    if not bundle.unmined:
        raise ArcError(463, "error while decoding BEEF\nno unmined transaction in BEEF")
    return bundle


def verify_bumps(bundle: BeefBundle, state: ChainState) -> None:
    """468 when a BUMP does not compute, 469 when its root is not our block's root at that height."""
    for height, root in bundle.bumps:
        if root is None:
            raise ArcError(468, "BEEF invalid\ncould not calculate merkle root from BUMP")
        if height > state.height or state.chain[height].merkle_root[::-1].hex() != root:
            raise ArcError(469, f"merkle roots validation failed\nunverified block height: {height}")


def fill_prevouts(tx: ParsedTx, given: list[tuple[int, bytes] | None], state: ChainState) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    for (op, _, _), prev in zip(tx.inputs, given, strict=True):
        if prev is None:
            prev = state.output_of(op)
            if prev is None:
                raise ArcError(475, "mined ancestors not found in BUMPs")
        out.append(prev)
    return out
