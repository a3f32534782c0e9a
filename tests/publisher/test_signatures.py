"""Strict DER and low-S, as intake checks them before verifying."""

from __future__ import annotations

import hashlib

import pytest

from proofline_kit.intents import signatures
from tests.publisher.conftest import IdentityKey, high_s


def _sig(r: bytes, s: bytes) -> bytes:
    body = b"\x02" + bytes([len(r)]) + r + b"\x02" + bytes([len(s)]) + s
    return b"\x30" + bytes([len(body)]) + body


def test_a_real_signature_parses_is_low_s_and_verifies() -> None:
    key = IdentityKey.generate()
    signature = key.sign(b"payload")
    _, s = signatures.parse_der(signature)
    assert signatures.is_low_s(s)
    assert signatures.verify(key.pubkey, signature, hashlib.sha256(b"payload").digest())
    assert not signatures.verify(key.pubkey, signature, hashlib.sha256(b"other").digest())


def test_high_s_parses_but_is_not_low_s_and_libsecp256k1_refuses_it() -> None:
    key = IdentityKey.generate()
    flipped = high_s(key.sign(b"payload"))
    _, s = signatures.parse_der(flipped)
    assert not signatures.is_low_s(s)
    assert not signatures.verify(key.pubkey, flipped, hashlib.sha256(b"payload").digest())


@pytest.mark.parametrize(
    "signature",
    [
        b"",
        b"\x30\x06\x02\x01\x01\x02\x01",  # truncated
        _sig(b"\x01", b"\x01")[:-1] + b"\x01\x00",  # length mismatch
        b"\x31" + _sig(b"\x01", b"\x01")[1:],  # not a SEQUENCE
        _sig(b"\x81", b"\x01"),  # negative R
        _sig(b"\x00\x01", b"\x01"),  # superfluous leading zero
        _sig(b"\x01", b"\x00"),  # zero S
        _sig(b"\x01", b"\x00" + signatures.CURVE_ORDER.to_bytes(32, "big")),  # S = n, out of range
        _sig(b"\x01", b"\x01") + b"\x00",  # trailing byte
        b"\x30\x07\x02\x01\x01\x02\x01\x01\x00",  # trailing byte inside the sequence
        _sig(b"\x01", b"\x01") + b"\x41",  # a sighash byte appended
    ],
)
def test_non_strict_der_is_malformed(signature: bytes) -> None:
    with pytest.raises(signatures.MalformedSignature):
        signatures.parse_der(signature)


def test_public_keys_must_be_compressed_points() -> None:
    key = IdentityKey.generate()
    assert signatures.is_compressed_pubkey(key.pubkey)
    assert not signatures.is_compressed_pubkey(key.pubkey[:32])
    assert not signatures.is_compressed_pubkey(b"\x04" + key.pubkey[1:])
    assert not signatures.is_compressed_pubkey(b"\x02" + b"\xff" * 32)
