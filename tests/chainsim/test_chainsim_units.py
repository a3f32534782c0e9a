"""Unit checks of the pieces: codec, merkle/BUMP vs bsv-sdk, script verification, settings."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
from bsv import MerklePath, Transaction

from proofline_kit.settings import EnvReader, SettingsError
from services.chainsim.chain.merkle import bump, merkle_levels, merkle_root, root_from_bump
from services.chainsim.chain.scriptcheck import (
    FAIL_FORKID,
    FAIL_LOW_S,
    InterpreterVerifier,
    P2pkhVerifier,
    is_strict_der,
)
from services.chainsim.chain.txcodec import TxDecodeError, is_beef, parse_one, parse_stream, push_only, to_ef
from services.chainsim.settings import Profile, ScriptVerify, read_chainsim_settings
from tests.chainsim.conftest import SimFactory
from tests.chainsim.helpers import Coin, Key, build, ef_hex, fund, spend

_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _coin(key: Key, sats: int = 10_000) -> Coin:
    parent = Transaction.from_hex(
        "01000000"
        + "01"
        + "11" * 32
        + "00000000"
        + "00"
        + "ffffffff"
        + "01"
        + sats.to_bytes(8, "little").hex()
        + "19"
        + key.lock.hex()
        + "00000000"
    )
    return Coin(parent.txid(), 0, sats, key.lock, key, parent.hex())


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33])
def test_bump_matches_bsv_sdk_for_every_leaf(n: int) -> None:
    leaves = [hashlib.sha256(bytes([i, n])).digest() for i in range(n)]
    levels = merkle_levels(leaves)
    root_hex = merkle_root(leaves)[::-1].hex()
    for i, leaf in enumerate(leaves):
        proof = bump(levels, i, 800_000 + n)
        height, root = root_from_bump(leaf, proof)
        assert height == 800_000 + n and root[::-1].hex() == root_hex
        if n > 1:
            mp = MerklePath.from_hex(proof.hex())
            assert mp.block_height == height and mp.compute_root(leaf[::-1].hex()) == root_hex


def test_codec_round_trips_raw_and_ef() -> None:
    alice = Key(7)
    tx = spend(_coin(alice))
    raw = tx.serialize()
    parsed = parse_one(raw)
    assert parsed.txid_hex == tx.txid() and parsed.ef is None and parsed.raw == raw
    ef = to_ef(raw, [(10_000, alice.lock)])
    assert ef.hex() == ef_hex(tx)
    from_ef = parse_one(ef)
    assert from_ef.raw == raw and from_ef.txid == parsed.txid and from_ef.ef == [(10_000, alice.lock)]
    assert [t.txid for t in parse_stream(ef + raw + ef)] == [parsed.txid] * 3
    for cut in (3, 10, 41, len(raw) - 1):
        with pytest.raises(TxDecodeError):
            parse_one(raw[:cut])
    with pytest.raises(TxDecodeError):
        parse_one(raw + b"\x00")
    assert not is_beef(raw) and is_beef(bytes.fromhex("0100beef00"))
    assert push_only(b"\x00\x51\x4c\x01\xff") and not push_only(b"\x76") and not push_only(b"\x4c\x05\x00")


def test_p2pkh_verifier_agrees_with_the_interpreter() -> None:
    alice, mallory = Key(11), Key(12)
    interpreter = InterpreterVerifier()
    fast = P2pkhVerifier(interpreter)
    coin = _coin(alice)
    good = parse_one(spend(coin).serialize())
    prevouts = [(coin.satoshis, coin.script)]
    assert fast.verify(good, prevouts) is None and interpreter.verify(good, prevouts) is None
    wrong_value = [(coin.satoshis + 1, coin.script)]
    assert fast.verify(good, wrong_value) is not None and interpreter.verify(good, wrong_value) is not None
    stolen = spend(Coin(coin.txid, 0, coin.satoshis, coin.script, mallory, coin.parent_hex))
    bad = parse_one(stolen.serialize())
    assert "EQUALVERIFY" in (fast.verify(bad, prevouts) or "") and interpreter.verify(bad, prevouts) is not None


def _resign(tx: Transaction, key: Key, mutate_der: object) -> bytes:
    from bsv import Script
    from bsv.hash import hash256
    from bsv.transaction_preimage import tx_preimages
    from bsv.utils import encode_pushdata

    digest = hash256(tx_preimages(tx.inputs, tx.outputs, tx.version, tx.locktime)[0])
    der = key.priv.sign(digest, hasher=None)
    der, flag = mutate_der(der)  # type: ignore[operator]
    tx.inputs[0].unlocking_script = Script(
        encode_pushdata(der + bytes([flag])) + encode_pushdata(key.priv.public_key().serialize())
    )
    tx._invalidate_hash_cache()
    return bytes(tx.serialize())


def _high_s(der: bytes) -> tuple[bytes, int]:
    len_r = der[3]
    r = der[4 : 4 + len_r]
    s = int.from_bytes(der[6 + len_r :], "big")
    hs = (_N - s).to_bytes(32, "big")
    if hs[0] & 0x80:
        hs = b"\x00" + hs
    body = b"\x02" + bytes([len(r)]) + r + b"\x02" + bytes([len(hs)]) + hs
    return b"\x30" + bytes([len(body)]) + body, 0x41


def test_high_s_and_missing_forkid_fail() -> None:
    alice = Key(21)
    coin = _coin(alice)
    fast = P2pkhVerifier(InterpreterVerifier())
    prevouts = [(coin.satoshis, coin.script)]
    tx = spend(coin)
    high = parse_one(_resign(tx, alice, _high_s))
    assert is_strict_der(high.inputs[0][1][1 : 1 + high.inputs[0][1][0]])
    assert fast.verify(high, prevouts) == FAIL_LOW_S
    assert InterpreterVerifier().verify(high, prevouts) is not None
    tx = spend(coin)
    no_forkid = parse_one(_resign(tx, alice, lambda d: (d, 0x01)))
    assert fast.verify(no_forkid, prevouts) == FAIL_FORKID


def test_settings_from_env(tmp_path: Path) -> None:
    s = read_chainsim_settings(
        EnvReader(
            {
                "CHAINSIM_PORT": "0",
                "CHAINSIM_PROFILE": "strict",
                "CHAINSIM_FEE_SAT_PER_KB": "50",
                "CHAINSIM_SNAPSHOT": str(tmp_path / "s.json"),
                "CHAINSIM_SCRIPT_VERIFY": "interpreter",
                "CHAINSIM_MINE_INTERVAL_MS": "250",
                "CHAINSIM_NETWORK": "main",
            }
        )
    )
    assert (s.port, s.profile, s.script_verify, s.mine_interval_ms, s.network) == (
        0,
        Profile.STRICT,
        ScriptVerify.INTERPRETER,
        250,
        "main",
    )
    assert s.policy.fee_satoshis == 50 and s.node_fee_sat_per_kb == 50 and s.snapshot == tmp_path / "s.json"
    assert s.policy.min_fee(1) == 1 and s.policy.min_fee(20) == 1 and s.policy.min_fee(21) == 2
    d = read_chainsim_settings(EnvReader({}))
    assert (d.host, d.port, d.profile, d.network, d.snapshot) == ("127.0.0.1", 8700, Profile.ARC_FAITHFUL, "test", None)
    assert d.policy.min_fee(226) == 1 and d.policy.min_fee(1000) == 1 and d.policy.min_fee(1001) == 2
    for bad in ({"CHAINSIM_PORT": "x"}, {"CHAINSIM_NETWORK": "regtest"}, {"CHAINSIM_SCRIPT_VERIFY": "off"}):
        with pytest.raises(SettingsError):
            read_chainsim_settings(EnvReader(bad))


async def test_interpreter_mode_end_to_end(sim_factory: SimFactory, alice: Key, bob: Key) -> None:
    sim = await sim_factory(script_verify=ScriptVerify.INTERPRETER)
    async with httpx.AsyncClient(base_url=sim.base_url, trust_env=False) as client:
        coins = await fund(client, alice, count=2)
        good = build([coins[0]], [(5_000, bob.lock)], change=alice)
        assert (await client.post("/v1/tx", json={"rawTx": ef_hex(good)})).json()["txStatus"] == "SEEN_ON_NETWORK"
        thief = spend(Coin(coins[1].txid, 1, coins[1].satoshis, coins[1].script, bob, coins[1].parent_hex))
        assert (await client.post("/v1/tx", json={"rawTx": ef_hex(thief)})).status_code == 461


async def test_non_p2pkh_outputs_use_the_interpreter(client: httpx.AsyncClient, bob: Key) -> None:
    r = await client.post("/_sim/fund", json={"script_hex": "5187", "satoshis": 5_000})  # OP_1 OP_EQUAL
    body = r.json()
    from services.chainsim.chain.txcodec import outpoint, serialize_tx

    op = outpoint(bytes.fromhex(body["txid"])[::-1], 0)
    raw = serialize_tx(1, [(op, b"\x51", 0xFFFFFFFF)], [(4_000, bob.lock), (900, bob.lock)])
    r = await client.post("/v1/tx", json={"rawTx": to_ef(raw, [(5_000, b"\x51\x87")]).hex()})
    assert r.json()["txStatus"] == "SEEN_ON_NETWORK", r.text
    raw_bad = serialize_tx(1, [(op, b"\x52", 0xFFFFFFFF)], [(4_000, bob.lock)])
    r = await client.post("/v1/tx", json={"rawTx": to_ef(raw_bad, [(5_000, b"\x51\x87")]).hex()})
    assert r.status_code == 461 and "script execution failed" in r.json()["extraInfo"]


async def test_staged_progression(sim_factory: SimFactory, alice: Key) -> None:
    from services.chainsim.settings import Progression

    sim = await sim_factory(progression=Progression.STAGED, stage_delay_ms=100)
    async with httpx.AsyncClient(base_url=sim.base_url, trust_env=False) as client:
        coins = await fund(client, alice, count=2)
        tx = spend(coins[0])
        r = await client.post("/v1/tx", json={"rawTx": ef_hex(tx)}, headers={"X-WaitFor": "STORED"})
        assert r.json()["txStatus"] == "STORED"
        r = await client.post(
            "/v1/tx", json={"rawTx": ef_hex(spend(coins[1]))}, headers={"X-WaitFor": "SENT_TO_NETWORK"}
        )
        assert r.json()["txStatus"] == "SENT_TO_NETWORK"
        r = await client.post("/v1/tx", json={"rawTx": ef_hex(tx)}, headers={"X-MaxTimeout": "5"})
        assert r.json()["txStatus"] == "SEEN_ON_NETWORK"
