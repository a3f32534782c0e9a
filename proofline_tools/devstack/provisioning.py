"""Dev-only set-up between services: the signer keys the UTXO pool spends from.

Runs once the signer is SERVING and before the utxo service starts. CreateKey is idempotent on
its request_id, so a restarted stack finds the same keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from proofline.signer.v1 import signer_pb2, signer_pb2_grpc

FUNDING_KEY_ID = "pool-funding"
CHANGE_KEY_ID = "pool-change"


@dataclass(frozen=True, slots=True)
class PoolKeys:
    funding_key_id: str
    funding_address: str
    change_key_id: str


def pool_key_defaults(env: dict[str, str], admin_token: str) -> tuple[str, str] | None:
    """Fill the service-to-service settings with dev values: the pool's keys, and the admin token for
    the calls utxo, the publisher and the wallet make to other services. None when the operator set the keys."""
    if not env.get("AUTH_TOKENS", "").endswith(admin_token):
        return None
    for name in (
        "PUBLISHER_UTXO_TOKEN",
        "PUBLISHER_SIGNER_TOKEN",
        "UTXO_SIGNER_TOKEN",
        # The wallet creates keys and syncs its coins: admin calls on its (in dev: the shared) services.
        "WALLET_UTXO_TOKEN",
        "WALLET_SIGNER_TOKEN",
        # The wallet's identity side forwards to the publisher (roles registrar and publish).
        "WALLET_PUBLISHER_TOKEN",
    ):
        env[name] = env.get(name) or admin_token
    if env.get("UTXO_FUNDING_KEY_ID"):
        return None
    env["UTXO_FUNDING_KEY_ID"] = FUNDING_KEY_ID
    env["UTXO_CHANGE_KEY_ID"] = env.get("UTXO_CHANGE_KEY_ID") or CHANGE_KEY_ID
    return env["UTXO_FUNDING_KEY_ID"], env["UTXO_CHANGE_KEY_ID"]


async def ensure_pool_keys(signer_address: str, admin_token: str, funding: str, change: str) -> PoolKeys:
    metadata = (("authorization", f"Bearer {admin_token}"),)
    async with grpc.aio.insecure_channel(signer_address) as channel:
        stub = signer_pb2_grpc.SignerServiceStub(channel)
        for key_id in (funding, change):
            try:
                await stub.CreateKey(
                    signer_pb2.CreateKeyRequest(request_id=f"devstack-create-{key_id}", key_id=key_id),
                    metadata=metadata,
                    timeout=10,
                )
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.ALREADY_EXISTS:
                    raise
        key = await stub.GetPublicKey(signer_pb2.GetPublicKeyRequest(key_id=funding), metadata=metadata, timeout=10)
    return PoolKeys(funding, key.address, change)
