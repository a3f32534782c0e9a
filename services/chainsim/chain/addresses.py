"""Base58Check P2PKH addresses for mainnet (0x00) and testnet (0x6f)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from types import MappingProxyType

_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX: Mapping[str, int] = MappingProxyType({c: i for i, c in enumerate(_ALPHABET)})
PREFIX: Mapping[str, int] = MappingProxyType({"main": 0x00, "test": 0x6F})


class AddressError(ValueError):
    """Not a P2PKH address chainsim understands."""


def _checksum(payload: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]


def encode(pkh: bytes, network: str) -> str:
    payload = bytes((PREFIX[network],)) + pkh
    data = payload + _checksum(payload)
    num = int.from_bytes(data, "big")
    chars: list[str] = []
    while num:
        num, rem = divmod(num, 58)
        chars.append(_ALPHABET[rem])
    pad = len(data) - len(data.lstrip(b"\x00"))
    return "1" * pad + "".join(reversed(chars))


def decode(address: str) -> tuple[bytes, str]:
    """(hash160, network) of a P2PKH address of either network."""
    if not 25 <= len(address) <= 36:
        raise AddressError("bad address length")
    num = 0
    for c in address:
        if c not in _INDEX:
            raise AddressError("bad base58 character")
        num = num * 58 + _INDEX[c]
    pad = len(address) - len(address.lstrip("1"))
    body = num.to_bytes((num.bit_length() + 7) // 8, "big") if num else b""
    data = b"\x00" * pad + body
    if len(data) != 25 or _checksum(data[:21]) != data[21:]:
        raise AddressError("bad address checksum")
    for network, prefix in PREFIX.items():
        if data[0] == prefix:
            return data[1:21], network
    raise AddressError("not a P2PKH address")
