"""secp256k1 public keys and ECDSA signatures of intents: strict DER, low-S, SHA-256 digests.

Verification runs on bsv-sdk's native libsecp256k1.
"""

from __future__ import annotations

from bsv.native import NATIVE_AVAILABLE, NATIVE_MODULE, native_status

PUBKEY_BYTES = 33
# secp256k1 group order.
CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
HALF_ORDER = CURVE_ORDER // 2


class MalformedSignature(ValueError):
    """Not a strict DER encoding of two integers in [1, n-1]."""


def require_native() -> None:
    if not NATIVE_AVAILABLE:
        raise RuntimeError(f"bsv-sdk's native libsecp256k1 is not available: {native_status()}")


def is_compressed_pubkey(pubkey: bytes) -> bool:
    """33 bytes, 02/03 prefix, and a point on the curve."""
    if len(pubkey) != PUBKEY_BYTES or pubkey[0] not in (2, 3):
        return False
    try:
        NATIVE_MODULE.pubkey_parse(pubkey)
    except (ValueError, TypeError):
        return False
    return True


def _der_integer(data: bytes, offset: int) -> tuple[int, int]:
    if offset + 2 > len(data) or data[offset] != 0x02:
        raise MalformedSignature("expected an INTEGER")
    length = data[offset + 1]
    start = offset + 2
    end = start + length
    if length == 0 or end > len(data):
        raise MalformedSignature("bad INTEGER length")
    body = data[start:end]
    if body[0] & 0x80:
        raise MalformedSignature("negative INTEGER")
    if length > 1 and body[0] == 0 and not body[1] & 0x80:
        raise MalformedSignature("INTEGER with a superfluous leading zero")
    value = int.from_bytes(body, "big")
    if not 0 < value < CURVE_ORDER:
        raise MalformedSignature("INTEGER out of range")
    return value, end


def parse_der(signature: bytes) -> tuple[int, int]:
    """(r, s) of a strict DER signature (BIP 66 rules, no sighash byte)."""
    if not 8 <= len(signature) <= 72:
        raise MalformedSignature("DER signatures are 8 to 72 bytes")
    if signature[0] != 0x30 or signature[1] != len(signature) - 2:
        raise MalformedSignature("expected one SEQUENCE spanning the whole signature")
    r, offset = _der_integer(signature, 2)
    s, offset = _der_integer(signature, offset)
    if offset != len(signature):
        raise MalformedSignature("trailing bytes after the SEQUENCE")
    return r, s


def is_low_s(s: int) -> bool:
    return s <= HALF_ORDER


def verify(pubkey: bytes, signature: bytes, digest: bytes) -> bool:
    """libsecp256k1 verification of a (strict DER, low-S) signature over a 32-byte digest."""
    try:
        return bool(NATIVE_MODULE.ecdsa_verify(signature, digest, pubkey))
    except (ValueError, TypeError):
        return False
