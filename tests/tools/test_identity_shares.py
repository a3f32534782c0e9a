"""SLIP-0039 shares of identity keys: the official test vectors, and our 3-of-5 split.

`data/slip39_vectors.json` is the official SLIP-0039 vector file as trezor/python-shamir-mnemonic
ships it in its repository (commit 17fcce14736afe498871d3018e4fa9330443471a, MIT; the PyPI sdist and
wheel of shamir-mnemonic 0.3.0 leave it out). Each entry is [description, mnemonics, master secret
hex (empty: the set is invalid), BIP-32 xprv]; valid sets use the passphrase "TREZOR".
"""

from __future__ import annotations

import hashlib
import json
import random
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
from shamir_mnemonic import EncryptedMasterSecret, Share, split_ems
from shamir_mnemonic.wordlist import WORDLIST

from proofline_tools.identity.shares import (
    SHARE_INVALID,
    SHARES_MISMATCH,
    TOO_FEW_SHARES,
    ShareError,
    combine_shares,
    split_secret,
)
from proofline_tools.signed_intents import IdentityKey

VECTOR_FILE = Path(__file__).parent / "data" / "slip39_vectors.json"
VECTOR_FILE_SHA256 = "13ebecebdd869dd2bc2cdf69e7ce3a158cf106cac76c39d17682b1c6cdabbdc4"
VECTORS: list[list[Any]] = json.loads(VECTOR_FILE.read_text())
VALID = [v for v in VECTORS if v[2]]
INVALID = [v for v in VECTORS if not v[2]]

# Why each invalid vector is refused, by its description.
INVALID_REASONS = {
    "Mnemonic with invalid checksum": SHARE_INVALID,
    "Mnemonic with invalid padding": SHARE_INVALID,
    "Basic sharing 2-of-3": TOO_FEW_SHARES,
    "Mnemonics with different identifiers": SHARES_MISMATCH,
    "Mnemonics with different iteration exponents": SHARES_MISMATCH,
    "Mnemonics with mismatching group thresholds": SHARES_MISMATCH,
    "Mnemonics with mismatching group counts": SHARES_MISMATCH,
    "Mnemonics with greater group threshold than group counts": SHARE_INVALID,
    "Mnemonics with duplicate member indices": SHARES_MISMATCH,
    "Mnemonics with mismatching member thresholds": SHARES_MISMATCH,
    "Mnemonics giving an invalid digest": SHARES_MISMATCH,
    "Insufficient number of groups": TOO_FEW_SHARES,
    "Threshold number of groups, but insufficient number of members in one group": TOO_FEW_SHARES,
    "Mnemonic with insufficient length": SHARE_INVALID,
    "Mnemonic with invalid master secret length": SHARE_INVALID,
}


def expected_reason(description: str) -> str:
    title = description.split(". ", 1)[1].split(" (", 1)[0]
    return INVALID_REASONS[title]


def test_the_vector_file_is_the_whole_official_set() -> None:
    assert hashlib.sha256(VECTOR_FILE.read_bytes()).hexdigest() == VECTOR_FILE_SHA256
    assert len(VECTORS) == 45
    assert (len(VALID), len(INVALID)) == (15, 30)


@pytest.mark.parametrize("vector", VALID, ids=[v[0] for v in VALID])
def test_every_valid_vector_gives_its_master_secret(vector: list[Any]) -> None:
    _, mnemonics, secret_hex, _ = vector
    assert combine_shares(mnemonics, b"TREZOR") == bytes.fromhex(secret_hex)
    # Order does not matter.
    assert combine_shares(list(reversed(mnemonics)), b"TREZOR") == bytes.fromhex(secret_hex)


@pytest.mark.parametrize("vector", INVALID, ids=[v[0] for v in INVALID])
def test_every_invalid_vector_is_refused_with_its_reason(vector: list[Any]) -> None:
    description, mnemonics, _, _ = vector
    with pytest.raises(ShareError) as refused:
        combine_shares(mnemonics)
    assert refused.value.reason == expected_reason(description)
    assert str(refused.value).startswith(f"{refused.value.reason}: ")
    # A refusal never repeats the words of a share.
    words = {w for m in mnemonics for w in m.split()}
    assert not words & set(str(refused.value).replace(":", " ").replace("(", " ").replace(")", " ").split())


