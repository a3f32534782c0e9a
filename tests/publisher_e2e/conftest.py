"""The whole Container A side for end-to-end tests: signer_gateway, utxo and publisher in process on
127.0.0.1:0 (real gRPC between them), chainsim as a subprocess, a fresh PostgreSQL database and real
Redis per test. Nothing is mocked."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import grpc
import httpx
import pytest
from proofline.common.v1 import common_pb2
from proofline.publisher.v1 import publisher_pb2, publisher_pb2_grpc
from proofline.signer.v1 import signer_pb2
from proofline.utxo.v1 import utxo_pb2, utxo_pb2_grpc

from proofline_kit.settings import EnvReader
from proofline_kit.wire import Outpoint, TxOutput, parse
from services.publisher.app import RunningPublisher, start_publisher
from services.publisher.domain.txbuild import (
    read_data_script,
    serialize,
)
from services.publisher.settings import read_publisher_settings
from tests.chain_clients.sim import SimControl, chainsim_process
from tests.harness.service_process import ServiceProcess, service_process
from tests.publisher.conftest import IdentityKey, canonical
from tests.signer_gateway.conftest import SignerUnderTest, signer_env, start_signer_under_test, stop_signer_under_test
from tests.utxo.conftest import UtxoUnderTest, start_utxo_under_test, stop_utxo_under_test, utxo_env

ADMIN = (("authorization", "Bearer admin-token-0001"),)
WALLET = (("authorization", "Bearer wallet-token-0001"),)
CLIENT = (("authorization", "Bearer client-token-0001"),)
PUBLISHER_TOKEN = "publisher-token-01"
UTXO_TOKEN = "utxo-token-000001"
AUTH_TOKENS = (
    f"admin:admin:admin-token-0001,publisher:pool:{PUBLISHER_TOKEN},utxo:service:{UTXO_TOKEN},"
    "client:publish:client-token-0001,wallet:registrar:wallet-token-0001"
)
POOL_KEY = "publish-pool"
AUDIENCE = "proofline-test"
SIM_SETTINGS = {"callback_retry_pause_ms": "50", "callback_batch_interval_ms": "100"}


@pytest.fixture(scope="session")
def chainsim_url() -> Iterator[str]:
    with chainsim_process(profile="arc_faithful", **SIM_SETTINGS) as url:
        yield url


@pytest.fixture
async def sim(chainsim_url: str) -> AsyncIterator[SimControl]:
    async with httpx.AsyncClient(trust_env=False, timeout=15.0) as http:
        control = SimControl(http, chainsim_url)
        await control.reset()
        try:
            yield control
        finally:
            await control.clear_faults()


def publisher_env(
    database_url: str, redis_url: str, chainsim: str, signer_port: int, utxo_port: int, **overrides: str
) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": f"e2e-{uuid.uuid4().hex[:12]}",
        "PROOFLINE_ENV": "test",
        "PUBLISHER_GRPC_PORT": "0",
        "PUBLISHER_METRICS_PORT": "0",
        "AUTH_TOKENS": AUTH_TOKENS,
        "PUBLISHER_AUDIENCE": AUDIENCE,
        "PUBLISHER_WATCH_POLL_MS": "500",
        "LOG_LEVEL": "warning",
        "SHUTDOWN_GRACE_MS": "2000",
        "PUBLISHER_WORKERS": "2",
        "PUBLISHER_UTXO_ADDR": f"127.0.0.1:{utxo_port}",
        "PUBLISHER_UTXO_TOKEN": PUBLISHER_TOKEN,
        "PUBLISHER_SIGNER_ADDR": f"127.0.0.1:{signer_port}",
        "PUBLISHER_SIGNER_TOKEN": PUBLISHER_TOKEN,
        "ARC_URL": chainsim,
        "WOC_URL": chainsim,
        "WOC_NETWORK": "test",
        "PUBLISHER_CHAIN_TIMEOUT_MS": "3000",
        "PUBLISHER_CALLBACK_HOST": "127.0.0.1",
        "PUBLISHER_CALLBACK_PORT": "0",
        "PUBLISHER_BATCH_WINDOW_MS": "50",
        "PUBLISHER_IDLE_POLL_MS": "50",
        "PUBLISHER_JOB_LEASE_MS": "3000",
        "PUBLISHER_STUCK_CHECK_MS": "300",
        "PUBLISHER_RETRY_BASE_MS": "200",
        "PUBLISHER_RETRY_MAX_MS": "1000",
        "PUBLISHER_REQUEUE_DELAY_MS": "200",
        "PUBLISHER_CONFIRM_POLL_MS": "1000",
        "PUBLISHER_REORG_CHECK_MS": "500",
    }
    env.update(overrides)
    return env


@dataclass
class Suite:
    """Every service of the Container A side, wired together, and what a test needs to drive it."""

    sim: SimControl
    signer: SignerUnderTest
    utxo: UtxoUnderTest
    database_url: str
    redis_url: str
    publisher: RunningPublisher | None = None
    channel: grpc.aio.Channel | None = None
    env: dict[str, str] = field(default_factory=dict)
    pool_script: bytes = b""

    @property
    def stub(self) -> publisher_pb2_grpc.PublisherServiceAsyncStub:
        assert self.channel is not None, "no publisher running"
        return publisher_pb2_grpc.PublisherServiceStub(self.channel)  # type: ignore[return-value]

    @property
    def utxo_admin(self) -> utxo_pb2_grpc.UtxoAdminServiceAsyncStub:
        return utxo_pb2_grpc.UtxoAdminServiceStub(self.utxo.channel)  # type: ignore[return-value]

    @property
    def http(self) -> httpx.AsyncClient:
        return self.sim.http

    def env_for_publisher(self, **overrides: str) -> dict[str, str]:
        return publisher_env(
            self.database_url,
            self.redis_url,
            self.sim.base_url,
            self.signer.running.port,
            self.utxo.running.port,
            **overrides,
        )

    async def start_publisher(self, **overrides: str) -> None:
        self.env = self.env_for_publisher(**overrides)
        self.publisher = await start_publisher(read_publisher_settings(EnvReader(self.env)), configure_logs=False)
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.publisher.port}")

    async def attach_publisher(self, port: int) -> None:
        """Talk to a publisher running elsewhere (a subprocess)."""
        if self.channel is not None:
            await self.channel.close()
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")

    async def stop_publisher(self) -> None:
        if self.channel is not None:
            await self.channel.close()
            self.channel = None
        if self.publisher is not None:
            await self.publisher.stop()
            self.publisher = None

    # --- the pool ------------------------------------------------------------------------------------

    async def create_pool_key(self) -> None:
        await self.signer.stub.CreateKey(
            signer_pb2.CreateKeyRequest(request_id=f"create-{POOL_KEY}", key_id=POOL_KEY), metadata=ADMIN, timeout=10
        )
        key = await self.signer.stub.GetPublicKey(signer_pb2.GetPublicKeyRequest(key_id=POOL_KEY), metadata=ADMIN)
        self.pool_script = bytes(key.locking_script)

    async def fund_pool(self, *values: int) -> list[common_pb2.Outpoint]:
        """One mined output per value paying the pool key, tracked by the pool and synced to
        AVAILABLE (as an operator's funding would be)."""
        if not self.pool_script:
            await self.create_pool_key()
        outpoints: list[common_pb2.Outpoint] = []
        outputs: list[utxo_pb2.NewOutput] = []
        # One funding transaction per distinct value, with one output per occurrence.
        for value in dict.fromkeys(values):
            count = values.count(value)
            funded = await self.sim._post(
                "fund", {"script_hex": self.pool_script.hex(), "satoshis": value, "count": count}
            )
            for vout in range(count):
                outpoint = common_pb2.Outpoint(txid=funded["txid"], vout=vout)
                outpoints.append(outpoint)
                outputs.append(
                    utxo_pb2.NewOutput(
                        outpoint=outpoint,
                        satoshis=value,
                        locking_script=self.pool_script,
                        owner_key_id=POOL_KEY,
                        purpose=utxo_pb2.UTXO_PURPOSE_PUBLISH,
                    )
                )
        await self.utxo.stub.AddOutputs(
            utxo_pb2.AddOutputsRequest(request_id=f"add-{uuid.uuid4().hex}", outputs=outputs), metadata=ADMIN
        )
        await self.sync_pool()
        return outpoints

    async def sync_pool(self) -> None:
        await self.utxo_admin.SyncFromChain(
            utxo_pb2.SyncFromChainRequest(request_id=f"sync-{uuid.uuid4().hex}", owner_key_ids=[POOL_KEY]),
            metadata=ADMIN,
            timeout=30,
        )

    async def pool_utxo(self, outpoint: common_pb2.Outpoint) -> utxo_pb2.Utxo:
        listed = await self.utxo.stub.ListUtxos(
            utxo_pb2.ListUtxosRequest(txid=outpoint.txid, page_size=1000), metadata=ADMIN
        )
        found = [u for u in listed.utxos if u.outpoint.vout == outpoint.vout]
        assert found, f"{outpoint.txid}:{outpoint.vout} is not in the pool"
        return found[0]

    async def outputs_of(self, txid: str) -> list[utxo_pb2.Utxo]:
        listed = await self.utxo.stub.ListUtxos(utxo_pb2.ListUtxosRequest(txid=txid, page_size=1000), metadata=ADMIN)
        return list(listed.utxos)

    async def spend_elsewhere(self, outpoint: common_pb2.Outpoint, value: int) -> str:
        """A transaction outside the publisher spending a pool UTXO (signed by the pool key through
        the signer, as a careless operator tool would), broadcast to the chain. Returns its txid."""
        unsigned = _one_input_tx(outpoint, [(value - 200, self.pool_script)])
        signed = await self.signer.stub.SignTransaction(
            signer_pb2.SignTransactionRequest(
                request_id=f"elsewhere-{uuid.uuid4().hex}",
                unsigned_tx=unsigned,
                spent_outputs=[common_pb2.SpentOutput(satoshis=value, locking_script=self.pool_script)],
                input_keys=[signer_pb2.InputKey(input_index=0, key_id=POOL_KEY)],
            ),
            metadata=ADMIN,
            timeout=10,
        )
        response = await self.http.post(f"{self.sim.base_url}/v1/tx", json={"rawTx": bytes(signed.signed_tx).hex()})
        assert response.status_code == 200, response.text
        assert response.json()["txStatus"] == "SEEN_ON_NETWORK", response.text
        return str(signed.txid)

    # --- publishing ----------------------------------------------------------------------------------

    async def register(self) -> IdentityKey:
        key = IdentityKey.generate()
        await self.stub.RegisterIdentity(
            publisher_pb2.RegisterIdentityRequest(
                request_id=f"reg-{key.pubkey.hex()[:40]}", pubkey=key.pubkey, label="e2e key"
            ),
            metadata=WALLET,
            timeout=10,
        )
        return key

    async def publish(self, intent: publisher_pb2.SignedIntent, **fields: Any) -> publisher_pb2.Job:
        response = await self.stub.Publish(
            publisher_pb2.PublishRequest(request_id=f"pub-{uuid.uuid4().hex}", intent=intent, **fields),
            metadata=CLIENT,
            timeout=60,
        )
        return response.job

    async def job(self, job_id: str) -> publisher_pb2.Job:
        response = await self.stub.GetJob(
            publisher_pb2.GetJobRequest(job_id=job_id, view=publisher_pb2.JOB_VIEW_FULL), metadata=CLIENT, timeout=10
        )
        return response.job

    async def wait_status(
        self, job_id: str, status: publisher_pb2.JobStatus.ValueType, timeout_s: float = 30.0
    ) -> publisher_pb2.Job:
        """Polls GetJob until the job is in `status` (fails on FAILED or after the timeout)."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = await self.job(job_id)
            if job.status == status:
                return job
            assert job.status != publisher_pb2.JOB_STATUS_FAILED, f"job failed: {job.error_reason} {job.error_detail}"
            assert time.monotonic() < deadline, f"job still {publisher_pb2.JobStatus.Name(job.status)}: {job}"
            await asyncio.sleep(0.1)

    async def stored_job(self, job_id: str) -> asyncpg.Record:
        """The job row as PostgreSQL has it (no publisher needed)."""
        conn = await asyncpg.connect(self.database_url, server_settings={"search_path": "publisher"})
        try:
            row = await conn.fetchrow("SELECT * FROM jobs WHERE job_id = $1", job_id)
        finally:
            await conn.close()
        assert row is not None
        return row

    async def events(self, job_id: str) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.database_url, server_settings={"search_path": "publisher"})
        try:
            return list(
                await conn.fetch(
                    """SELECT e.from_status, e.to_status, e.txid, e.reason, e.detail, e.actor
                       FROM job_events e JOIN jobs j ON j.id = e.job_id WHERE j.job_id = $1 ORDER BY e.id""",
                    job_id,
                )
            )
        finally:
            await conn.close()

    # --- the chain -----------------------------------------------------------------------------------

    async def tx_raw(self, txid: str) -> bytes:
        response = await self.http.get(f"{self.sim.base_url}/v1/bsv/test/tx/{txid}/hex")
        assert response.status_code == 200, f"{txid}: {response.status_code} {response.text}"
        return bytes.fromhex(response.text.strip().strip('"'))

    async def data_of(self, txid: str) -> list[bytes]:
        """The pushes of the transaction's OP_FALSE OP_RETURN output, read back from the chain."""
        tx = parse(await self.tx_raw(txid))
        for output in tx.outputs:
            pushes = read_data_script(output.locking_script)
            if pushes is not None:
                assert output.satoshis == 0
                return pushes
        raise AssertionError(f"{txid} has no data output")

    async def data_of_or_none(self, txid: str) -> list[bytes] | None:
        tx = parse(await self.tx_raw(txid))
        for output in tx.outputs:
            pushes = read_data_script(output.locking_script)
            if pushes is not None:
                return pushes
        return None

    async def mine(self, blocks: int = 1) -> list[dict[str, Any]]:
        return await self.sim.mine(blocks)

    async def arc_status(self, txid: str) -> dict[str, Any]:
        response = await self.http.get(f"{self.sim.base_url}/v1/tx/{txid}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def state(self) -> dict[str, Any]:
        response = await self.http.get(f"{self.sim.base_url}/_sim/state")
        body: dict[str, Any] = response.json()
        return body


def _one_input_tx(outpoint: common_pb2.Outpoint, outputs: list[tuple[int, bytes]]) -> bytes:
    return serialize(Outpoint(outpoint.txid, outpoint.vout), b"", [TxOutput(v, s) for v, s in outputs])


def record_pushes(record: dict[str, Any]) -> list[bytes]:
    """What a RECORD-mode publish puts on chain for `record`."""
    return [b"proofline", canonical(record)]


@pytest.fixture
async def suite(database_url: str, redis_url: str, sim: SimControl) -> AsyncIterator[Suite]:
    signer = await start_signer_under_test(
        signer_env(
            database_url,
            AUTH_TOKENS=AUTH_TOKENS,
            SIGNER_ACL="publisher=publish-*;utxo=publish-*",
            SIGNER_CRYPTO_WORKERS="0",
        )
    )
    utxo = await start_utxo_under_test(
        utxo_env(
            database_url,
            redis_url,
            AUTH_TOKENS=AUTH_TOKENS,
            UTXO_SIGNER_ADDR=f"127.0.0.1:{signer.running.port}",
            UTXO_SIGNER_TOKEN=UTXO_TOKEN,
            WOC_URL=sim.base_url,
            ARC_URL=sim.base_url,
            WOC_NETWORK="test",
            UTXO_MIN_CONFIRMATIONS="1",
        )
    )
    under_test = Suite(sim, signer, utxo, database_url, redis_url)
    try:
        yield under_test
    finally:
        await under_test.stop_publisher()
        await stop_utxo_under_test(utxo)
        await stop_signer_under_test(signer)


def publisher_process(env: dict[str, str]) -> contextlib.AbstractAsyncContextManager[ServiceProcess]:
    """`python -m services.publisher` with `env`, serving; terminated on the way out (if still alive)."""
    return service_process("publisher", "PUBLISHER_GRPC_PORT", env)
