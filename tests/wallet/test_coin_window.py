"""The intake's coin window: one reading of the pool per TTL, fresh after it."""

from __future__ import annotations

from proofline_kit.wire import Outpoint
from services.wallet.adapters.coin_window import CachedCoinWindow
from services.wallet.domain.ports import WalletCoin


class _CountingPool:
    def __init__(self) -> None:
        self.reads = 0

    async def available_coins(self, limit: int) -> list[WalletCoin]:
        self.reads += 1
        return [WalletCoin(Outpoint("ab" * 32, i), 1000 + self.reads, b"\x51", "k") for i in range(3)][:limit]


async def test_reads_once_per_ttl_and_again_for_a_wider_window() -> None:
    now = [100.0]
    pool = _CountingPool()
    window = CachedCoinWindow(pool, ttl_s=0.5, clock=lambda: now[0])
    first = await window.available_coins(2)
    assert len(first) == 2 and pool.reads == 1
    assert await window.available_coins(1) == first[:1] and pool.reads == 1
    await window.available_coins(3)  # wider than what was read
    assert pool.reads == 2
    now[0] += 0.6
    fresh = await window.available_coins(3)
    assert pool.reads == 3 and fresh[0].satoshis == 1003
