"""The services under fuzz: each started in process the way its own tests start it (their helpers,
reused), on a loop thread, against its own database; plus what the fuzz needs to aim well: real
key ids, leases, outpoints, job ids, identity keys, accounts, addresses and wallet transactions,
and valid requests for every RPC.

Every service takes the same tokens (FUZZ_TOKENS): one caller per role, one without a role,
and one whose only right is the signer's key ACL.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import grpc
import httpx
from bsv.base58 import base58check_encode
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import strategies as st
from proofline.common.v1 import common_pb2
from proofline.publisher.v1 import publisher_pb2
from proofline.signer.v1 import signer_pb2
from proofline.utxo.v1 import utxo_pb2
from proofline.wallet.v1 import wallet_pb2

from proofline_kit.pagination import decode_page_token, encode_page_token
from proofline_tools.identity.shares import split_secret
from services.wallet.domain.login import login_message
from tests.chain_clients.sim import SimControl
from tests.fuzz.contract import Metadata, Target
from tests.fuzz.strategies import Hints, hex_ids
from tests.harness.databases import DatabaseFactory
from tests.harness.fake_kms import FakeKms
from tests.harness.loop_thread import LoopThread
from tests.harness.schema_snapshot import SchemaSnapshot
from tests.harness.transactions import address_script, p2pkh_script, unsigned_transaction
from tests.publisher.conftest import IdentityKey, publisher_env, start_publisher_under_test, stop_publisher_under_test
from tests.signer_gateway.conftest import (
    ELSEWHERE,
    OUTSIDE,
    signer_env,
    start_signer_under_test,
    stop_signer_under_test,
)
from tests.utxo.chain_stack import CHANGE, FUNDING, chain_stack
from tests.utxo.conftest import P2PKH, seed, start_utxo_under_test, stop_utxo_under_test, utxo_env
from tests.wallet.conftest import RECIPIENT, WalletSuite

# --- callers ---------------------------------------------------------------------------------------

ADMIN_TOKEN = "admin-token-0001"  # the token the reused helpers (create_key, chain_stack) call with
TOKENS = {
    "admin": ADMIN_TOKEN,
    "pool": "fz-pool-token-0001",
    "publish": "fz-publish-token-01",
    "registrar": "fz-registrar-token-1",
    "wallet": "fz-wallet-token-001",
    "norole": "fz-norole-token-001",
    "acl": "fz-acl-token-000001",
}
ROLES = {"admin": "admin", "pool": "pool", "publish": "publish", "registrar": "registrar", "wallet": "wallet"}
# AUTH_TOKENS needs a role per caller: `none` is a role no RPC asks for.
FUZZ_TOKENS = ",".join(f"{caller}:{ROLES.get(caller, 'none')}:{token}" for caller, token in TOKENS.items())
# The `acl` caller has no role, only keys: fz-acl-* and fz-shared.
FUZZ_SIGNER_ACL = "acl=fz-acl-*|fz-shared"


def bearer(caller: str) -> Metadata:
    return (("authorization", f"Bearer {TOKENS[caller]}"),)


def fresh_request_ids() -> st.SearchStrategy[str]:
    """Mostly new request ids; sometimes one of a few reused ones (REQUEST_ID_REUSED, replays)."""
    fresh = st.uuids().map(lambda u: f"fz-{u.hex}")
    return st.one_of(fresh, fresh, fresh, st.sampled_from(["fz-reused-1", "fz-reused-2"]))


def _copies(items: list[Any]) -> st.SearchStrategy[Any]:
    """One of `items` (messages are copied, so a draw never shares state with another)."""

    def copy(item: Any) -> Any:
        if isinstance(item, Message):
            fresh = type(item)()
            fresh.CopyFrom(item)
            return fresh
        return item

    return st.sampled_from(items).map(copy)


@dataclass
class Stack:
    """One service (or two, for utxo) under test, its targets and the fuzz's aim."""

    targets: dict[str, Target]  # by service full name
    hints: Hints
    valid: dict[str, st.SearchStrategy[Message]]  # by method full name
    data: dict[str, Any] = field(default_factory=dict)
    close: Callable[[], None] = lambda: None

    def target(self, method: MethodDescriptor) -> Target:
        return self.targets[method.containing_service.full_name]

    @property
    def methods(self) -> list[MethodDescriptor]:
        return [method for name in self.targets for method in service(name).methods]


