"""The local signing check: a fixed-base multiplication standing for the full ECDSA verification."""

from __future__ import annotations

import os

import asyncpg
import grpc
from bsv.curve import curve
from proofline.signer.v1 import signer_pb2

from services.signer_gateway.domain import ecdsa
from services.signer_gateway.domain.crypto_pool import INLINE_BELOW, CryptoPool
from tests.harness.grpc_errors import expect_rpc_error
from tests.signer_gateway.conftest import PUBLISHER, SignerUnderTest, create_key

N = int(curve.n)


def _parts(secret: bytes, digest: bytes) -> tuple[int, int, int, int]:
    der = ecdsa.sign_digest(secret, digest)
    r_len = der[3]
    r = int.from_bytes(der[4 : 4 + r_len], "big")
    s = int.from_bytes(der[6 + r_len :], "big")
    return int.from_bytes(secret, "big"), int.from_bytes(digest, "big") % N, r, s


def test_checked_signatures_are_the_libsecp256k1_signatures_and_verify() -> None:
    secret = os.urandom(32)
    public = ecdsa.public_key_of(secret)
    digests = [os.urandom(32) for _ in range(50)] + [b"\xff" * 32, b"\x00" * 32]
    signatures = ecdsa.sign_and_check_with_secret(secret, public, digests)
    for digest, signature in zip(digests, signatures, strict=True):
        assert signature == ecdsa.sign_digest(secret, digest)
        assert signature is not None and ecdsa.verify_digest(public, signature, digest)
        assert ecdsa.is_low_s(signature)


def test_the_check_accepts_exactly_what_a_full_verify_accepts() -> None:
    secret, digest = os.urandom(32), os.urandom(32)
    d, z, r, s = _parts(secret, digest)
    assert ecdsa.checked_signatures(d, [z], [r], [s]) == [ecdsa.sign_digest(secret, digest)]
    bad = [(z + 1, r, s), (z, r + 1, s), (z, r, s + 1), (z, r, N - s), (z, 0, s), (z, r, 0), (z, N + r, s)]
    checked = ecdsa.checked_signatures(d, [b[0] % N for b in bad], [b[1] for b in bad], [b[2] for b in bad])
    assert checked == [None] * len(bad)
    # Another key's secret: the same (r, s) does not check.
    other = int.from_bytes(os.urandom(32), "big") % N
    assert ecdsa.checked_signatures(other, [z], [r], [s]) == [None]
    # Good and bad mixed: each judged on its own (the batch inversion does not leak between items).
    _, z2, r2, s2 = _parts(secret, os.urandom(32))
    mixed = ecdsa.checked_signatures(d, [z, z2, z], [r, r2, r], [s, s2 + 1, s])
    assert [m is not None for m in mixed] == [True, False, True]


def test_a_secret_that_is_not_the_public_keys_signs_nothing() -> None:
    secret = os.urandom(32)
    stranger = ecdsa.public_key_of(os.urandom(32))
    assert ecdsa.sign_and_check_with_secret(secret, stranger, [os.urandom(32)] * 3) == [None, None, None]


async def test_the_pool_groups_by_key_and_keeps_the_order() -> None:
    pool = CryptoPool(2)
    try:
        secrets = [os.urandom(32) for _ in range(3)]
        publics = [ecdsa.public_key_of(s) for s in secrets]
        order = [i % 3 for i in range(100)]
        digests = [os.urandom(32) for _ in order]
        signatures = await pool.sign_checked([secrets[i] for i in order], [publics[i] for i in order], digests)
        for i, digest, signature in zip(order, digests, signatures, strict=True):
            assert signature is not None and ecdsa.verify_digest(publics[i], signature, digest)
        wrong = await pool.sign_checked(
            [secrets[0]] * 40, [publics[0]] * 39 + [publics[1]], [os.urandom(32) for _ in range(40)]
        )
        assert wrong[:39] == [s for s in wrong[:39] if s is not None] and wrong[39] is None
    finally:
        pool.close()


async def test_a_stored_public_key_that_is_not_the_secrets_fails_the_check(signer: SignerUnderTest) -> None:
    await create_key(signer, "publish-1")
    other = await create_key(signer, "publish-2")
    conn = await asyncpg.connect(signer.env["DATABASE_URL"])
    try:
        await conn.execute("UPDATE signer.keys SET public_key = $1 WHERE key_id = 'publish-1'", other.public_key)
    finally:
        await conn.close()
    request = signer_pb2.SignRequest(
        request_id="x1", items=[signer_pb2.SignItem(key_id="publish-1", digest=os.urandom(32))]
    )
    await expect_rpc_error(
        signer.stub.Sign(request, metadata=PUBLISHER), grpc.StatusCode.INTERNAL, "SIGNATURE_CHECK_FAILED"
    )


async def test_one_worker_takes_large_batches_and_small_ones_stay_inline() -> None:
    secret = os.urandom(32)
    public = ecdsa.public_key_of(secret)
    for workers in (0, 1):
        pool = CryptoPool(workers)
        try:
            for count in (0, 1, INLINE_BELOW - 1, INLINE_BELOW, 3 * INLINE_BELOW + 1):
                digests = [os.urandom(32) for _ in range(count)]
                signatures = await pool.sign_checked([secret] * count, [public] * count, digests)
                assert signatures == [ecdsa.sign_digest(secret, d) for d in digests]
        finally:
            pool.close()
