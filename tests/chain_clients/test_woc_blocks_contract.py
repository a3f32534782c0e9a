"""Following blocks through WhatsOnChain: a block's txids with its pages, the mempool's txids, raw
transactions in bulk (against a live chainsim), and the BUMPs the kit builds from a block's txids
(against bsv-sdk, an independent encoder, and chainsim's own ARC merkle paths)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from bsv import MerklePath

from proofline_kit.chain import BlockSummary, MerkleTree, WocClient, merkle_root
from proofline_kit.chain.errors import ChainResponseError
from proofline_kit.chain.jsonshape import ShapeError
from proofline_kit.chain.merkle import TxidNotInProof, bump_root
from proofline_kit.chain.woc_results import (
    assemble_block_txids,
    parse_block,
    parse_raw_tx,
    parse_txids,
)
from tests.chain_clients.conftest import SIM_SETTINGS, RequestLog, woc_config
from tests.chain_clients.sim import SimControl, chainsim_process
from tests.chain_clients.test_merkle_unit import bump_for
from tests.chain_clients.wallet import Key, pay

pytestmark = pytest.mark.timeout(120)

PAGE = 300  # txids per block page in this module's chainsim


def txids_of(n: int, salt: int = 0) -> list[str]:
    return [hashlib.sha256(f"{salt}:{i}".encode()).hexdigest() for i in range(n)]


# ---- the BUMP builder, offline -----------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 33, 100])
def test_every_single_bump_round_trips_and_matches_an_independent_encoder(n: int) -> None:
    txids = txids_of(n, n)
    tree = MerkleTree(txids)
    assert tree.size == n and merkle_root(txids) == tree.root
    for i, txid in enumerate(txids):
        proof = tree.bump(i, 800_000 + n)
        assert bump_root(txid, proof) == (800_000 + n, tree.root)
        if n > 1:
            assert proof == bump_for(txids, i, 800_000 + n)
            assert MerklePath.from_hex(proof).compute_root(txid) == tree.root
    assert tree.bumps([n - 1, 0, 0], 3) == {0: tree.bump(0, 3), n - 1: tree.bump(n - 1, 3)}


def test_a_one_transaction_block_proves_its_coinbase() -> None:
    [coinbase] = txids_of(1)
    tree = MerkleTree([coinbase])
    assert tree.root == coinbase
    proof = tree.bump(0, 812_345)
    # height 812,345 (varint fe + 4 bytes), tree height 1, one leaf: offset 0, flag 2, the hash
    assert (
        bytes.fromhex(proof)
        == b"\xfe" + (812_345).to_bytes(4, "little") + b"\x01\x01\x00\x02" + bytes.fromhex(coinbase)[::-1]
    )
    assert bump_root(coinbase, proof) == (812_345, coinbase)
    with pytest.raises(TxidNotInProof):
        bump_root("ab" * 32, proof)


@pytest.mark.parametrize("n", [2, 3, 10, 31, 64, 257])
def test_compound_bumps_prove_every_wanted_tx_and_nothing_more(n: int) -> None:
    txids = txids_of(n, 7 * n)
    tree = MerkleTree(txids)
    rng = random.Random(n)
    for _ in range(25):
        wanted = rng.sample(range(n), rng.randint(1, min(n, 12)))
        proof = tree.bump(wanted, 42)
        path = MerklePath.from_hex(proof)
        assert sorted(leaf["offset"] for leaf in path.path[0] if leaf.get("txid")) == sorted(wanted)
        for i in wanted:
            assert path.compute_root(txids[i]) == tree.root
            assert bump_root(txids[i], proof) == (42, tree.root)
        # compound is never bigger than the single paths together
        assert len(proof) <= sum(len(tree.bump(i, 42)) for i in wanted)


def test_the_tree_refuses_what_is_not_a_block() -> None:
    with pytest.raises(ValueError, match="at least one"):
        MerkleTree([])
    with pytest.raises(ValueError, match="non-hexadecimal"):
        MerkleTree(["zz" * 32])
    with pytest.raises(ValueError, match="64 hex digits"):
        MerkleTree(["ab" * 31])
    with pytest.raises(ValueError, match="a txid is hex"):
        MerkleTree(["ab " * 21 + "a", "cd" * 32])  # 64 characters that fromhex would read as 21 bytes
    tree = MerkleTree(txids_of(3))
    bad_indices: tuple[int | list[int], ...] = (3, -1, [])
    for bad in bad_indices:
        with pytest.raises(ValueError, match=r"block positions 0\.\.2"):
            tree.bump(bad, 1)
    with pytest.raises(ValueError, match="negative"):
        tree.bump(0, -1)


# ---- WoC block, page and raw-tx answers, offline -------------------------------------------------

HASH = "00" * 16 + "ab" * 16


def block_body(count: int, listed: list[str], uris: list[str] | None, size: int = 1000) -> dict[str, object]:
    body: dict[str, object] = {
        "hash": HASH,
        "height": 604_648,
        "merkleroot": "cd" * 32,
        "previousblockhash": "ef" * 32,
        "time": 1_571_273_258,
        "confirmations": 3,
        "txcount": count,
        "tx": listed,
    }
    if uris is not None:
        body["pages"] = {"uri": uris, "size": size}
    return body


def test_block_answers_and_their_page_links() -> None:
    txids = txids_of(2_417)
    recorded = parse_block(block_body(2_417, txids[:100], [f"/block/hash/{HASH}/page/1"], 50_000))
    assert recorded.tx_count == 2_417 and recorded.txids == tuple(txids[:100])
    assert recorded.pages == (1,) and recorded.page_size == 50_000
    assert recorded.header.block_hash == HASH and recorded.header.height == 604_648
    prefixed = parse_block(block_body(2_417, txids[:100], [f"/v1/bsv/main/block/hash/{HASH}/page/{n}" for n in (1, 2)]))
    assert prefixed.pages == (1, 2)
    small = parse_block(block_body(3, [t.upper() for t in txids[:3]], None))
    assert small.txids == tuple(txids[:3]) and small.pages == () and small.page_size is None
    for bad in (
        block_body(2_417, txids[:100], [f"/block/hash/{'ee' * 32}/page/1"]),  # another block's page
        block_body(2_417, txids[:100], ["https://elsewhere.example/page/1"]),
        block_body(2, txids[:3], None),  # more listed than it holds
        block_body(3, [*txids[:2], "zz" * 32], None),
    ):
        with pytest.raises(ShapeError):
            parse_block(bad)


@pytest.mark.parametrize("page_one_repeats_the_listed", [True, False])
def test_both_readings_of_where_page_one_starts_give_the_block(page_one_repeats_the_listed: bool) -> None:
    txids = tuple(txids_of(2_500))
    summary = parse_block(block_body(2_500, list(txids[:100]), [f"/block/hash/{HASH}/page/{n}" for n in (1, 2, 3)]))
    rest = txids if page_one_repeats_the_listed else txids[100:]
    pages = [rest[i : i + 1000] for i in range(0, len(rest), 1000)]
    assert assemble_block_txids(summary, pages) == txids


def test_pages_that_do_not_make_the_block_are_refused() -> None:
    txids = tuple(txids_of(1_500))
    summary = parse_block(block_body(1_500, list(txids[:100]), [f"/block/hash/{HASH}/page/1"]))
    with pytest.raises(ShapeError):
        assemble_block_txids(summary, [txids[:1_499]])  # one short
    with pytest.raises(ShapeError):
        assemble_block_txids(summary, [txids[1:] + txids[:1]])  # all there, but not after the listed ones
    unpaged = parse_block(block_body(1_500, list(txids[:100]), None))
    with pytest.raises(ShapeError):
        assemble_block_txids(unpaged, [])


def test_raw_tx_entries_must_hash_to_their_txid() -> None:
    raw = bytes.fromhex("01000000" + "00" + "00" + "00000000")
    txid = hashlib.sha256(hashlib.sha256(raw).digest()).digest()[::-1].hex()
    assert parse_raw_tx({"txid": txid.upper(), "hex": raw.hex(), "blockheight": 5}) == (txid, raw)
    assert parse_raw_tx({"txid": txid, "error": "unknown"}) == (txid, None)
    with pytest.raises(ShapeError, match="another txid"):
        parse_raw_tx({"txid": "ab" * 32, "hex": raw.hex()})
    with pytest.raises(ShapeError):
        parse_raw_tx({"txid": txid, "hex": "xyz"})
    with pytest.raises(ShapeError):
        parse_txids(["ab" * 32, 5], "mempool")
    with pytest.raises(ShapeError, match="not hex"):
        parse_txids(["ab " * 21 + "a"], "mempool")
    assert parse_txids([], "mempool") == ()


# ---- against a live chainsim with small block pages ---------------------------------------------


@pytest.fixture(scope="module")
def paged_url() -> Iterator[str]:
    with chainsim_process(profile="arc_faithful", woc_block_page_size=str(PAGE), **SIM_SETTINGS) as url:
        yield url


@pytest.fixture
async def paged(paged_url: str, control_http: httpx.AsyncClient) -> AsyncIterator[SimControl]:
    control = SimControl(control_http, paged_url)
    await control.reset()
    yield control
    await control.clear_faults()


@pytest.fixture
def paged_woc(http: httpx.AsyncClient, paged: SimControl) -> WocClient:
    return WocClient(http, woc_config(paged.base_url))


async def fill_mempool(sim: SimControl, key: Key, count: int) -> list[str]:
    """``count`` funding transactions left unconfirmed: the cheapest way to a big block."""
    txids: list[str] = []
    for _ in range(count):
        body = await sim._post("fund", {"address": key.address, "satoshis": 1_000, "confirm": False})
        txids.append(body["txid"])
    return txids


async def test_a_small_block_by_height_and_hash(paged: SimControl, paged_woc: WocClient, alice: Key) -> None:
    coins = await paged.fund(alice, count=3)
    txs = [pay(c) for c in coins]
    for tx in txs:
        assert (await paged_woc.broadcast(tx)).accepted
    [mined] = await paged.mine()

    by_height = await paged_woc.block(mined["height"])
    by_hash = await paged_woc.block(mined["hash"])
    assert isinstance(by_height, BlockSummary) and by_height == by_hash
    assert by_height.tx_count == 4 and list(by_height.txids) == mined["txids"] and by_height.pages == ()
    assert by_height.header.previous_hash is not None and by_height.header.time is not None

    full = await paged_woc.block_txids(mined["hash"])
    assert full is not None and list(full.txids) == mined["txids"]
    assert MerkleTree(full.txids).root == full.header.merkle_root
    assert await paged_woc.block(mined["height"] + 1) is None
    assert await paged_woc.block("ab" * 32) is None
    assert await paged_woc.block_txids(mined["height"] + 1) is None


async def test_a_big_block_is_read_whole_through_its_pages(
    paged: SimControl, paged_woc: WocClient, http: httpx.AsyncClient, request_log: RequestLog, alice: Key
) -> None:
    pending = await fill_mempool(paged, alice, 1_000)
    [mined] = await paged.mine()
    assert mined["txids"][1:] == pending

    summary = await paged_woc.block(mined["height"])
    assert summary is not None and summary.tx_count == 1_001 and len(summary.txids) == 100
    assert summary.pages == (1, 2, 3, 4) and summary.page_size == PAGE
    page = await paged_woc.block_page(mined["hash"], 4)
    assert page is not None and list(page) == mined["txids"][900:]
    assert await paged_woc.block_page(mined["hash"], 5) is None

    request_log.requests.clear()
    full = await paged_woc.block_txids(mined["height"])
    assert full is not None and list(full.txids) == mined["txids"]
    assert request_log.count("GET", f"/block/height/{mined['height']}") == 1
    assert sum(1 for r in request_log.requests if "/page/" in r.url.path) == 4
    # WOC_BULK_CONCURRENCY > 1: the pages in flight together, assembled in block order all the same.
    concurrent = WocClient(http, woc_config(paged.base_url, bulk_concurrency=3))
    request_log.requests.clear()
    assert await concurrent.block_txids(mined["hash"]) == full
    assert sum(1 for r in request_log.requests if "/page/" in r.url.path) == 4
    tree = MerkleTree(full.txids)
    assert tree.root == full.header.merkle_root

    # chainsim's ARC merkle paths (its own tree code) are the BUMPs the kit builds from the txids
    for index in (1, 2, 511, 999, 1_000):
        status = (await paged.http.get(f"{paged.base_url}/v1/tx/{full.txids[index]}")).json()
        assert status["txStatus"] == "MINED" and status["blockHeight"] == mined["height"]
        assert status["merklePath"] == tree.bump(index, mined["height"])
    compound = tree.bump([0, 1, 1_000], mined["height"])
    assert bump_root(full.txids[0], compound) == (mined["height"], full.header.merkle_root)


async def test_mempool_txids_and_raw_txs_in_chunks_of_20(
    paged: SimControl,
    paged_woc: WocClient,
    http: httpx.AsyncClient,
    request_log: RequestLog,
    alice: Key,
    bob: Key,
) -> None:
    assert await paged_woc.mempool_txids() == ()
    coins = await paged.fund(alice, count=30)
    txs = [pay(c, bob) for c in coins]
    for tx in txs[:25]:
        assert (await paged_woc.broadcast(tx)).accepted
    [mined] = await paged.mine()
    for tx in txs[25:]:
        assert (await paged_woc.broadcast(tx)).accepted
    assert await paged_woc.mempool_txids() == tuple(t.txid for t in txs[25:])

    unknown = txids_of(10, 99)
    asked = [mined["txids"][0], *unknown[:5], *(t.txid for t in txs), *unknown[5:]]
    request_log.requests.clear()
    raws = await paged_woc.raw_txs([*asked, txs[0].txid])
    assert request_log.count("POST", "/txs/hex") == 3  # 41 distinct ids -> 20 + 20 + 1
    assert list(raws) == [mined["txids"][0], *(t.txid for t in txs)]
    assert all(raws[t.txid] == t.raw for t in txs)
    assert hashlib.sha256(hashlib.sha256(raws[mined["txids"][0]]).digest()).digest()[::-1].hex() == mined["txids"][0]

    concurrent = WocClient(http, woc_config(paged.base_url, bulk_concurrency=3))
    request_log.requests.clear()
    assert await concurrent.raw_txs(asked) == raws
    assert request_log.count("POST", "/txs/hex") == 3
    assert await paged_woc.raw_txs([]) == {}


async def test_a_page_the_block_links_but_woc_lacks_is_a_bad_answer(
    paged: SimControl, paged_woc: WocClient, http: httpx.AsyncClient, alice: Key
) -> None:
    await fill_mempool(paged, alice, 1_000)
    [mined] = await paged.mine()
    await paged.faults({"rules": [{"face": "woc", "match": {"path": "/page/3"}, "action": "http:404"}]})
    with pytest.raises(ChainResponseError, match="page 3"):
        await paged_woc.block_txids(mined["hash"])
    with pytest.raises(ChainResponseError, match="page 3"):
        await WocClient(http, woc_config(paged.base_url, bulk_concurrency=4)).block_txids(mined["hash"])
    await paged.clear_faults()
    full = await paged_woc.block_txids(mined["hash"])
    assert full is not None and list(full.txids) == mined["txids"]
