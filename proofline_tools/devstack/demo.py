"""Dev-only: a publish pool funded on chainsim and a registered identity, so that the stack's banner
can print a Publish call that works as it is.

Runs once the whole Container A side (signer, utxo, publisher) is SERVING, and only against the
stack's own chainsim. A restarted stack reuses the identity key file and funds the pool again only
when it has run low.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
from proofline.publisher.v1 import publisher_pb2, publisher_pb2_grpc
from proofline.utxo.v1 import utxo_pb2, utxo_pb2_grpc

from proofline_tools.devstack.provisioning import PoolKeys
from proofline_tools.signed_intents import IdentityKey, intent_body, publish_request_json

IDENTITY_FILE = "demo-identity.key"
FUNDING_SATOSHIS = 1_000_000
# Fund again only below this many AVAILABLE publish UTXOs.
LOW_WATER = 20
_CALL_TIMEOUT_S = 30.0
Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class DemoPublish:
    identity_key_file: Path
    identity_pubkey: str
    available_utxos: int
    publish_request_json: str  # a PublishRequest signed by the demo identity, valid for `ttl_s`
    ttl_s: int


async def prepare_demo(
    *,
    chain_url: str,
    utxo_address: str,
    publisher_address: str,
    pool: PoolKeys,
    admin_token: str,
    data_dir: Path,
    intent_ttl_s: int,
) -> DemoPublish:
    metadata = (("authorization", f"Bearer {admin_token}"),)
    async with grpc.aio.insecure_channel(utxo_address) as channel:
        admin = utxo_pb2_grpc.UtxoAdminServiceStub(channel)
        pool_stub = utxo_pb2_grpc.UtxoServiceStub(channel)
        available = await _available_publish(pool_stub, metadata)
        if available < LOW_WATER:
            async with httpx.AsyncClient(base_url=chain_url, timeout=_CALL_TIMEOUT_S, trust_env=False) as sim:
                await _post(sim, "/_sim/fund", {"address": pool.funding_address, "satoshis": FUNDING_SATOSHIS})
                await _maintenance_pass(admin, metadata)  # sync the funding in, split it
                await _post(sim, "/_sim/mine", {})
                await _maintenance_pass(admin, metadata)  # the split outputs are confirmed now
            available = await _available_publish(pool_stub, metadata)

    key = IdentityKey.load_or_create(data_dir / IDENTITY_FILE)
    async with grpc.aio.insecure_channel(publisher_address) as channel:
        publisher = publisher_pb2_grpc.PublisherServiceStub(channel)
        try:
            await publisher.RegisterIdentity(
                publisher_pb2.RegisterIdentityRequest(
                    request_id=f"devstack-identity-{key.pubkey.hex()[:40]}", pubkey=key.pubkey, label="make run demo"
                ),
                metadata=metadata,
                timeout=_CALL_TIMEOUT_S,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
    record = {"note": "hello from make run", "demo": uuid.uuid4().hex[:12]}
    request = publish_request_json(
        key.intent(intent_body(record, ttl_s=intent_ttl_s)), f"demo-{uuid.uuid4().hex}", publisher_pb2.JOB_STATUS_SENT
    )
    return DemoPublish(data_dir / IDENTITY_FILE, key.pubkey.hex(), available, request, intent_ttl_s)


async def _available_publish(stub: utxo_pb2_grpc.UtxoServiceAsyncStub, metadata: Metadata) -> int:
    health = await stub.GetPoolHealth(utxo_pb2.GetPoolHealthRequest(), metadata=metadata, timeout=_CALL_TIMEOUT_S)
    return sum(
        int(b.count)
        for b in health.buckets
        if b.purpose == utxo_pb2.UTXO_PURPOSE_PUBLISH and b.status == utxo_pb2.UTXO_STATUS_AVAILABLE
    )


async def _maintenance_pass(stub: utxo_pb2_grpc.UtxoAdminServiceAsyncStub, metadata: Metadata) -> None:
    await stub.RunMaintenance(
        utxo_pb2.RunMaintenanceRequest(
            request_id=f"devstack-pass-{uuid.uuid4().hex}", action=utxo_pb2.MAINTENANCE_ACTION_PASS
        ),
        metadata=metadata,
        timeout=_CALL_TIMEOUT_S,
    )


async def _post(client: httpx.AsyncClient, path: str, body: dict[str, object]) -> None:
    response = await client.post(path, json=body)
    response.raise_for_status()