def service(full_name: str) -> ServiceDescriptor:
    for module in (signer_pb2, utxo_pb2, publisher_pb2, wallet_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            if service.full_name == full_name:
                found: ServiceDescriptor = service
                return found
    raise KeyError(full_name)


def _channel(port: int) -> grpc.Channel:
    return grpc.insecure_channel(
        f"127.0.0.1:{port}",
        # Large answers and error trailers are received whole, so that their size can be reported.
        options=[
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.max_receive_message_length", -1),
            ("grpc.max_metadata_size", 16 * 1024 * 1024),
            ("grpc.absolute_max_metadata_size", 16 * 1024 * 1024),
        ],
    )


# --- signer_gateway --------------------------------------------------------------------------------

SIGNER_SERVICE = "proofline.signer.v1.SignerService"
# Tables a refusal may change on purpose. signing_audit: the append-only audit of every signing
# attempt, signed or denied (docs/api.md "signer.v1"; KEY_ACCESS_DENIED is "audited"); the gateway
# writes a denial in its own transaction so that it survives the request's rollback
# (SignerGateway._audit_denied, store/migrations/0001_signer.sql).
SIGNER_REFUSAL_TABLES = {"signing_audit": "append-only audit of every signing attempt, signed or denied"}
SIGNER_KEYS = ["fz-local-1", "fz-local-2", "fz-acl-1", "fz-shared", "fz-policy-1", "fz-kms-1"]


def start_signer_stack(loop: LoopThread, factory: DatabaseFactory) -> Stack:
    database_url = factory.create()
    exits = AsyncExitStack()

    async def start() -> tuple[int, dict[str, bytes]]:
        kms = FakeKms()
        await kms.start()
        exits.push_async_callback(kms.stop)
        kms.add_key("fz-kms-1")
        signer = await start_signer_under_test(
            signer_env(
                database_url,
                AUTH_TOKENS=FUZZ_TOKENS,
                SIGNER_ACL=FUZZ_SIGNER_ACL,
                KMS_SIGN_URL=kms.url,
                KMS_MAX_ATTEMPTS="2",
                KMS_TIMEOUT_MS="2000",
                SIGNER_CRYPTO_WORKERS="1",
            )
        )
        exits.push_async_callback(stop_signer_under_test, signer)
        public: dict[str, bytes] = {}
        for key_id in SIGNER_KEYS:
            policy = None
            if key_id == "fz-policy-1":
                policy = signer_pb2.KeyPolicy(
                    require_policy_mode=True, allowed_destinations=[OUTSIDE], max_amount_per_tx_satoshis=10_000
                )
            backend = signer_pb2.KEY_BACKEND_EXTERNAL_KMS if key_id == "fz-kms-1" else signer_pb2.KEY_BACKEND_LOCAL
            created = await signer.stub.CreateKey(
                signer_pb2.CreateKeyRequest(
                    request_id=f"fz-create-{key_id}", key_id=key_id, backend=backend, policy=policy
                ),
                metadata=bearer("admin"),
                timeout=10,
            )
            public[key_id] = bytes(created.key.public_key)
        return signer.running.port, public

    port, public = loop.run(start())
    channel = _channel(port)
    snapshot = SchemaSnapshot(database_url, "signer", exclude=SIGNER_REFUSAL_TABLES)
    target = Target("signer", "proofline.signer", channel, snapshot, {SIGNER_SERVICE: bearer("admin")})

    transactions: list[signer_pb2.TransactionToSign] = []
    for key_id in ["fz-local-1", "fz-local-2", "fz-acl-1", "fz-policy-1", "fz-kms-1"]:
        script = p2pkh_script(public[key_id])
        for inputs in (1, 2):
            spent = [(50_000, script)] * inputs
            outputs = [(1_000, address_script(OUTSIDE)), (50_000 * inputs - 1_500, script)]
            transactions.append(
                signer_pb2.TransactionToSign(
                    unsigned_tx=unsigned_transaction(spent, outputs),
                    spent_outputs=[common_pb2.SpentOutput(satoshis=s, locking_script=script) for s, script in spent],
                    input_keys=[signer_pb2.InputKey(input_index=i, key_id=key_id) for i in range(inputs)],
                )
            )
    key_ids = st.one_of(
        st.sampled_from(SIGNER_KEYS), st.sampled_from(SIGNER_KEYS), st.uuids().map(lambda u: f"fz-new-{u.hex[:12]}")
    )
    digests = st.binary(min_size=32, max_size=32)
    sign_items = st.builds(lambda k, d: signer_pb2.SignItem(key_id=k, digest=d), key_ids, digests)
    to_sign = _copies(transactions)
    addresses = st.sampled_from([OUTSIDE, ELSEWHERE])
    limits = st.integers(0, 100_000)
    policies = st.builds(
        lambda mode, dests, per_tx, per_day, fee: signer_pb2.KeyPolicy(
            require_policy_mode=mode,
            allowed_destinations=dests,
            max_amount_per_tx_satoshis=per_tx,
            max_amount_per_day_satoshis=per_day,
            max_fee_satoshis=fee,
        ),
        st.booleans(),
        st.lists(addresses, max_size=2),
        limits,
        limits,
        limits,
    )
    hints: dict[str, st.SearchStrategy[Any]] = {
        "request_id": fresh_request_ids(),
        "key_id": key_ids,
        "digest": digests,
        "proofline.signer.v1.SignItem": sign_items,
        "proofline.signer.v1.TransactionToSign": to_sign,
        "unsigned_tx": st.sampled_from([t.unsigned_tx for t in transactions]),
        "proofline.common.v1.SpentOutput": _copies([o for t in transactions for o in t.spent_outputs]),
        "proofline.signer.v1.InputKey": st.builds(
            lambda i, k: signer_pb2.InputKey(input_index=i, key_id=k), st.integers(0, 2), key_ids
        ),
        "input_index": st.integers(0, 2),
        "network": st.sampled_from([0, 1, 2, 3]),
        "backend": st.sampled_from([1, 1, 0, 2]),
        "allowed_destinations": addresses,
        "proofline.signer.v1.KeyPolicy": policies,
        "page_size": st.integers(0, 1001),
        "page_token": st.just(""),
    }
    valid: dict[str, st.SearchStrategy[Message]] = {
        "Sign": st.builds(
            lambda r, items: signer_pb2.SignRequest(request_id=r, items=items),
            fresh_request_ids(),
            st.lists(sign_items, min_size=1, max_size=3),
        ),
        "SignTransaction": st.builds(
            lambda r, t: signer_pb2.SignTransactionRequest(
                request_id=r, unsigned_tx=t.unsigned_tx, spent_outputs=t.spent_outputs, input_keys=t.input_keys
            ),
            fresh_request_ids(),
            to_sign,
        ),
        "SignTransactions": st.builds(
            lambda r, ts: signer_pb2.SignTransactionsRequest(request_id=r, transactions=ts),
            fresh_request_ids(),
            st.lists(to_sign, min_size=1, max_size=3),
        ),
        "GetPublicKey": st.builds(
            lambda k, n: signer_pb2.GetPublicKeyRequest(key_id=k, network=n), key_ids, st.sampled_from([0, 1, 2, 3])
        ),
        "CreateKey": st.builds(
            lambda r, k, b, p: signer_pb2.CreateKeyRequest(request_id=r, key_id=k, backend=b, policy=p),
            fresh_request_ids(),
            key_ids,
            st.sampled_from([0, 1, 1, 2]),
            policies,
        ),
        "ListKeys": st.builds(lambda n: signer_pb2.ListKeysRequest(page_size=n), st.integers(0, 1000)),
        "SetKeyPolicy": st.builds(
            lambda r, k, p: signer_pb2.SetKeyPolicyRequest(request_id=r, key_id=k, policy=p),
            fresh_request_ids(),
            st.sampled_from(["fz-local-2", "fz-shared", "fz-kms-1"]),
            policies,
        ),
    }

    def close() -> None:
        channel.close()
        snapshot.close()
        loop.run(exits.aclose())
        factory.drop(database_url)

    return Stack(
        {SIGNER_SERVICE: target},
        hints,
        {f"{SIGNER_SERVICE}.{name}": strategy for name, strategy in valid.items()},
        {"transactions": transactions, "public": public, "database_url": database_url},
        close,
    )


# --- utxo ------------------------------------------------------------------------------------------

UTXO_SERVICE = "proofline.utxo.v1.UtxoService"
UTXO_ADMIN_SERVICE = "proofline.utxo.v1.UtxoAdminService"
UTXO_OWNERS = ["publish-key", FUNDING, CHANGE]


def start_utxo_stack(loop: LoopThread, factory: DatabaseFactory, redis_url: str) -> Stack:
    database_url = factory.create()
    exits = AsyncExitStack()

    async def start() -> dict[str, Any]:
        stack = await exits.enter_async_context(
            chain_stack(database_url, redis_url, AUTH_TOKENS=FUZZ_TOKENS, UTXO_CHAIN_TIMEOUT_MS="2000")
        )
        await stack.fund(FUNDING, 200_000, count=3)
        await stack.fund("publish-key", 2_000, count=6)
        await stack.fund(CHANGE, 700, count=3)
        await stack.admin.SyncFromChain(
            utxo_pb2.SyncFromChainRequest(request_id="fz-initial-sync"), metadata=bearer("admin"), timeout=30
        )
        db = await asyncpg.connect(database_url, server_settings={"search_path": "utxo"})
        try:
            seeded = await seed(db, [1_000] * 12, owner="publish-key")
            seeded += await seed(db, [1_500] * 3, owner="publish-key", status="unconfirmed", block_height=None)
            seeded += await seed(db, [3_000] * 3, purpose="funding", owner=FUNDING)
        finally:
            await db.close()
        leases = []
        for index in range(3):
            answer = await stack.utxo.stub.LeaseUtxos(
                utxo_pb2.LeaseUtxosRequest(
                    request_id=f"fz-lease-{index}", purpose=utxo_pb2.UTXO_PURPOSE_PUBLISH, count=2
                ),
                metadata=bearer("pool"),
                timeout=10,
            )
            leases.append(answer.lease)
        return {"stack": stack, "seeded": seeded, "leases": leases}

    started = loop.run(start())
    chain = started["stack"]
    leases: list[utxo_pb2.Lease] = started["leases"]
    channel = _channel(chain.utxo.running.port)
    snapshot = SchemaSnapshot(database_url, "utxo")
    callers = {UTXO_SERVICE: bearer("pool"), UTXO_ADMIN_SERVICE: bearer("admin")}
    # The utxo service calls the signer (addresses, split and sweep signatures) and passes its errors on.
    target = Target("utxo", "proofline.utxo", channel, snapshot, callers, ("proofline.signer",))

    leased = [u.outpoint for lease in leases for u in lease.utxos]
    outpoints = _copies(leased + list(started["seeded"]))
    txids = st.one_of(st.sampled_from(sorted({o.txid for o in leased + started["seeded"]})), hex_ids())
    lease_ids = st.one_of(st.sampled_from([lease.lease_id for lease in leases]), hex_ids(32))
    tokens = st.one_of(st.sampled_from([lease.fencing_token for lease in leases]), st.integers(0, 5))
    owners = st.sampled_from(UTXO_OWNERS)
    purposes = st.sampled_from([1, 2, 3, 4])
    durations = st.builds(lambda s: Duration(seconds=s), st.integers(1, 3_600))
    scripts = st.sampled_from([P2PKH, *chain.scripts.values()])
    spend_outputs = st.builds(
        lambda v, s, script, owner, purpose: utxo_pb2.SpendOutput(
            vout=v, satoshis=s, locking_script=script, owner_key_id=owner, purpose=purpose
        ),
        st.integers(0, 3),
        st.integers(1, 10_000),
        scripts,
        owners,
        purposes,
    )
    spends = st.builds(
        lambda txid, inputs, outputs: utxo_pb2.Spend(txid=txid, inputs=inputs, outputs=outputs),
        hex_ids(),
        st.lists(outpoints, min_size=1, max_size=2),
        st.lists(spend_outputs, max_size=2),
    )
    new_outputs = st.builds(
        lambda txid, vout, s, script, owner, purpose: utxo_pb2.NewOutput(
            outpoint=common_pb2.Outpoint(txid=txid, vout=vout),
            satoshis=s,
            locking_script=script,
            owner_key_id=owner,
            purpose=purpose,
        ),
        hex_ids(),
        st.integers(0, 3),
        st.integers(1, 10_000),
        scripts,
        owners,
        purposes,
    )
    addresses = st.sampled_from(sorted(chain.addresses.values()))
    hints: dict[str, st.SearchStrategy[Any]] = {
        "request_id": fresh_request_ids(),
        "lease_id": lease_ids,
        "fencing_token": tokens,
        "proofline.common.v1.Outpoint": outpoints,
        "txid": txids,
        "spending_txid": txids,
        "txids": txids,
        "competing_txids": hex_ids(),
        "owner_key_id": owners,
        "owner_key_ids": owners,
        "purpose": purposes,
        "statuses": st.sampled_from([1, 2, 3, 4, 5, 6]),
        "strategy": st.sampled_from([0, 1, 2]),
        "kind": st.sampled_from([1, 2, 3]),
        "count": st.integers(1, 4),
        "target_satoshis": st.integers(1, 20_000),
        "min_satoshis": st.integers(0, 2_000),
        "max_satoshis": st.integers(0, 5_000),
        "max_count": st.integers(0, 10),
        "max_unconfirmed_depth": st.integers(0, 30),
        "fee_rate_satoshis_per_kb": st.integers(0, 1_000),
        "lease_duration": durations,
        "holder": st.text(max_size=20),
        "detail": st.text(max_size=40),
        "proofline.utxo.v1.Spend": spends,
        "proofline.utxo.v1.NewOutput": new_outputs,
        "page_size": st.integers(0, 1001),
        "page_token": st.just(""),
        "dry_run": st.booleans(),
        "funding_key_id": st.sampled_from([FUNDING, "", "publish-key"]),
        "output_key_id": st.sampled_from(["publish-key", ""]),
        "output_count": st.integers(0, 4),
        "output_satoshis": st.integers(0, 2_000),
        "change_address": addresses,
        "change_key_id": st.sampled_from([CHANGE, ""]),
        "destination_address": addresses,
        "max_inputs_per_transaction": st.integers(0, 10),
        "max_transactions": st.integers(0, 2),
        "action": st.sampled_from([1, 2, 3, 4, 5]),
    }
    live = [(lease.lease_id, lease.fencing_token, [u.outpoint for u in lease.utxos]) for lease in leases]
    chosen = st.sampled_from(live)
    valid: dict[str, st.SearchStrategy[Message]] = {
        f"{UTXO_SERVICE}.LeaseUtxos": st.builds(
            lambda r, n, d: utxo_pb2.LeaseUtxosRequest(
                request_id=r, purpose=utxo_pb2.UTXO_PURPOSE_PUBLISH, count=n, lease_duration=d
            ),
            fresh_request_ids(),
            st.integers(1, 2),
            durations,
        ),
        f"{UTXO_SERVICE}.RenewLease": st.builds(
            lambda r, lease, d: utxo_pb2.RenewLeaseRequest(
                request_id=r, lease_id=lease[0], fencing_token=lease[1], lease_duration=d
            ),
            fresh_request_ids(),
            chosen,
            durations,
        ),
        f"{UTXO_SERVICE}.ReleaseLease": st.builds(
            lambda r, lease, n: utxo_pb2.ReleaseLeaseRequest(request_id=r, lease_id=lease[0], outpoints=lease[2][:n]),
            fresh_request_ids(),
            chosen,
            st.integers(0, 2),
        ),
        f"{UTXO_SERVICE}.CommitSpend": st.builds(
            lambda r, lease, txid, release: utxo_pb2.CommitSpendRequest(
                request_id=r,
                lease_id=lease[0],
                fencing_token=lease[1],
                spends=[utxo_pb2.Spend(txid=txid, inputs=lease[2][:1])],
                release_unspent=release,
            ),
            fresh_request_ids(),
            chosen,
            hex_ids(),
            st.booleans(),
        ),
        f"{UTXO_SERVICE}.ReportConflict": st.builds(
            lambda r, lease, kind, competing: utxo_pb2.ReportConflictRequest(
                request_id=r,
                lease_id=lease[0],
                fencing_token=lease[1],
                outpoints=lease[2][:1],
                kind=kind,
                competing_txids=[competing],
            ),
            fresh_request_ids(),
            chosen,
            st.sampled_from([1, 2, 3]),
            hex_ids(),
        ),
        f"{UTXO_SERVICE}.ReportAccepted": st.builds(
            lambda r, ids: utxo_pb2.ReportAcceptedRequest(request_id=r, txids=ids),
            fresh_request_ids(),
            st.lists(txids, min_size=1, max_size=3, unique=True),
        ),
        f"{UTXO_SERVICE}.AddOutputs": st.builds(
            lambda r, outputs: utxo_pb2.AddOutputsRequest(request_id=r, outputs=outputs),
            fresh_request_ids(),
            st.lists(new_outputs, min_size=1, max_size=3),
        ),
        f"{UTXO_SERVICE}.ListUtxos": st.builds(
            lambda owner, purpose, n: utxo_pb2.ListUtxosRequest(owner_key_id=owner, purpose=purpose, page_size=n),
            owners,
            purposes,
            st.integers(0, 1000),
        ),
        f"{UTXO_SERVICE}.GetPoolHealth": st.builds(
            lambda owner, purpose: utxo_pb2.GetPoolHealthRequest(owner_key_id=owner, purpose=purpose),
            owners,
            purposes,
        ),
        f"{UTXO_ADMIN_SERVICE}.SyncFromChain": st.builds(
            lambda r, dry: utxo_pb2.SyncFromChainRequest(request_id=r, dry_run=dry), fresh_request_ids(), st.booleans()
        ),
        f"{UTXO_ADMIN_SERVICE}.Split": st.builds(
            lambda r, dry, n: utxo_pb2.SplitRequest(
                request_id=r, dry_run=dry, output_count=n, output_satoshis=1_000, ignore_cooldown=True
            ),
            fresh_request_ids(),
            st.booleans(),
            st.integers(1, 3),
        ),
        f"{UTXO_ADMIN_SERVICE}.Sweep": st.builds(
            lambda r, dry: utxo_pb2.SweepRequest(
                request_id=r, dry_run=dry, change_address=chain.addresses[CHANGE], change_key_id=CHANGE
            ),
            fresh_request_ids(),
            st.booleans(),
        ),
        f"{UTXO_ADMIN_SERVICE}.RunMaintenance": st.builds(
            lambda r, action, dry: utxo_pb2.RunMaintenanceRequest(request_id=r, action=action, dry_run=dry),
            fresh_request_ids(),
            st.sampled_from([1, 2, 3, 4, 5]),
            st.booleans(),
        ),
    }

    def close() -> None:
        channel.close()
        snapshot.close()
        loop.run(exits.aclose())
        factory.drop(database_url)

    return Stack(
        {UTXO_SERVICE: target, UTXO_ADMIN_SERVICE: target},
        hints,
        valid,
        {"leases": leases, "addresses": dict(chain.addresses), "database_url": database_url},
        close,
    )


# --- publisher -------------------------------------------------------------------------------------

PUBLISHER_SERVICE = "proofline.publisher.v1.PublisherService"


def start_publisher_stack(loop: LoopThread, factory: DatabaseFactory, redis_url: str) -> Stack:
    database_url = factory.create()
    exits = AsyncExitStack()
    active, revoked, spare, unknown = (IdentityKey.generate() for _ in range(4))

    async def start() -> dict[str, Any]:
        env = publisher_env(database_url, redis_url, AUTH_TOKENS=FUZZ_TOKENS, PUBLISHER_WATCH_POLL_MS="200")
        publisher = await start_publisher_under_test(env, redis_url)
        exits.push_async_callback(stop_publisher_under_test, publisher)
        for index, key in enumerate((active, revoked, spare)):
            await publisher.stub.RegisterIdentity(
                publisher_pb2.RegisterIdentityRequest(request_id=f"fz-reg-{index}", pubkey=key.pubkey, label="fuzz"),
                metadata=bearer("registrar"),
                timeout=10,
            )
        await publisher.stub.RevokeIdentity(
            publisher_pb2.RevokeIdentityRequest(request_id="fz-revoke", pubkey=revoked.pubkey, reason="fuzz"),
            metadata=bearer("registrar"),
            timeout=10,
        )
        job = await publisher.stub.Publish(
            publisher_pb2.PublishRequest(request_id="fz-publish", intent=active.intent()),
            metadata=bearer("publish"),
            timeout=10,
        )
        batch = await publisher.stub.PublishBatch(
            publisher_pb2.PublishBatchRequest(request_id="fz-batch", intents=[active.intent(), active.intent()]),
            metadata=bearer("publish"),
            timeout=10,
        )
        return {"port": publisher.running.port, "job": job.job, "batch": [r.job for r in batch.results]}

    started = loop.run(start())
    channel = _channel(started["port"])
    snapshot = SchemaSnapshot(database_url, "publisher")
    target = Target("publisher", "proofline.publisher", channel, snapshot, {PUBLISHER_SERVICE: bearer("admin")})
    jobs: list[publisher_pb2.Job] = [started["job"], *started["batch"]]

    def intent_of(key: IdentityKey, nonce: uuid.UUID) -> publisher_pb2.SignedIntent:
        return key.intent(key.payload(nonce=nonce.hex))

    signers = st.sampled_from([active, active, active, revoked, unknown])
    intents = st.builds(intent_of, signers, st.uuids())
    job_ids = st.one_of(st.sampled_from([j.job_id for j in jobs]), hex_ids(32))
    times = st.builds(lambda s: Timestamp(seconds=s), st.integers(1_700_000_000, 1_900_000_000))
    hints: dict[str, st.SearchStrategy[Any]] = {
        "request_id": fresh_request_ids(),
        "pubkey": st.sampled_from([active.pubkey, revoked.pubkey, spare.pubkey, unknown.pubkey]),
        "proofline.publisher.v1.RevokeIdentityRequest.pubkey": st.sampled_from(
            [revoked.pubkey, spare.pubkey, unknown.pubkey]
        ),
        "identity_pubkey": st.sampled_from([active.pubkey, unknown.pubkey]),
        "label": st.text(min_size=1, max_size=20),
        "owner_ref": st.text(max_size=20),
        "reason": st.text(max_size=40),
        "proofline.publisher.v1.SignedIntent": intents,
        "job_id": job_ids,
        "batch_id": st.sampled_from(sorted({j.batch_id for j in jobs if j.batch_id} or {""})),
        "txid": hex_ids(),
        "wait_for": st.sampled_from([0, 0, 0, 1, 3]),
        "wait_timeout": st.builds(lambda ms: Duration(nanos=ms * 1_000_000), st.integers(0, 300)),
        "until": st.sampled_from([0, 1, 2, 3, 4, 5]),
        "view": st.sampled_from([0, 1, 2]),
        "status": st.sampled_from([0, 1, 2]),
        "statuses": st.sampled_from([1, 2, 3, 4, 5, 6]),
        "start_time": times,
        "end_time": times,
        "page_size": st.integers(0, 1001),
        "page_token": st.just(""),
    }
    valid: dict[str, st.SearchStrategy[Message]] = {
        "RegisterIdentity": st.builds(
            lambda r, label: publisher_pb2.RegisterIdentityRequest(
                request_id=r, pubkey=IdentityKey.generate().pubkey, label=label
            ),
            fresh_request_ids(),
            st.text(min_size=1, max_size=20),
        ),
        "RevokeIdentity": st.builds(
            lambda r, key, cancel: publisher_pb2.RevokeIdentityRequest(
                request_id=r, pubkey=key, reason="fuzz", cancel_queued_jobs=cancel
            ),
            fresh_request_ids(),
            st.sampled_from([revoked.pubkey, spare.pubkey]),
            st.booleans(),
        ),
        "ListIdentities": st.builds(
            lambda status, n: publisher_pb2.ListIdentitiesRequest(status=status, page_size=n),
            st.sampled_from([0, 1, 2]),
            st.integers(0, 1000),
        ),
        "Publish": st.builds(
            lambda r, intent: publisher_pb2.PublishRequest(request_id=r, intent=intent), fresh_request_ids(), intents
        ),
        "PublishBatch": st.builds(
            lambda r, batch: publisher_pb2.PublishBatchRequest(request_id=r, intents=batch),
            fresh_request_ids(),
            st.lists(intents, min_size=1, max_size=3),
        ),
        "GetJob": st.builds(
            lambda job, view: publisher_pb2.GetJobRequest(job_id=job, view=view), job_ids, st.sampled_from([0, 1, 2])
        ),
        "ListJobs": st.builds(
            lambda key, n: publisher_pb2.ListJobsRequest(identity_pubkey=key, page_size=n),
            st.sampled_from([active.pubkey, b""]),
            st.integers(0, 1000),
        ),
        "WatchJob": st.builds(
            lambda job, until: publisher_pb2.WatchJobRequest(job_id=job, until=until),
            job_ids,
            st.sampled_from([0, 1, 2]),
        ),
    }

    def close() -> None:
        channel.close()
        snapshot.close()
        loop.run(exits.aclose())
        factory.drop(database_url)

    return Stack(
        {PUBLISHER_SERVICE: target},
        hints,
        {f"{PUBLISHER_SERVICE}.{name}": strategy for name, strategy in valid.items()},
        {"jobs": jobs, "active": active, "revoked": revoked, "spare": spare, "database_url": database_url},
        close,
    )


# --- wallet ----------------------------------------------------------------------------------------

WALLET_SERVICE = "proofline.wallet.v1.WalletService"
WALLET_ADMIN_SERVICE = "proofline.wallet.v1.WalletAdminService"
# The identity side of WalletService, forwarded to a publisher (intake only) the wallet stack starts
# beside it: in the authorization matrix, not fuzzed yet (tests/fuzz/test_wallet.py).
WALLET_IDENTITY_RPCS = (
    "RegisterIdentity",
    "RevokeIdentity",
    "ListIdentities",
    "SubmitIntent",
    "SubmitIntentBatch",
    "GetIntentJob",
    "WatchIntentJob",
)
# The rest are the wallet's own (money and sign-up), fuzzed in tests/fuzz/test_wallet.py.
WALLET_LOCAL_RPCS = tuple(m.name for m in service(WALLET_SERVICE).methods if m.name not in WALLET_IDENTITY_RPCS)
# Recipients: testnet P2PKH addresses nobody in the stack holds (RECIPIENT is also the signer's OUTSIDE).
WALLET_RECIPIENTS = [RECIPIENT, ELSEWHERE]
MAINNET_ADDRESS = "1BoatSLRHtKNngkdXEeobR76b53LETtpyT"
# A testnet P2SH address (version byte 0xc4): base58check-valid, on the right network, not P2PKH.
TESTNET_P2SH = base58check_encode(b"\xc4" + b"\x11" * 20)
BAD_CHECKSUM = RECIPIENT[:-1] + ("a" if RECIPIENT[-1] != "a" else "b")
# Low enough that a fuzz run reaches them (RATE_LIMITED, DAILY_LIMIT_EXCEEDED), high enough that the
# first sends of a run go through; the set-up's own sends (10,000 + 2,000 and fees) count towards it.
WALLET_FUZZ_LIMITS = {"WALLET_SENDS_PER_MINUTE": "30", "WALLET_DAILY_LIMIT_SATOSHIS": "150000"}
WALLET_FUNDING = (1_000_000, 4)  # satoshis per deposit output, outputs: what the funded account holds
SETUP_TIMEOUT_S = 30.0


async def _until(
    read: Callable[[], Awaitable[Any]], done: Callable[[Any], bool], what: str, timeout_s: float = SETUP_TIMEOUT_S
) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"wallet stack set-up: {what} not reached after {timeout_s} s: {value}")
        await asyncio.sleep(0.1)


