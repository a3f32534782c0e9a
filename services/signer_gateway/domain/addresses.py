"""P2PKH addresses of public keys per network."""

from __future__ import annotations

from enum import Enum

from bsv import Network as BsvNetwork
from bsv import PublicKey

from services.signer_gateway.domain.ecdsa import pubkey_hash
from services.signer_gateway.domain.transactions import p2pkh_locking_script


class Network(Enum):
    MAINNET = "mainnet"
    TESTNET = "testnet"
    # chainsim; addresses use the testnet prefix.
    REGTEST = "regtest"


def p2pkh_address(public_key: bytes, network: Network) -> str:
    bsv_network = BsvNetwork.MAINNET if network is Network.MAINNET else BsvNetwork.TESTNET
    return str(PublicKey(public_key).address(network=bsv_network))


def p2pkh_script_of(public_key: bytes) -> bytes:
    return p2pkh_locking_script(pubkey_hash(public_key))
