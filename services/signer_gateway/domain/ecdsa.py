"""secp256k1 ECDSA over 32-byte digests (bsv-sdk's libsecp256k1), strict DER, low-S.

The gateway refuses to run on bsv-sdk's pure-Python fallback (hundreds of times slower); the
native module is called directly on the hot path to skip per-call key object construction.
"""

from __future__ import annotations

from bsv import PrivateKey, PublicKey
from bsv.curve import curve
from bsv.hash import hash160
from bsv.native import NATIVE_AVAILABLE, NATIVE_MODULE, native_status
from bsv.utils import deserialize_ecdsa_der, serialize_ecdsa_der

DIGEST_BYTES = 32
PUBLIC_KEY_BYTES = 33
_HALF_ORDER = curve.n // 2


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
