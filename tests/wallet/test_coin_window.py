"""The coin window: one reading of the pool per TTL, coins taken leave it at once and stay out of
the readings that follow for a while."""

from __future__ import annotations

from proofline_kit.wire import Outpoint
from services.wallet.adapters.coin_window import CachedCoinWindow
from services.wallet.domain.coin_selection import SelectionParams
from services.wallet.domain.planning import Candidates
from services.wallet.domain.ports import WalletCoin


class _CountingPool:
    def __init__(self) -> None:
        self.reads = 0

    async def available_coins(self, limit: int) -> list[WalletCoin]:
        self.reads += 1
        return [WalletCoin(Outpoint("ab" * 32, i), 1000 + i, b"\x51", "k") for i in range(3)][:limit]


async def test_reads_once_per_ttl() -> None:
    now = [100.0]
    pool = _CountingPool()
    window = CachedCoinWindow(pool, ttl_s=0.5, clock=lambda: now[0])  # type: ignore[arg-type]
    first = await window.candidates()
    assert len(first) == 3 and pool.reads == 1
    assert await window.candidates() is first and pool.reads == 1
    now[0] += 0.6
    assert len(await window.candidates()) == 3 and pool.reads == 2
    window.invalidate()
    await window.candidates()
    assert pool.reads == 3


async def test_taken_coins_leave_now_and_stay_out_of_new_readings() -> None:
    now = [100.0]
    pool = _CountingPool()
    window = CachedCoinWindow(pool, ttl_s=0.5, clock=lambda: now[0])  # type: ignore[arg-type]
    candidates = await window.candidates()
    window.take([c for c in candidates.all() if c.outpoint.vout == 1])
    assert [c.outpoint.vout for c in candidates.all()] == [0, 2]
    now[0] += 1.0  # a new reading still lists it AVAILABLE (a listing under way while it was leased)
    assert [c.outpoint.vout for c in (await window.candidates()).all()] == [0, 2]
    now[0] += 60.0  # long after: the pool's word again
    assert [c.outpoint.vout for c in (await window.candidates()).all()] == [0, 1, 2]


async def test_a_coin_its_send_let_go_of_is_listed_again_at_once() -> None:
    now = [100.0]
    window = CachedCoinWindow(_CountingPool(), ttl_s=0.5, clock=lambda: now[0])  # type: ignore[arg-type]
    candidates = await window.candidates()
    window.take([c for c in candidates.all() if c.outpoint.vout == 1])
    window.forget([Outpoint("ab" * 32, 1)])  # released, or its send proven dead
    now[0] += 1.0
    assert [c.outpoint.vout for c in (await window.candidates()).all()] == [0, 1, 2]


def test_candidates_are_sorted_by_value_and_forget_taken_coins() -> None:
    coins = [WalletCoin(Outpoint(f"{i:064x}", 0), 1000 * i, b"\x51", "k") for i in range(1, 301)]
    candidates = Candidates(reversed(coins))
    assert [c.satoshis for c in candidates.all()] == [c.satoshis for c in coins]
    candidates.take([coins[150], coins[0]])  # 151,000 and 1,000 sat
    assert len(candidates) == 298 and {151_000, 1_000}.isdisjoint(c.satoshis for c in candidates.all())
    exact = candidates.select(100_000 - 10 - 34 - 148, SelectionParams(1000, 1000))
    assert candidates.coins_of(exact) == (coins[99],) and not exact.has_change


def _coin(vout: int, satoshis: int, depth: int = 0) -> WalletCoin:
    return WalletCoin(Outpoint("cd" * 32, vout), satoshis, b"\x51", "k", depth)


def test_mined_coins_are_selected_before_unconfirmed_change() -> None:
    # The unmined change would be a changeless match; a mined coin that pays comes first all the same.
    exact = 50_000 + 10 + 34 + 148
    candidates = Candidates([_coin(0, exact, depth=1), _coin(1, 80_000), _coin(2, 1_000)])
    chosen = candidates.coins_of(candidates.select(50_000, SelectionParams(1000, 1000)))
    assert [c.outpoint.vout for c in chosen] == [1]
    # When the mined coins cannot pay, the change joins.
    candidates.take([_coin(1, 80_000)])
    chosen = candidates.coins_of(candidates.select(50_000, SelectionParams(1000, 1000)))
    assert [c.outpoint.vout for c in chosen] == [0]
    candidates.take([_coin(0, exact, depth=1)])
    assert [c.outpoint.vout for c in candidates.all()] == [2]


async def test_change_deeper_than_the_limit_is_not_a_candidate() -> None:
    class _Pool:
        async def available_coins(self, limit: int) -> list[WalletCoin]:
            return [_coin(0, 1_000), _coin(1, 2_000, depth=2), _coin(2, 3_000, depth=3)]

    window = CachedCoinWindow(_Pool(), ttl_s=0.5, max_depth=2)  # type: ignore[arg-type]
    assert [c.outpoint.vout for c in (await window.candidates()).all()] == [0, 1]
