"""Mining, merkle paths checked against WhatsOnChain headers, and reorgs (§6.10 items 3 and 14)."""

from __future__ import annotations

import pytest

from proofline_kit.chain import (
    ArcClient,
    ArcStatus,
    ProofVerdict,
    TxChainState,
    WocClient,
    verify_merkle_path,
    verify_tsc_proof,
)
from tests.chain_clients.sim import SimControl
from tests.chain_clients.wallet import Key, pay

pytestmark = pytest.mark.timeout(60)


def tamper_sibling(bump_hex: str) -> str:
    """Flip one bit in the last hash of the path (a sibling, never the txid leaf)."""
    data = bytearray(bytes.fromhex(bump_hex))
    data[-1] ^= 0x01
    return data.hex()


async def test_mined_tx_has_a_merkle_path_that_verifies(
    sim: SimControl, arc: ArcClient, woc: WocClient, alice: Key, bob: Key
) -> None:
    coins = await sim.fund(alice, count=3)
    txs = [pay(c, bob, data=b"x" * (i + 1)) for i, c in enumerate(coins)]  # several txs: a real tree
    for tx in txs:
        assert (await arc.broadcast(tx)).accepted
    [block] = await sim.mine()

    for tx in txs:
        status = await arc.status(tx.txid)
        assert status is not None
        assert status.status is ArcStatus.MINED
        assert status.block_hash == block["hash"]
        assert status.block_height == block["height"]
        assert status.merkle_path
        check = await verify_merkle_path(tx.txid, status.merkle_path, woc)
        assert check.verdict is ProofVerdict.VALID, check
        assert check.block_hash == block["hash"]
        assert check.computed_root == check.header_root

    tip = await woc.chain_tip()
    assert tip.height == block["height"]
    assert tip.block_hash == block["hash"]
    statuses = await woc.tx_statuses([txs[0].txid])
    assert statuses[txs[0].txid].state is TxChainState.MINED
    assert statuses[txs[0].txid].confirmations == 1


async def test_tampered_merkle_paths_are_rejected(
    sim: SimControl, arc: ArcClient, woc: WocClient, alice: Key, bob: Key
) -> None:
    coins = await sim.fund(alice, count=2)
    tx, other = pay(coins[0], bob), pay(coins[1], bob)
    assert (await arc.broadcast(tx)).accepted
    assert (await arc.broadcast(other)).accepted
    await sim.mine()
    status = await arc.status(tx.txid)
    assert status is not None
    assert status.merkle_path is not None
    path = status.merkle_path

    assert (await verify_merkle_path(tx.txid, tamper_sibling(path), woc)).verdict is ProofVerdict.ROOT_MISMATCH
    assert (await verify_merkle_path(other.txid, path, woc)).verdict in (
        ProofVerdict.VALID,  # both txids can sit on level 0 of one path (siblings)
        ProofVerdict.TXID_NOT_IN_PATH,
    )
    assert (await verify_merkle_path("ab" * 32, path, woc)).verdict is ProofVerdict.TXID_NOT_IN_PATH
    assert (await verify_merkle_path(tx.txid, path[:-2], woc)).verdict is ProofVerdict.MALFORMED
    assert (await verify_merkle_path(tx.txid, path + "00", woc)).verdict is ProofVerdict.MALFORMED
    # The same proof moved to a height: no block there yet, then a block with another root.
    assert status.block_height is not None
    assert status.block_height < 0xFC  # one-byte varint height, so the first byte is the height
    future = "fc" + path[2:]
    assert (await verify_merkle_path(tx.txid, future, woc)).verdict is ProofVerdict.UNKNOWN_BLOCK
    earlier = f"{status.block_height - 1:02x}" + path[2:]
    assert (await verify_merkle_path(tx.txid, earlier, woc)).verdict is ProofVerdict.ROOT_MISMATCH


async def test_woc_tsc_proof_verifies(sim: SimControl, arc: ArcClient, woc: WocClient, alice: Key, bob: Key) -> None:
    coins = await sim.fund(alice, count=3)
    txs = [pay(c, bob) for c in coins]
    for tx in txs:
        assert (await arc.broadcast(tx)).accepted
    await sim.mine()

    for tx in txs:
        proof = await woc.tsc_proof(tx.txid)
        assert proof is not None
        assert (await verify_tsc_proof(tx.txid, proof, woc)).verdict is ProofVerdict.VALID
    assert await woc.tsc_proof("cd" * 32) is None


async def test_reorg_moves_tx_to_a_new_block(
    sim: SimControl, arc: ArcClient, woc: WocClient, alice: Key, bob: Key
) -> None:
    [coin] = await sim.fund(alice)
    tx = pay(coin, bob)
    assert (await arc.broadcast(tx)).accepted
    [old_block] = await sim.mine()
    before = await arc.status(tx.txid)
    assert before is not None
    assert before.merkle_path is not None

    reorg = await sim.reorg(depth=1)

    assert tx.txid in reorg["remined"]
    after = await arc.status(tx.txid)
    assert after is not None
    assert after.status is ArcStatus.MINED
    assert after.block_hash != old_block["hash"]
    assert after.block_hash == reorg["new"][0]["hash"]
    assert after.merkle_path is not None
    fresh = await verify_merkle_path(tx.txid, after.merkle_path, woc)
    assert fresh.verdict is ProofVerdict.VALID
    assert fresh.block_hash == after.block_hash
    # The old proof's block left the longest chain: its root no longer matches that height.
    stale = await verify_merkle_path(tx.txid, before.merkle_path, woc)
    assert stale.verdict is ProofVerdict.ROOT_MISMATCH
    assert (await woc.chain_tip()).block_hash == reorg["tip"]["hash"]


async def test_reorg_drops_tx_back_to_mempool(
    sim: SimControl, arc: ArcClient, woc: WocClient, alice: Key, bob: Key
) -> None:
    [coin] = await sim.fund(alice)
    tx = pay(coin, bob)
    assert (await arc.broadcast(tx)).accepted
    await sim.mine()
    before = await arc.status(tx.txid)
    assert before is not None
    assert before.merkle_path is not None

    reorg = await sim.reorg(depth=1, drop=[tx.txid])

    assert tx.txid in reorg["stale_only"]
    dropped = await arc.status(tx.txid)
    assert dropped is not None
    assert dropped.status in (ArcStatus.MINED_IN_STALE_BLOCK, ArcStatus.SEEN_ON_NETWORK)
    assert (await woc.tx_statuses([tx.txid]))[tx.txid].state is TxChainState.MEMPOOL
    assert (await verify_merkle_path(tx.txid, before.merkle_path, woc)).verdict is ProofVerdict.ROOT_MISMATCH
    # Re-sending the same bytes while it waits in the mempool again is still fine.
    assert (await arc.broadcast(tx)).accepted

    [block] = await sim.mine()
    remined = await arc.status(tx.txid)
    assert remined is not None
    assert remined.status is ArcStatus.MINED
    assert remined.block_hash == block["hash"]
    assert remined.merkle_path is not None
    assert (await verify_merkle_path(tx.txid, remined.merkle_path, woc)).valid
