"""The wallet's deposit source over WhatsOnChain, against a live chainsim: deposits found by
following blocks (mempool first, then the block that mines them, coinbases included), blocks read
whole through their pages, and the output scan checked against the kit's transaction parser.

``WALLET_SCAN_BENCH=1 .venv/bin/pytest -q -s tests/wallet -k throughput`` prints how many outputs a
second the WoC-shaped path fetches and scans from a block of 5,000 transactions."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from proofline_kit.chain import MerkleTree, RetryPolicy, WocClient, WocConfig
from proofline_kit.chain.merkle import bump_root
from proofline_kit.wire import Outpoint, Tx, TxFormatError, TxInput, TxOutput, parse, serialize
from services.wallet.adapters.woc_deposit_source import WocDepositSource
from services.wallet.domain.deposit_feed import (
    GENESIS_PREVIOUS,
    BlockContents,
    ChainBlock,
    DepositSource,
    MissingTransactions,
    SeenOutput,
    SeenTransaction,
    UnknownBlock,
    block_transactions,
    outputs_of,
)
from tests.chain_clients.sim import SimControl, chainsim_process
from tests.chain_clients.wallet import Key, build, op_return, pay

pytestmark = pytest.mark.timeout(300)

BLOCK_PAGE = 250  # txids per block page in this module's chainsim: a 1,001-tx block has 5 pages
COIN = 100_000_000


@pytest.fixture(scope="module")
def chainsim_url() -> Iterator[str]:
    with chainsim_process(profile="arc_faithful", woc_block_page_size=str(BLOCK_PAGE)) as url:
        yield url


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=30.0) as client:
        yield client


@pytest.fixture
async def sim(chainsim_url: str, http: httpx.AsyncClient) -> SimControl:
    control = SimControl(http, chainsim_url)
    await control.reset()
    return control


def woc_client(http: httpx.AsyncClient, base_url: str, **overrides: Any) -> WocClient:
    config = WocConfig(
        base_url=base_url,
        network="test",
        attempt_timeout_s=30.0,
        default_budget_s=60.0,
        retry=RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.05),
        **overrides,
    )
    return WocClient(http, config)


@pytest.fixture
def source(http: httpx.AsyncClient, sim: SimControl) -> DepositSource:
    return WocDepositSource(woc_client(http, sim.base_url), budget_s=60.0)


@pytest.fixture
def payer() -> Key:
    return Key(0xA11CE)


@pytest.fixture
def deposits() -> tuple[Key, Key]:
    return Key(0xB0B), Key(0xCA401)


async def mine(sim: SimControl, **body: Any) -> dict[str, Any]:
    [block] = await sim._post("mine", body)
    return dict(block)


def ours(found: list[SeenOutput], scripts: set[bytes]) -> list[tuple[str, int, int, bool]]:
    return [(o.txid, o.vout, o.satoshis, o.coinbase) for o in found if o.locking_script in scripts]


async def test_deposits_are_found_in_the_mempool_then_in_the_block_that_mines_them(
    sim: SimControl, source: DepositSource, payer: Key, deposits: tuple[Key, Key]
) -> None:
    bob, carol = deposits
    scripts = {bob.lock, carol.lock}
    coins = await sim.fund(payer, satoshis=100_000, count=3)
    split = build([coins[0]], [(40_000, bob.lock), (30_000, carol.lock), (29_999, payer.lock)])
    tagged = build([coins[1]], [(0, op_return(b"invoice 7")), (99_999, bob.lock)])
    unrelated = pay(coins[2], payer)
    before = await source.tip()
    for tx in (split, tagged, unrelated):
        assert (await sim.http.post(f"{sim.base_url}/v1/bsv/test/tx/raw", json={"txhex": tx.raw.hex()})).text == tx.txid

    pending = await source.mempool_txids()
    assert pending == (split.txid, tagged.txid, unrelated.txid)
    raws = await source.transactions(pending)
    assert raws == {tx.txid: tx.raw for tx in (split, tagged, unrelated)}
    unconfirmed = list(outputs_of(SeenTransaction(t, raws[t], False) for t in pending))
    assert len(unconfirmed) == 6
    assert ours(unconfirmed, scripts) == [
        (split.txid, 0, 40_000, False),
        (split.txid, 1, 30_000, False),
        (tagged.txid, 1, 99_999, False),
    ]

    mined = await mine(sim, coinbase_address=carol.address)
    tip = await source.tip()
    assert tip == await source.block_at(mined["height"])
    assert (tip.block_hash, tip.height, tip.previous_hash) == (mined["hash"], before.height + 1, before.block_hash)
    assert await source.block_at(tip.height + 1) is None
    assert await source.mempool_txids() == ()

    contents = await source.block_contents(tip.block_hash)
    assert contents.block == tip and list(contents.txids) == mined["txids"]
    tree = MerkleTree(contents.txids)
    assert tree.root == tip.merkle_root
    raws = await source.transactions(contents.txids)
    assert set(raws) == set(contents.txids)
    seen = block_transactions(contents, raws)
    assert [s.coinbase for s in seen] == [True, False, False, False]
    found = ours(list(outputs_of(seen)), scripts)
    assert found == [
        (contents.txids[0], 0, 50 * COIN + 3, True),  # subsidy + the three 1-sat fees, to carol
        (split.txid, 0, 40_000, False),
        (split.txid, 1, 30_000, False),
        (tagged.txid, 1, 99_999, False),
    ]
    for txid, *_ in found:
        proof = tree.bump(contents.txids.index(txid), tip.height)
        assert bump_root(txid, proof) == (tip.height, tip.merkle_root)


async def test_following_the_chain_from_genesis_links_every_block(sim: SimControl, source: DepositSource) -> None:
    for _ in range(4):
        await mine(sim)
    tip = await source.tip()
    previous = GENESIS_PREVIOUS
    for height in range(tip.height + 1):
        block = await source.block_at(height)
        assert isinstance(block, ChainBlock) and block.height == height and block.previous_hash == previous
        assert block.time > 0 and len(block.merkle_root) == 64
        contents = await source.block_contents(block.block_hash)
        assert len(contents.txids) == 1 and contents.txids[0] == block.merkle_root  # coinbase only
        previous = block.block_hash
    assert previous == tip.block_hash


async def test_a_block_over_a_thousand_transactions_is_read_whole(
    sim: SimControl, source: DepositSource, deposits: tuple[Key, Key]
) -> None:
    bob, _ = deposits
    for _ in range(1_000):
        await sim._post("fund", {"address": bob.address, "satoshis": 1_000, "count": 3, "confirm": False})
    mined = await mine(sim)
    contents = await source.block_contents(mined["hash"])
    assert isinstance(contents, BlockContents) and list(contents.txids) == mined["txids"]
    assert MerkleTree(contents.txids).root == contents.block.merkle_root
    raws = await source.transactions(contents.txids)
    found = ours(list(outputs_of(block_transactions(contents, raws))), {bob.lock})
    assert len(found) == 3_000 and {t for t, *_ in found} == set(mined["txids"][1:])


async def test_an_unknown_block_and_missing_transactions(source: DepositSource, sim: SimControl) -> None:
    with pytest.raises(UnknownBlock):
        await source.block_contents("ab" * 32)
    assert await source.transactions(["cd" * 32]) == {}
    mined = await mine(sim)
    contents = await source.block_contents(mined["hash"])
    with pytest.raises(MissingTransactions) as caught:
        block_transactions(contents, {})
    assert caught.value.txids == contents.txids


# ---- the output scan against the kit's parser ---------------------------------------------------


def random_tx(rng: random.Random, inputs: int, outputs: int, script_size: int) -> bytes:
    return serialize(
        Tx(
            tuple(
                TxInput(Outpoint(rng.randbytes(32).hex(), rng.randrange(1 << 32)), rng.randbytes(rng.randrange(300)))
                for _ in range(inputs)
            ),
            tuple(
                TxOutput(rng.randrange(1 << 60), rng.randbytes(script_size or rng.randrange(60)))
                for _ in range(outputs)
            ),
            version=rng.randrange(1 << 32),
            locktime=rng.randrange(1 << 32),
        )
    )


@pytest.mark.parametrize(
    ("inputs", "outputs", "script_size"),
    [(1, 1, 0), (0, 3, 0), (2, 0, 0), (300, 2, 0), (1, 253, 0), (1, 70_000, 1), (1, 2, 253), (1, 1, 70_000)],
)
def test_the_scan_reads_what_the_kit_parser_reads(inputs: int, outputs: int, script_size: int) -> None:
    rng = random.Random(inputs * 1_000_003 + outputs * 31 + script_size)
    raw = random_tx(rng, inputs, outputs, script_size)
    scanned = list(outputs_of([SeenTransaction("ab" * 32, raw, True)]))
    assert scanned == [
        SeenOutput("ab" * 32, vout, out.satoshis, out.locking_script, True)
        for vout, out in enumerate(parse(raw).outputs)
    ]


def test_the_scan_refuses_bytes_that_are_not_one_transaction() -> None:
    raw = random_tx(random.Random(5), 2, 3, 0)
    for bad in (raw[:-1], raw + b"\x00", raw[:10], b"", raw[:4] + b"\xff" + raw[5:]):
        with pytest.raises(TxFormatError):
            list(outputs_of([SeenTransaction("ab" * 32, bad, False)]))


# ---- throughput (printed, not asserted) ---------------------------------------------------------
