"""The whole Container B money side for end-to-end tests: signer_gateway, utxo and wallet in process on
127.0.0.1:0 (real gRPC between them), chainsim as a subprocess, a fresh PostgreSQL database and real
Redis per test. Nothing is mocked."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import grpc
import httpx
import pytest
from proofline.utxo.v1 import utxo_pb2, utxo_pb2_grpc
from proofline.wallet.v1 import wallet_pb2, wallet_pb2_grpc

from proofline_kit.settings import EnvReader
from services.wallet.app import RunningWallet, start_wallet
from services.wallet.domain.chains import BSV
from services.wallet.domain.models import Network
from services.wallet.settings import read_wallet_settings
from tests.chain_clients.sim import SimControl, chainsim_process
from tests.signer_gateway.conftest import SignerUnderTest, signer_env, start_signer_under_test, stop_signer_under_test
from tests.utxo.conftest import UtxoUnderTest, start_utxo_under_test, stop_utxo_under_test, utxo_env

ADMIN_TOKEN = "admin-token-0001"
ADMIN = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
FRONTEND = (("authorization", "Bearer frontend-token-0001"),)
STRANGER = (("authorization", "Bearer stranger-token-01"),)
AUTH_TOKENS = f"admin:admin:{ADMIN_TOKEN},frontend:wallet:frontend-token-0001,stranger:service:stranger-token-01"
# A testnet P2PKH address nobody in the suite holds (the recipient of test sends).
RECIPIENT = "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn"
T = TypeVar("T")


@pytest.fixture(scope="session")
def chainsim_url() -> Iterator[str]:
    with chainsim_process(profile="arc_faithful") as url:
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


def wallet_env(
    database_url: str, redis_url: str, chainsim: str, signer_port: int, utxo_port: int, **overrides: str
) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": f"w-{uuid.uuid4().hex[:12]}",
        "PROOFLINE_ENV": "test",
        "WALLET_GRPC_PORT": "0",
        "WALLET_METRICS_PORT": "0",
        "AUTH_TOKENS": AUTH_TOKENS,
        "LOG_LEVEL": "warning",
        "SHUTDOWN_GRACE_MS": "2000",
        "ARC_URL": chainsim,
        "WOC_URL": chainsim,
        "WOC_NETWORK": "test",
        "WALLET_NETWORK": "testnet",
        "WALLET_UTXO_ADDR": f"127.0.0.1:{utxo_port}",
        "WALLET_UTXO_TOKEN": ADMIN_TOKEN,
        "WALLET_SIGNER_ADDR": f"127.0.0.1:{signer_port}",
        "WALLET_SIGNER_TOKEN": ADMIN_TOKEN,
        "WALLET_MIN_CONFIRMATIONS": "1",
        "WALLET_POLL_MS": "50",
        "WALLET_FOLLOW_POLL_MS": "100",
        "WALLET_WATCH_POLL_MS": "200",
        "WALLET_RETRY_BASE_MS": "100",
        "WALLET_RETRY_MAX_MS": "500",
        "WALLET_WORK_LEASE_MS": "3000",
        "WALLET_CHAIN_TIMEOUT_MS": "3000",
        # Any free port: tests run two replicas at once, and other suites may hold 8754.
        "WALLET_CALLBACK_PORT": "0",
    }
    env.update(overrides)
    return env


@dataclass
class WalletSuite:
    """signer_gateway, utxo and the wallet wired together, and what a test needs to drive them."""

    sim: SimControl
    signer: SignerUnderTest
    utxo: UtxoUnderTest
    database_url: str
    redis_url: str
    wallet: RunningWallet | None = None
    channel: grpc.aio.Channel | None = None

    @property
    def stub(self) -> wallet_pb2_grpc.WalletServiceAsyncStub:
        assert self.channel is not None, "no wallet running"
        return wallet_pb2_grpc.WalletServiceStub(self.channel)  # type: ignore[return-value]

    @property
    def utxo_admin(self) -> utxo_pb2_grpc.UtxoAdminServiceAsyncStub:
        return utxo_pb2_grpc.UtxoAdminServiceStub(self.utxo.channel)  # type: ignore[return-value]

    @property
    def admin(self) -> wallet_pb2_grpc.WalletAdminServiceAsyncStub:
        assert self.channel is not None, "no wallet running"
        return wallet_pb2_grpc.WalletAdminServiceStub(self.channel)  # type: ignore[return-value]

    def env(self, **overrides: str) -> dict[str, str]:
        return wallet_env(
            self.database_url,
            self.redis_url,
            self.sim.base_url,
            self.signer.running.port,
            self.utxo.running.port,
            **overrides,
        )

    async def start_wallet(self, **overrides: str) -> None:
        self.wallet = await start_wallet(read_wallet_settings(EnvReader(self.env(**overrides))), configure_logs=False)
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.wallet.port}")

    async def stop_wallet(self) -> None:
        if self.channel is not None:
            await self.channel.close()
            self.channel = None
        if self.wallet is not None:
            await self.wallet.stop()
            self.wallet = None

    # --- driving it --------------------------------------------------------------------------------

    async def account(self, external_id: str | None = None) -> wallet_pb2.Account:
        external_id = external_id or f"user-{uuid.uuid4().hex[:10]}"
        response = await self.stub.CreateAccount(
            wallet_pb2.CreateAccountRequest(request_id=f"acct-{external_id}", external_id=external_id),
            metadata=FRONTEND,
        )
        return response.account

    async def deposit_address(self, account_id: str) -> wallet_pb2.DepositAddress:
        response = await self.stub.NewDepositAddress(
            wallet_pb2.NewDepositAddressRequest(request_id=f"addr-{uuid.uuid4().hex[:12]}", account_id=account_id),
            metadata=FRONTEND,
        )
        return response.deposit_address

    async def balance(self, account_id: str) -> wallet_pb2.Balance:
        response = await self.stub.GetBalance(wallet_pb2.GetBalanceRequest(account_id=account_id), metadata=FRONTEND)
        return response.balance

    async def fund(self, address: str, satoshis: int, count: int = 1, *, confirm: bool = False) -> dict[str, Any]:
        funded: dict[str, Any] = await self.sim._post(
            "fund", {"address": address, "satoshis": satoshis, "count": count, "confirm": confirm}
        )
        return funded

    async def funded_account(self, satoshis: int, count: int = 1) -> tuple[wallet_pb2.Account, str]:
        """An account with `count` deposits of `satoshis` credited (available)."""
        account = await self.account()
        address = await self.deposit_address(account.account_id)
        await self.fund(address.address, satoshis, count)
        await self.sim.mine(1)
        await eventually(lambda: self.balance(account.account_id), lambda b: b.available_satoshis == satoshis * count)
        await eventually(self.pool_available, lambda coins: len(coins) >= count)
        return account, address.address

    async def wallet_script(self, address: str) -> bytes:
        return BSV.locking_script_for(address, Network.TESTNET)

    async def pool_available(self) -> list[utxo_pb2.Utxo]:
        listed = await self.utxo.stub.ListUtxos(
            utxo_pb2.ListUtxosRequest(
                purpose=utxo_pb2.UTXO_PURPOSE_WALLET, statuses=[utxo_pb2.UTXO_STATUS_AVAILABLE], page_size=1000
            ),
            metadata=ADMIN,
        )
        return list(listed.utxos)

    async def reconciliation(self) -> wallet_pb2.GetReconciliationResponse:
        return await self.admin.GetReconciliation(wallet_pb2.GetReconciliationRequest(), metadata=ADMIN)

    async def assert_reconciled(self) -> None:
        report = await eventually(self.reconciliation, lambda r: r.balanced, timeout_s=10)
        assert report.difference_satoshis == 0


async def eventually(
    read: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout_s: float = 20.0, pause_s: float = 0.1
) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still not there after {timeout_s} s: {value}")
        await asyncio.sleep(pause_s)


async def start_signer_and_pool(
    sim: SimControl, database_url: str, redis_url: str, **utxo_overrides: str
) -> tuple[SignerUnderTest, UtxoUnderTest]:
    """signer_gateway, and a utxo service on chainsim that signs through it."""
    signer = await start_signer_under_test(signer_env(database_url, AUTH_TOKENS=AUTH_TOKENS, SIGNER_ACL=""))
    utxo = await start_utxo_under_test(
        utxo_env(
            database_url,
            redis_url,
            AUTH_TOKENS=AUTH_TOKENS,
            ARC_URL=sim.base_url,
            WOC_URL=sim.base_url,
            WOC_NETWORK="test",
            UTXO_SIGNER_ADDR=f"127.0.0.1:{signer.running.port}",
            UTXO_SIGNER_TOKEN=ADMIN_TOKEN,
            UTXO_INVALID_AFTER_MS="0",
            **utxo_overrides,
        )
    )
    return signer, utxo


def production_env(*, without: tuple[str, ...] = (), **overrides: str) -> dict[str, str]:
    """A wallet environment that production mode accepts, less `without`, plus `overrides`."""
    env = {
        "DATABASE_URL": "postgresql://x@127.0.0.1/x",
        "WOC_URL": "http://127.0.0.1:1",
        "PROOFLINE_ENV": "production",
        "AUTH_TOKENS": AUTH_TOKENS,
        "WALLET_UTXO_TOKEN": "utxo-token-0001",
        "WALLET_SIGNER_TOKEN": "signer-token-0001",
        "WALLET_CALLBACK_TOKEN": "c" * 32,
        "WALLET_PUBLISHER_TOKEN": "publisher-token-01",
        "WALLET_SMTP_HOST": "smtp.example",
        "WALLET_OTP_SECRET": "s" * 32,
        "WALLET_BACKUP_KEK": "ab" * 32,
        "WALLET_SESSION_SECRET": "k" * 32,
    }
    return {name: value for name, value in {**env, **overrides}.items() if name not in without}


@pytest.fixture
async def suite(sim: SimControl, database_url: str, redis_url: str) -> AsyncIterator[WalletSuite]:
    signer, utxo = await start_signer_and_pool(sim, database_url, redis_url)
    suite = WalletSuite(sim, signer, utxo, database_url, redis_url)
    await suite.start_wallet()
    try:
        yield suite
    finally:
        await suite.stop_wallet()
        await stop_utxo_under_test(utxo)
        await stop_signer_under_test(signer)


@pytest.fixture
async def wallet_db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "wallet"})
    try:
        yield conn
    finally:
        await conn.close()
