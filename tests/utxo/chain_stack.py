"""The utxo service wired to a real chainsim and a real signer_gateway, all in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from proofline.common.v1 import common_pb2
from proofline.signer.v1 import signer_pb2
from proofline.utxo.v1 import utxo_pb2, utxo_pb2_grpc

from proofline_kit import wire
from proofline_kit.wire import Outpoint
from services.chainsim import ChainSim, ChainsimSettings
from tests.signer_gateway.conftest import SignerUnderTest, signer_env, start_signer_under_test, stop_signer_under_test
from tests.utxo.conftest import ADMIN, UtxoUnderTest, start_utxo_under_test, stop_utxo_under_test, utxo_env

SIGNER_ADMIN = (("authorization", "Bearer admin-token-0001"),)
SIGNER_TOKENS = "admin:admin:admin-token-0001,utxo:pool:utxo-signer-token-1"
SIGNER_ACL = "utxo=funding-*|change-*|publish-*"
FUNDING = "funding-key"
CHANGE = "change-key"


@dataclass
class Stack:
    utxo: UtxoUnderTest
    admin: utxo_pb2_grpc.UtxoAdminServiceAsyncStub
    signer: SignerUnderTest
    sim: ChainSim
    http: httpx.AsyncClient
    addresses: dict[str, str]
    scripts: dict[str, bytes]

    async def fund(self, key_id: str, satoshis: int, count: int = 1, confirm: bool = True) -> dict[str, Any]:
        response = await self.http.post(
            "/_sim/fund",
            json={"address": self.addresses[key_id], "satoshis": satoshis, "count": count, "confirm": confirm},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def mine(self, blocks: int = 1) -> None:
        response = await self.http.post("/_sim/mine", json={"blocks": blocks})
        assert response.status_code == 200, response.text

    async def faults(self, config: dict[str, Any]) -> None:
        response = await self.http.post("/_sim/faults", json=config)
        assert response.status_code == 200, response.text

    async def spend_elsewhere(self, key_id: str, coins: Sequence[tuple[Outpoint, int]], to: bytes) -> str:
        """Spend pool coins behind the pool's back (signed by the signer as admin, sent to ARC)."""
        total = sum(s for _, s in coins)
        unsigned = wire.serialize(
            wire.Tx(
                tuple(wire.TxInput(o) for o, _ in coins),
                (wire.TxOutput(total - 1, to),),
            )
        )
        script = self.scripts[key_id]
        signed = await self.signer.stub.SignTransaction(
            signer_pb2.SignTransactionRequest(
                request_id=f"elsewhere-{coins[0][0].txid[:16]}",
                unsigned_tx=unsigned,
                spent_outputs=[common_pb2.SpentOutput(satoshis=s, locking_script=script) for _, s in coins],
                input_keys=[signer_pb2.InputKey(input_index=i, key_id=key_id) for i in range(len(coins))],
            ),
            metadata=SIGNER_ADMIN,
        )
        extended = wire.extended_format(signed.signed_tx, [wire.TxOutput(s, script) for _, s in coins])
        response = await self.http.post("/v1/tx", json={"rawTx": extended.hex()})
        assert response.status_code == 200, response.text
        return signed.txid


@asynccontextmanager
async def chain_stack(database_url: str, redis_url: str, **overrides: str) -> AsyncIterator[Stack]:
    sim = ChainSim(ChainsimSettings(port=0))
    await sim.start()
    signer = await start_signer_under_test(signer_env(database_url, AUTH_TOKENS=SIGNER_TOKENS, SIGNER_ACL=SIGNER_ACL))
    addresses: dict[str, str] = {}
    scripts: dict[str, bytes] = {}
    try:
        for key_id in (FUNDING, CHANGE, "publish-key"):
            await signer.stub.CreateKey(
                signer_pb2.CreateKeyRequest(request_id=f"create-{key_id}", key_id=key_id), metadata=SIGNER_ADMIN
            )
            info = await signer.stub.GetPublicKey(
                signer_pb2.GetPublicKeyRequest(key_id=key_id, network=common_pb2.NETWORK_TESTNET),
                metadata=SIGNER_ADMIN,
            )
            addresses[key_id], scripts[key_id] = info.address, bytes(info.locking_script)
        settings = {
            "WOC_URL": sim.base_url,
            "ARC_URL": sim.base_url,
            "WOC_NETWORK": "test",
            "UTXO_SIGNER_ADDR": f"127.0.0.1:{signer.running.port}",
            "UTXO_SIGNER_TOKEN": "utxo-signer-token-1",
            "UTXO_FUNDING_KEY_ID": FUNDING,
            "UTXO_CHANGE_KEY_ID": CHANGE,
            "UTXO_CHANGE_ADDRESS": addresses[CHANGE],
            "MIN_UTXO_COUNT": "5",
            "UTXO_SPLIT_TARGET": "10",
            "UTXO_SPLIT_SIZE_SATS": "1000",
            "UTXO_BROADCAST_ATTEMPTS": "2",
            "UTXO_BROADCAST_RETRY_PAUSE_MS": "50",
            "UTXO_CHAIN_TIMEOUT_MS": "3000",
        }
        settings.update(overrides)
        utxo = await start_utxo_under_test(utxo_env(database_url, redis_url, **settings))
    except BaseException:
        await stop_signer_under_test(signer)
        await sim.stop()
        raise
    http = httpx.AsyncClient(base_url=sim.base_url, timeout=10.0, trust_env=False)
    admin: utxo_pb2_grpc.UtxoAdminServiceAsyncStub = utxo_pb2_grpc.UtxoAdminServiceStub(utxo.channel)  # type: ignore[assignment]
    try:
        yield Stack(utxo, admin, signer, sim, http, addresses, scripts)
    finally:
        await http.aclose()
        await stop_utxo_under_test(utxo)
        await stop_signer_under_test(signer)
        await sim.stop()


def outpoint(value: common_pb2.Outpoint) -> Outpoint:
    return Outpoint(value.txid, value.vout)


async def list_of(
    stack: Stack, *statuses: utxo_pb2.UtxoStatus.ValueType, owner: str = "", purpose: int = 0
) -> list[utxo_pb2.Utxo]:
    response = await stack.utxo.stub.ListUtxos(
        utxo_pb2.ListUtxosRequest(statuses=list(statuses), owner_key_id=owner, purpose=purpose),  # type: ignore[arg-type]
        metadata=ADMIN,
    )
    return list(response.utxos)
