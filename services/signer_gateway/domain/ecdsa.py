"""secp256k1 ECDSA over 32-byte digests (bsv-sdk's libsecp256k1), strict DER, low-S.

The gateway refuses to run on bsv-sdk's pure-Python fallback (hundreds of times slower); the
native module is called directly on the hot path to skip per-call key object construction.
"""

from __future__ import annotations

from collections.abc import Sequence

from bsv import PrivateKey, PublicKey
from bsv.curve import curve
from bsv.hash import hash160
from bsv.native import NATIVE_AVAILABLE, NATIVE_MODULE, native_status
from bsv.utils import deserialize_ecdsa_der, serialize_ecdsa_der

DIGEST_BYTES = 32
PUBLIC_KEY_BYTES = 33
_ORDER: int = int(curve.n)
_HALF_ORDER: int = _ORDER // 2
_LENGTH = tuple(bytes((i,)) for i in range(256))


def is_valid_secret(secret: bytes) -> bool:
    return len(secret) == 32 and 0 < int.from_bytes(secret, "big") < curve.n


def public_key_of(secret: bytes) -> bytes:
    return bytes(PrivateKey(secret).public_key().serialize(compressed=True))


def require_native() -> None:
    if not NATIVE_AVAILABLE:
        raise RuntimeError(f"bsv-sdk's native libsecp256k1 is not available: {native_status()}")


def sign_digest(secret: bytes, digest: bytes) -> bytes:
    """RFC 6979 deterministic signature, strict DER, low-S."""
    return bytes(NATIVE_MODULE.ecdsa_sign(digest, secret))


def sign_and_check_with_secret(secret: bytes, public_key: bytes, digests: Sequence[bytes]) -> list[bytes | None]:
    """RFC 6979 low-S signatures of `digests` by one local key, each checked before it is returned
    (None where a check fails), with a fixed-base multiplication instead of a full verify.

    Why this is the full ECDSA verification: verifying (r, s) over z against Q computes
    w = s^-1, R' = (z*w)*G + (r*w)*Q and accepts iff R' is not infinity and x(R') mod n == r. When
    Q == d*G, R' = (z*w + r*w*d)*G = ((z + r*d) * s^-1 mod n)*G: one fixed-base multiplication
    (libsecp256k1's pubkey_from_secret, its fastest point operation) instead of verify's
    double multiplication. It holds only because Q == d*G, so that is checked first, once per
    call for each secret (and once per unsealing by the keystore). The bytes returned are the
    strict-DER encoding of exactly the (r, s) checked, with 0 < r < n and 0 < s <= n/2 (low-S).

    (z + r*d) * s^-1 mod n is the signature's secret nonce k, so the multiplication must be the
    constant-time one (pubkey_from_secret's ecmult_gen), never a variable-time point operation
    (e.g. pubkey_tweak_add): that would leak k, and k leaks d. The few Python integer operations
    on d and k are not constant-time either; their timing depends only on operand lengths.
    """
    if NATIVE_MODULE.pubkey_from_secret(secret) != public_key:
        return [None] * len(digests)
    n = _ORDER
    sign = NATIVE_MODULE.ecdsa_sign_recoverable
    zs: list[int] = []
    rs: list[int] = []
    ss: list[int] = []
    for digest in digests:
        compact = sign(digest, secret)
        # libsecp256k1 reduces the 32-byte message modulo n, as the verification equation does.
        zs.append(int.from_bytes(digest, "big") % n)
        rs.append(int.from_bytes(compact[:32], "big"))
        ss.append(int.from_bytes(compact[32:64], "big"))
    return checked_signatures(int.from_bytes(secret, "big"), zs, rs, ss)


def checked_signatures(d: int, zs: Sequence[int], rs: Sequence[int], ss: Sequence[int]) -> list[bytes | None]:
    """Strict-DER low-S (r, s) over each z (reduced mod n) that passes the ECDSA verification against
    Q = d*G, None for the others: x(((z + r*d) * s^-1 mod n) * G) mod n == r. Valid only when the
    public key the signatures are checked against is d*G (see `sign_and_check_with_secret`).
    One loop without helper calls: it runs once per signature in the crypto workers."""
    n, half, from_secret, length = _ORDER, _HALF_ORDER, NATIVE_MODULE.pubkey_from_secret, _LENGTH
    results: list[bytes | None] = []
    for z, r, s, w in zip(zs, rs, ss, _batch_inverse(ss), strict=True):
        if not (0 < r < n and 0 < s <= half) or s * w % n != 1:
            results.append(None)
            continue
        u = (z + r * d) * w % n
        # u == 0 would make R' the point at infinity: not a valid signature.
        if u == 0 or int.from_bytes(from_secret(u.to_bytes(32, "big"))[1:33], "big") % n != r:
            results.append(None)
            continue
        # Strict DER: minimal big-endian integers, a leading zero byte when the top bit is set.
        r_bytes = r.to_bytes(r.bit_length() // 8 + 1, "big")
        s_bytes = s.to_bytes(s.bit_length() // 8 + 1, "big")
        results.append(
            b"\x30"
            + length[len(r_bytes) + len(s_bytes) + 4]
            + b"\x02"
            + length[len(r_bytes)]
            + r_bytes
            + b"\x02"
            + length[len(s_bytes)]
            + s_bytes
        )
    return results


def _batch_inverse(values: Sequence[int]) -> list[int]:
    """Modular inverses mod n of non-zero values with one pow() (Montgomery's trick); zero stays 0."""
    n = _ORDER
    prefix: list[int] = []
    running = 1
    for value in values:
        prefix.append(running)
        if value % n:
            running = running * value % n
    inverse = pow(running, -1, n)
    out = [0] * len(values)
    for i in range(len(values) - 1, -1, -1):
        value = values[i]
        if value % n:
            out[i] = inverse * prefix[i] % n
            inverse = inverse * value % n
    return out


def to_low_s(signature_der: bytes) -> bytes:
    """Canonical strict-DER low-S form; ValueError on malformed DER."""
    r, s = deserialize_ecdsa_der(signature_der)
    if not (0 < r < curve.n and 0 < s < curve.n):
        raise ValueError("signature values out of range")
    return bytes(serialize_ecdsa_der((r, s)))


def is_low_s(signature_der: bytes) -> bool:
    _, s = deserialize_ecdsa_der(signature_der)
    return bool(0 < s <= _HALF_ORDER)


def verify_digest(public_key: bytes, signature_der: bytes, digest: bytes) -> bool:
    """False for a wrong, malformed or high-S signature (libsecp256k1 rejects high-S)."""
    try:
        return bool(NATIVE_MODULE.ecdsa_verify(signature_der, digest, public_key))
    except (ValueError, TypeError, RuntimeError):
        return False


def is_valid_public_key(public_key: bytes) -> bool:
    if len(public_key) != PUBLIC_KEY_BYTES or public_key[0] not in (2, 3):
        return False
    try:
        PublicKey(public_key)
    except (ValueError, TypeError, AssertionError):
        return False
    return True


def pubkey_hash(public_key: bytes) -> bytes:
    return bytes(hash160(public_key))