def start_wallet_stack(loop: LoopThread, factory: DatabaseFactory, redis_url: str, chainsim_url: str) -> Stack:
    """signer_gateway, utxo and the wallet in process (real gRPC between them, the wallet calling the
    pool and the signer as admin), chainsim (the session's process, reset) as ARC and WhatsOnChain.

    The set-up runs the wallet with its background loops, so that a deposit is followed and
    credited, a send reaches the chain and is confirmed, and a second deposit is seen in the mempool
    (pending). Then the wallet is restarted with WALLET_WORKERS=0, as tests/wallet/test_sends.py
    does: from then on only requests write to the wallet schema, so "a refusal changes no table"
    holds over every table of it, with none excluded. The sends the fuzz records stay PENDING."""
    database_url = factory.create()
    exits = AsyncExitStack()
    wallet = bearer("wallet")
    identity_active, identity_revoked = IdentityKey.generate(), IdentityKey.generate()

    async def start() -> dict[str, Any]:
        http = httpx.AsyncClient(trust_env=False, timeout=15.0)
        exits.push_async_callback(http.aclose)
        sim = SimControl(http, chainsim_url)
        await sim.reset()
        signer = await start_signer_under_test(signer_env(database_url, AUTH_TOKENS=FUZZ_TOKENS, SIGNER_ACL=""))
        exits.push_async_callback(stop_signer_under_test, signer)
        utxo = await start_utxo_under_test(
            utxo_env(
                database_url,
                redis_url,
                AUTH_TOKENS=FUZZ_TOKENS,
                ARC_URL=chainsim_url,
                WOC_URL=chainsim_url,
                WOC_NETWORK="test",
                UTXO_SIGNER_ADDR=f"127.0.0.1:{signer.running.port}",
                UTXO_SIGNER_TOKEN=ADMIN_TOKEN,
            )
        )
        exits.push_async_callback(stop_utxo_under_test, utxo)
        publisher = await start_publisher_under_test(
            publisher_env(database_url, redis_url, AUTH_TOKENS=FUZZ_TOKENS, PUBLISHER_WATCH_POLL_MS="200"), redis_url
        )
        exits.push_async_callback(stop_publisher_under_test, publisher)
        # The admin token has the publisher's registrar and publish roles.
        forwarding = {
            "WALLET_PUBLISHER_ADDR": f"127.0.0.1:{publisher.running.port}",
            "WALLET_PUBLISHER_TOKEN": ADMIN_TOKEN,
        }
        suite = WalletSuite(sim, signer, utxo, database_url, redis_url)
        exits.push_async_callback(suite.stop_wallet)
        # WALLET_UTXO_TOKEN / WALLET_SIGNER_TOKEN stay wallet_env's: the admin token (ADMIN_TOKEN).
        await suite.start_wallet(AUTH_TOKENS=FUZZ_TOKENS, **forwarding)

        async def account(external_id: str) -> wallet_pb2.Account:
            created = await suite.stub.CreateAccount(
                wallet_pb2.CreateAccountRequest(request_id=f"fz-acct-{external_id}", external_id=external_id),
                metadata=wallet,
                timeout=10,
            )
            return created.account

        async def address(account_id: str, label: str) -> wallet_pb2.DepositAddress:
            created = await suite.stub.NewDepositAddress(
                wallet_pb2.NewDepositAddressRequest(
                    request_id=f"fz-addr-{uuid.uuid4().hex[:12]}", account_id=account_id, label=label
                ),
                metadata=wallet,
                timeout=10,
            )
            return created.deposit_address

        async def balance(account_id: str) -> wallet_pb2.Balance:
            answer = await suite.stub.GetBalance(
                wallet_pb2.GetBalanceRequest(account_id=account_id), metadata=wallet, timeout=10
            )
            return answer.balance

        async def transaction(transaction_id: str) -> wallet_pb2.Transaction:
            answer = await suite.stub.GetTransaction(
                wallet_pb2.GetTransactionRequest(transaction_id=transaction_id), metadata=wallet, timeout=10
            )
            return answer.transaction

        funded, empty, pending = [await account(f"fz-{name}") for name in ("funded", "empty", "pending")]
        funded_addresses = [await address(funded.account_id, label) for label in ("first", "second")]
        empty_address = await address(empty.account_id, "")
        pending_address = await address(pending.account_id, "pending")
        each, count = WALLET_FUNDING
        deposit = await suite.fund(funded_addresses[0].address, each, count)
        await sim.mine(1)
        await _until(lambda: balance(funded.account_id), lambda b: b.available_satoshis == each * count, "funding")
        await _until(suite.pool_available, lambda coins: len(coins) >= count, "coins in the pool")
        sent = await suite.stub.Send(
            wallet_pb2.SendRequest(
                request_id="fz-first-send",
                account_id=funded.account_id,
                to_address=RECIPIENT,
                amount_satoshis=10_000,
                memo="fuzz set-up",
                wait_for=wallet_pb2.TRANSACTION_STATUS_UNCONFIRMED,
                wait_timeout=Duration(seconds=20),
            ),
            metadata=wallet,
            timeout=30,
        )
        assert sent.transaction.status == wallet_pb2.TRANSACTION_STATUS_UNCONFIRMED, sent.transaction
        await sim.mine(1)
        await _until(
            lambda: transaction(sent.transaction.transaction_id),
            lambda t: t.status == wallet_pb2.TRANSACTION_STATUS_CONFIRMED,
            "the first send confirmed",
        )
        await suite.fund(pending_address.address, 5_000, 1)
        await _until(lambda: balance(pending.account_id), lambda b: b.pending_satoshis == 5_000, "a pending deposit")
        await _until(suite.reconciliation, lambda r: r.balanced, "a balanced reconciliation")

        # Intake only from here (see the docstring).
        await suite.stop_wallet()
        # A session token that outlives the longest run (it is made after this restart: the
        # session secret is random per process outside production).
        await suite.start_wallet(
            AUTH_TOKENS=FUZZ_TOKENS,
            WALLET_WORKERS="0",
            WALLET_SESSION_TTL_MS="86400000",
            **WALLET_FUZZ_LIMITS,
            **forwarding,
        )
        # Identity keys of the funded account (one of them revoked) and a job of the active one.
        for request_id, key in (("fz-wreg-active", identity_active), ("fz-wreg-revoked", identity_revoked)):
            await suite.stub.RegisterIdentity(
                wallet_pb2.RegisterIdentityRequest(
                    request_id=request_id,
                    account_id=funded.account_id,
                    pubkey=key.pubkey,
                    label="fuzz",
                    proof=key.intent(
                        key.payload({"accountId": funded.account_id, "type": "proofline.identity.register"}, aud=None)
                    ),
                ),
                metadata=wallet,
                timeout=10,
            )
        await suite.stub.RevokeIdentity(
            wallet_pb2.RevokeIdentityRequest(
                request_id="fz-wrevoke", account_id=funded.account_id, pubkey=identity_revoked.pubkey
            ),
            metadata=wallet,
            timeout=10,
        )
        intent_job = await suite.stub.SubmitIntent(
            wallet_pb2.SubmitIntentRequest(
                request_id="fz-wsubmit", account_id=funded.account_id, intent=identity_active.intent()
            ),
            metadata=wallet,
            timeout=10,
        )
        # A session of the funded account: a real login with its active identity key.
        challenge = await suite.stub.BeginLogin(
            wallet_pb2.BeginLoginRequest(pubkey=identity_active.pubkey), metadata=wallet, timeout=10
        )
        session = await suite.stub.CompleteLogin(
            wallet_pb2.CompleteLoginRequest(
                challenge_id=challenge.challenge_id,
                signature=identity_active.sign(login_message(challenge.challenge, identity_active.pubkey)),
            ),
            metadata=wallet,
            timeout=10,
        )
        assert session.account_id == funded.account_id
        queued = await suite.stub.Send(
            wallet_pb2.SendRequest(
                request_id="fz-queued-send", account_id=funded.account_id, to_address=ELSEWHERE, amount_satoshis=2_000
            ),
            metadata=wallet,
            timeout=10,
        )
        listed = await suite.stub.ListTransactions(
            wallet_pb2.ListTransactionsRequest(account_id=funded.account_id, page_size=1000),
            metadata=wallet,
            timeout=10,
        )
        incoming = await suite.stub.ListTransactions(
            wallet_pb2.ListTransactionsRequest(account_id=pending.account_id), metadata=wallet, timeout=10
        )
        tokens = [
            (
                await suite.stub.ListAccounts(wallet_pb2.ListAccountsRequest(page_size=1), metadata=wallet, timeout=10)
            ).next_page_token,
            (
                await suite.stub.ListDepositAddresses(
                    wallet_pb2.ListDepositAddressesRequest(account_id=funded.account_id, page_size=1),
                    metadata=wallet,
                    timeout=10,
                )
            ).next_page_token,
            (
                await suite.stub.ListTransactions(
                    wallet_pb2.ListTransactionsRequest(account_id=funded.account_id, page_size=1),
                    metadata=wallet,
                    timeout=10,
                )
            ).next_page_token,
        ]
        assert all(tokens), tokens
        assert suite.wallet is not None
        return {
            "port": suite.wallet.port,
            "accounts": {"funded": funded, "empty": empty, "pending": pending},
            "addresses": [*funded_addresses, empty_address, pending_address],
            "deposit_txid": deposit["txid"],
            "transactions": [*listed.transactions, *incoming.transactions],
            "queued": queued.transaction,
            "tokens": tokens,
            "reconciliation": await suite.reconciliation(),
            "intent_job": intent_job.job,
            "session_token": session.session_token,
        }

    started = loop.run(start())
    channel = _channel(started["port"])
    snapshot = SchemaSnapshot(database_url, "wallet")
    callers = {WALLET_SERVICE: wallet, WALLET_ADMIN_SERVICE: bearer("admin")}
    # The wallet calls the pool, the signer and the publisher; the kit's clients keep an error's origin domain.
    target = Target(
        "wallet",
        "proofline.wallet",
        channel,
        snapshot,
        callers,
        ("proofline.utxo", "proofline.signer", "proofline.publisher"),
    )

    accounts: dict[str, wallet_pb2.Account] = started["accounts"]
    funded_id = accounts["funded"].account_id
    account_ids = [a.account_id for a in accounts.values()]
    deposit_addresses: list[wallet_pb2.DepositAddress] = started["addresses"]
    transactions: list[wallet_pb2.Transaction] = started["transactions"]
    transaction_ids = [t.transaction_id for t in transactions]
    txids = sorted({t.txid for t in transactions if t.txid} | {started["deposit_txid"]})
    assert len(transaction_ids) >= 4 and len(txids) >= 3, transactions  # deposit, send, queued send, pending deposit

    real_accounts = st.one_of(st.just(funded_id), st.sampled_from(account_ids))
    accounts_st = st.one_of(
        real_accounts,
        real_accounts,
        st.sampled_from(["", "acct_00000000000000000000", "acct_" + "f" * 60]),
        st.uuids().map(lambda u: f"acct_{u.hex[:20]}"),
    )
    good_recipients = st.one_of(
        st.sampled_from(WALLET_RECIPIENTS), st.sampled_from([a.address for a in deposit_addresses])
    )
    bad_recipients = st.sampled_from([MAINNET_ADDRESS, TESTNET_P2SH, BAD_CHECKSUM, "", RECIPIENT.lower()])
    recipients = st.one_of(good_recipients, good_recipients, bad_recipients)
    # BSV's dust is 1 satoshi; 100 and 226 (a one-input fee at 1000 sat/kB) reach AMOUNT_BELOW_DUST when the
    # fee is subtracted; 3,000,000 is more than the daily limit, 10^11 + 1 above the per-send maximum.
    amounts = st.one_of(
        st.integers(1, 20_000),
        st.integers(1, 20_000),
        st.sampled_from([1, 2, 100, 226, 227, 3_000_000, 10**8, 10**11, 10**11 + 1]),
    )
    rates = st.sampled_from([0, 0, 1, 10, 500, 1000, 1_000_000, 1_000_001])
    max_fees = st.sampled_from([0, 0, 0, 1, 100, 10_000])
    fee_policies = st.builds(
        lambda rate, cap, subtract: wallet_pb2.FeePolicy(
            fee_rate_satoshis_per_kb=rate, max_fee_satoshis=cap, subtract_fee_from_amount=subtract
        ),
        rates,
        max_fees,
        st.booleans(),
    )
    # Mostly answer at once: the sends the fuzz records never leave PENDING (no background work).
    wait_for = st.sampled_from([0, 0, 0, 0, 1, 2, 3])
    wait_timeouts = st.builds(lambda ms: Duration(nanos=ms * 1_000_000), st.integers(0, 300))
    transaction_ids_st = st.one_of(
        st.sampled_from(transaction_ids),
        st.sampled_from(transaction_ids),
        st.uuids().map(lambda u: f"wtx_{u.hex[:24]}"),
        st.just(""),
    )
    now = int(time.time())
    times = st.builds(lambda s: Timestamp(seconds=s), st.integers(now - 86_400, now + 86_400))
    external_ids = st.one_of(
        st.uuids().map(lambda u: f"fz-user-{u.hex[:16]}"),
        st.sampled_from([a.external_id for a in accounts.values()]),
        st.text(min_size=1, max_size=20),
    )
    labels = st.one_of(st.text(max_size=20), st.sampled_from(["", "a" * 128, "a" * 129]))
    memos = st.one_of(st.text(max_size=40), st.sampled_from(["", "a" * 256, "a" * 257, "line\nbreak\ttab"]))
    # Page tokens are unsigned (base64 JSON, proofline_kit.pagination): besides the issued ones, the
    # funded account's ListTransactions token edited (cursor position at the edges or of the wrong
    # type, the filter key changed or missing).
    transactions_token = started["tokens"][2]
    issued = decode_page_token(transactions_token)
    edited_tokens = [
        encode_page_token({**issued, "s": position})
        for position in (0, -1, 2**63 - 1, "7", 1.5, True, None, "2024-01-01T00:00:00")
    ] + [encode_page_token({"s": issued["s"]}), encode_page_token({**issued, "f": []})]
    page_tokens = st.sampled_from(["", "", *started["tokens"], *edited_tokens])
    hints: dict[str, st.SearchStrategy[Any]] = {
        "request_id": fresh_request_ids(),
        "account_id": accounts_st,
        "external_id": external_ids,
        "label": labels,
        "to_address": recipients,
        "amount_satoshis": amounts,
        "proofline.wallet.v1.FeePolicy": fee_policies,
        "fee_rate_satoshis_per_kb": rates,
        "max_fee_satoshis": max_fees,
        "subtract_fee_from_amount": st.booleans(),
        "memo": memos,
        "wait_for": wait_for,
        "wait_timeout": wait_timeouts,
        "transaction_id": transaction_ids_st,
        "txid": st.one_of(st.sampled_from(txids), hex_ids()),
        "direction": st.sampled_from([0, 1, 2]),
        "statuses": st.sampled_from([1, 2, 3, 4, 5, 6]),
        "start_time": times,
        "end_time": times,
        "view": st.sampled_from([0, 1, 2]),
        "until_confirmations": st.integers(0, 3),
        "page_size": st.integers(0, 1001),
        "page_token": page_tokens,
    }
    # Well-formed money requests (they pass the contract rules), mostly payable by the funded account,
    # sometimes refused by the wallet's own rules: another account (nothing available), a recipient
    # of another network or kind, an amount below dust, above the limit or above the balance, a fee
    # cap of 1 satoshi.
    send_accounts = st.sampled_from([funded_id, funded_id, funded_id, funded_id, *account_ids])
    send_recipients = st.one_of(good_recipients, good_recipients, good_recipients, bad_recipients)
    send_fees = st.builds(
        lambda rate, cap, subtract: wallet_pb2.FeePolicy(
            fee_rate_satoshis_per_kb=rate, max_fee_satoshis=cap, subtract_fee_from_amount=subtract
        ),
        st.sampled_from([0, 1, 100, 1000, 1000]),
        st.sampled_from([0, 0, 0, 0, 1, 10_000]),
        st.booleans(),
    )
    sendable = st.builds(
        lambda r, a, to, n, fee, memo, w, t: wallet_pb2.SendRequest(
            request_id=r,
            account_id=a,
            to_address=to,
            amount_satoshis=n,
            fee_policy=fee,
            memo=memo,
            wait_for=w,
            wait_timeout=t,
        ),
        st.uuids().map(lambda u: f"fz-send-{u.hex}"),
        send_accounts,
        send_recipients,
        amounts,
        send_fees,
        st.text(st.characters(codec="utf-8", categories=["L", "N", "P", "Zs"]), max_size=20),
        wait_for,
        wait_timeouts,
    )
    valid: dict[str, st.SearchStrategy[Message]] = {
        "CreateAccount": st.builds(
            lambda r, x, label: wallet_pb2.CreateAccountRequest(request_id=r, external_id=x, label=label),
            fresh_request_ids(),
            st.uuids().map(lambda u: f"fz-user-{u.hex[:16]}"),
            st.text(max_size=20),
        ),
        "GetAccount": st.builds(lambda a: wallet_pb2.GetAccountRequest(account_id=a), st.sampled_from(account_ids)),
        "ListAccounts": st.builds(
            lambda x, n: wallet_pb2.ListAccountsRequest(external_id=x, page_size=n),
            st.sampled_from(["", *(a.external_id for a in accounts.values())]),
            st.integers(0, 1000),
        ),
        "NewDepositAddress": st.builds(
            lambda r, a, label: wallet_pb2.NewDepositAddressRequest(request_id=r, account_id=a, label=label),
            fresh_request_ids(),
            st.sampled_from(account_ids),
            st.text(max_size=20),
        ),
        "ListDepositAddresses": st.builds(
            lambda a, n: wallet_pb2.ListDepositAddressesRequest(account_id=a, page_size=n),
            st.sampled_from(account_ids),
            st.integers(0, 1000),
        ),
        "GetBalance": st.builds(lambda a: wallet_pb2.GetBalanceRequest(account_id=a), st.sampled_from(account_ids)),
        "EstimateFee": st.builds(
            lambda a, to, n, fee: wallet_pb2.EstimateFeeRequest(
                account_id=a, to_address=to, amount_satoshis=n, fee_policy=fee
            ),
            st.sampled_from(["", "", *account_ids]),
            send_recipients,
            amounts,
            send_fees,
        ),
        "Send": sendable,
        "ListTransactions": st.one_of(
            st.builds(
                lambda a, d, statuses, n, view: wallet_pb2.ListTransactionsRequest(
                    account_id=a, direction=d, statuses=statuses, page_size=n, view=view
                ),
                st.sampled_from(account_ids),
                st.sampled_from([0, 1, 2]),
                st.lists(st.sampled_from([1, 2, 3, 4, 5, 6]), max_size=2),
                st.integers(0, 1000),
                st.sampled_from([0, 1, 2]),
            ),
            # The funded account's unfiltered history, from the issued token or an edited one.
            st.builds(
                lambda token, n: wallet_pb2.ListTransactionsRequest(
                    account_id=funded_id, page_token=token, page_size=n
                ),
                st.sampled_from([transactions_token, *edited_tokens]),
                st.integers(0, 3),
            ),
        ),
        "GetTransaction": st.builds(
            lambda t, view: wallet_pb2.GetTransactionRequest(transaction_id=t, view=view),
            st.sampled_from(transaction_ids),
            st.sampled_from([0, 1, 2]),
        ),
        "WatchTransaction": st.builds(
            lambda t, view, until: wallet_pb2.WatchTransactionRequest(
                transaction_id=t, view=view, until_confirmations=until
            ),
            st.sampled_from(transaction_ids),
            st.sampled_from([0, 1, 2]),
            st.integers(0, 3),
        ),
        # No SMTP server in this stack: a well-formed address is EMAIL_UNAVAILABLE (nothing kept).
        "StartSignUp": st.builds(
            lambda e: wallet_pb2.StartSignUpRequest(email=e), st.one_of(st.emails(), st.text(max_size=40))
        ),
        "CompleteSignUp": st.builds(
            lambda i, c, label: wallet_pb2.CompleteSignUpRequest(signup_id=i, code=c, label=label),
            st.one_of(st.uuids().map(lambda u: f"su_{u.hex}"), st.text(max_size=40)),
            st.one_of(st.integers(0, 999_999).map(lambda n: f"{n:06d}"), st.text(max_size=8)),
            st.text(max_size=20),
        ),
        # Shares of fresh splits (3-of-5, or a 2-of-3 one the wallet refuses), or text; keys of the
        # funded account or not. No SMTP server: BeginRecovery never mails.
        "StoreBackupShares": st.builds(
            lambda rid, a, k, shares: wallet_pb2.StoreBackupSharesRequest(
                request_id=rid, account_id=a, pubkey=k, shares=shares
            ),
            st.uuids().map(lambda u: f"fz-bkp-{u.hex}"),
            st.sampled_from([funded_id, *account_ids]),
            st.sampled_from([identity_active.pubkey, identity_revoked.pubkey, b"", b"\x02" * 33]),
            st.one_of(
                st.builds(
                    lambda secret, t, n: split_secret(secret, threshold=t, count=5)[:n],
                    st.binary(min_size=16, max_size=16),
                    st.sampled_from([2, 3]),
                    st.integers(0, 3),
                ),
                st.lists(st.text(max_size=60), max_size=3),
            ),
        ),
        "BeginRecovery": st.builds(
            lambda a, k: wallet_pb2.BeginRecoveryRequest(account_id=a, pubkey=k),
            st.sampled_from([funded_id, *account_ids]),
            st.sampled_from([identity_active.pubkey, b"", b"\x02" * 33]),
        ),
        "CompleteRecovery": st.builds(
            lambda i, c: wallet_pb2.CompleteRecoveryRequest(recovery_id=i, code=c),
            st.one_of(st.uuids().map(lambda u: f"rc_{u.hex}"), st.text(max_size=40)),
            st.one_of(st.integers(0, 999_999).map(lambda n: f"{n:06d}"), st.text(max_size=8)),
        ),
        # Login: the stack's keys (active, revoked) and strangers; challenges unknown or malformed.
        "BeginLogin": st.builds(
            lambda k: wallet_pb2.BeginLoginRequest(pubkey=k),
            st.one_of(
                st.sampled_from([identity_active.pubkey, identity_revoked.pubkey]),
                st.builds(lambda: IdentityKey.generate().pubkey),
                st.binary(max_size=40),
            ),
        ),
        "CompleteLogin": st.builds(
            lambda i, sig: wallet_pb2.CompleteLoginRequest(challenge_id=i, signature=sig),
            st.one_of(st.uuids().map(lambda u: f"lc_{u.hex}"), st.text(max_size=40)),
            st.one_of(
                st.binary(max_size=80), st.binary(min_size=8, max_size=72).map(lambda b: identity_active.sign(b))
            ),
        ),
    }

    def close() -> None:
        channel.close()
        snapshot.close()
        loop.run(exits.aclose())
        factory.drop(database_url)

    return Stack(
        {WALLET_SERVICE: target, WALLET_ADMIN_SERVICE: target},
        hints,
        {
            **{f"{WALLET_SERVICE}.{name}": strategy for name, strategy in valid.items()},
            f"{WALLET_ADMIN_SERVICE}.GetReconciliation": st.just(wallet_pb2.GetReconciliationRequest()),
        },
        {
            "accounts": accounts,
            "addresses": deposit_addresses,
            "transactions": transactions,
            "queued": started["queued"],
            "reconciliation": started["reconciliation"],
            "database_url": database_url,
            "identity_active": identity_active,
            "identity_revoked": identity_revoked,
            "intent_job": started["intent_job"],
            "session_token": started["session_token"],
        },
        close,
    )