@pytest.fixture(scope="module")
def key() -> IdentityKey:
    return IdentityKey.generate()


@pytest.fixture(scope="module")
def shares(key: IdentityKey) -> list[str]:
    return split_secret(key.secret)


def test_a_split_is_five_shares_of_one_backup(shares: list[str]) -> None:
    decoded = [Share.from_mnemonic(s) for s in shares]
    assert len(shares) == 5
    assert [s.index for s in decoded] == [0, 1, 2, 3, 4]
    assert {(s.identifier, s.group_threshold, s.group_count, s.member_threshold) for s in decoded} == {
        (decoded[0].identifier, 1, 1, 3)
    }
    assert all(len(s.split()) == 33 for s in shares)  # a 256-bit secret


def test_any_three_of_five_rebuild_the_key(key: IdentityKey, shares: list[str]) -> None:
    triples = list(combinations(shares, 3))
    assert len(triples) == 10
    for triple in triples:
        mixed = list(triple)
        random.shuffle(mixed)
        assert combine_shares(mixed) == key.secret
    for bigger in [*combinations(shares, 4), tuple(shares)]:
        assert combine_shares(bigger) == key.secret


def test_no_two_of_five_rebuild_anything(shares: list[str]) -> None:
    pairs = list(combinations(shares, 2))
    assert len(pairs) == 10
    for pair in pairs:
        with pytest.raises(ShareError) as refused:
            combine_shares(pair)
        assert refused.value.reason == TOO_FEW_SHARES
    # The same share twice is still one share.
    with pytest.raises(ShareError, match=TOO_FEW_SHARES):
        combine_shares([shares[0], shares[1], shares[1]])
    with pytest.raises(ShareError, match=TOO_FEW_SHARES):
        combine_shares([])


def test_a_share_of_another_key_is_refused(shares: list[str]) -> None:
    other = split_secret(IdentityKey.generate().secret)
    for mixed in ([shares[0], shares[1], other[2]], [other[0], shares[3], shares[4]], [*shares[:3], other[3]]):
        with pytest.raises(ShareError) as refused:
            combine_shares(mixed)
        assert refused.value.reason == SHARES_MISMATCH


def test_a_share_of_another_split_under_the_same_identifier_is_refused(key: IdentityKey, shares: list[str]) -> None:
    """Shares whose headers match but which lie on another polynomial: the digest (3 shares) or the
    cross-check of every extra share (4 shares) refuses them."""
    first = Share.from_mnemonic(shares[0])
    forged_ems = EncryptedMasterSecret(first.identifier, first.extendable, first.iteration_exponent, bytes(32))
    forged = [s.mnemonic() for s in split_ems(1, [(3, 5)], forged_ems)[0]]
    for mixed in ([shares[0], shares[1], forged[2]], [*shares[:3], forged[4]]):
        with pytest.raises(ShareError) as refused:
            combine_shares(mixed)
        assert refused.value.reason == SHARES_MISMATCH


def tampered(mnemonic: str, position: int) -> str:
    words = mnemonic.split()
    words[position] = WORDLIST[(WORDLIST.index(words[position]) + 1) % len(WORDLIST)]
    return " ".join(words)


@pytest.mark.parametrize("position", [0, 3, 4, 16, 32])
def test_a_share_with_one_word_changed_is_refused_by_its_checksum(shares: list[str], position: int) -> None:
    with pytest.raises(ShareError) as refused:
        combine_shares([shares[0], tampered(shares[1], position), shares[2]])
    assert refused.value.reason == SHARE_INVALID
    assert "checksum" in str(refused.value)


def test_a_word_outside_the_list_is_refused(shares: list[str]) -> None:
    with pytest.raises(ShareError, match=SHARE_INVALID):
        combine_shares([shares[0], shares[1], shares[2].replace(shares[2].split()[5], "bitcoin", 1)])


def test_the_passphrase_is_part_of_the_backup(key: IdentityKey) -> None:
    protected = split_secret(key.secret, passphrase=b"correct horse")
    assert combine_shares(protected[2:], b"correct horse") == key.secret
    # SLIP-0039 by design: another passphrase gives another secret, not an error.
    assert combine_shares(protected[2:]) != key.secret
    with pytest.raises(ValueError, match="printable ASCII"):
        split_secret(key.secret, passphrase="café".encode())
