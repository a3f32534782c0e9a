"""Every RPC x every caller: who gets in, who is refused, and that a refusal changes nothing.

The expected outcomes transcribe docs/api.md's auth table ("Conventions", Auth) and the signer's
per-key ACL (signer.proto, SIGNER_ACL): the `admin` role passes every check; a missing bearer
token is UNAUTHENTICATED/TOKEN_MISSING, an unknown one UNAUTHENTICATED/TOKEN_INVALID; a caller
without the role is PERMISSION_DENIED with the role reason. Every request is well formed, so the
call reaches the authorization check. Health and reflection need no token.

The wallet's identity RPCs (RegisterIdentity ... WatchIntentJob) follow the money RPCs' rule: role
`wallet` or `admin`, checked before anything is forwarded to the publisher.

One more caller, `session`: a real session token of the funded account, from a real login in the
wallet stack's set-up (BeginLogin -> CompleteLogin). The wallet takes it as a caller limited to that
account (docs/api.md "Session callers"); every other service does not know it (TOKEN_INVALID).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from proofline.common.v1 import common_pb2
from proofline.publisher.v1 import publisher_pb2
from proofline.signer.v1 import signer_pb2
from proofline.utxo.v1 import utxo_pb2
from proofline.wallet.v1 import wallet_pb2

from proofline_tools.identity.shares import split_secret
from tests.fuzz.contract import Answer, Findings, Metadata, Target, checked_call
from tests.fuzz.stacks import (
    PUBLISHER_SERVICE,
    SIGNER_SERVICE,
    UTXO_ADMIN_SERVICE,
    UTXO_SERVICE,
    WALLET_ADMIN_SERVICE,
    WALLET_IDENTITY_RPCS,
    WALLET_LOCAL_RPCS,
    WALLET_SERVICE,
    Stack,
    bearer,
    service,
)
from tests.publisher.conftest import IdentityKey
from tests.signer_gateway.conftest import OUTSIDE
from tests.utxo.chain_stack import CHANGE
from tests.wallet.conftest import RECIPIENT

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED
ROLE_REASONS = {"ROLE_REQUIRED", "ADMIN_REQUIRED", "KEY_ACCESS_DENIED"}
ANY_TOKEN_REASON = {"TOKEN_MISSING", "TOKEN_INVALID"}

# The 13 callers: six without usable credentials, one per role, one with no role, one with keys only.
NO_CREDENTIALS: dict[str, tuple[Metadata, set[str]]] = {
    "no authorization header": ((), {"TOKEN_MISSING"}),
    "empty authorization header": ((("authorization", ""),), ANY_TOKEN_REASON),
    "'Bearer' alone": ((("authorization", "Bearer"),), ANY_TOKEN_REASON),
    "'Bearer' and spaces": ((("authorization", "Bearer   "),), ANY_TOKEN_REASON),
    "'Basic x'": ((("authorization", "Basic x"),), ANY_TOKEN_REASON),
    "unknown token": ((("authorization", "Bearer fz-wrong-token-0001"),), {"TOKEN_INVALID"}),
}
CALLERS = ["admin", "pool", "publish", "registrar", "wallet", "norole", "acl"]
AUTHENTICATED = set(CALLERS)


# What a session of the funded account gets from each wallet RPC (WALLET_USER_SENDS=0 in the stack):
# OK for the reads of its account and the intents of its keys, ROLE_REQUIRED for the rest.
SESSION_ALLOWED = frozenset(
    {
        "GetAccount",
        "GetBalance",
        "ListDepositAddresses",
        "ListTransactions",
        "GetTransaction",
        "WatchTransaction",
        "ListIdentities",
        "SubmitIntent",
        "SubmitIntentBatch",
        "GetIntentJob",
        "WatchIntentJob",
    }
)


@dataclass(frozen=True)
class Rule:
    allowed: frozenset[str]
    reason: str  # the PERMISSION_DENIED reason of everybody else
    item_level: bool = False  # refusals may come as per-item errors of an OK answer
    succeeds: bool = False  # the allowed callers' request is valid for them: they get OK


def _rule(*callers: str, reason: str, item_level: bool = False, succeeds: bool = False) -> Rule:
    return Rule(frozenset(callers), reason, item_level, succeeds)


KEY_ACL = _rule("admin", "acl", reason="KEY_ACCESS_DENIED")
RULES: dict[str, Rule] = {
    # signer.v1: per-key ACL (the acl caller may use fz-acl-*), admin-only key management.
    f"{SIGNER_SERVICE}.Sign": KEY_ACL,
    f"{SIGNER_SERVICE}.SignTransaction": KEY_ACL,
    f"{SIGNER_SERVICE}.SignTransactions": _rule("admin", "acl", reason="KEY_ACCESS_DENIED", item_level=True),
    f"{SIGNER_SERVICE}.GetPublicKey": KEY_ACL,
    f"{SIGNER_SERVICE}.CreateKey": _rule("admin", reason="ADMIN_REQUIRED"),
    f"{SIGNER_SERVICE}.SetKeyPolicy": _rule("admin", reason="ADMIN_REQUIRED"),
    # ListKeys is open to every caller; it lists only the keys the caller's ACL covers.
    f"{SIGNER_SERVICE}.ListKeys": _rule(*CALLERS, reason="KEY_ACCESS_DENIED"),
    # utxo.v1: the pool role; the admin service: admin.
    **{
        f"{UTXO_SERVICE}.{m.name}": _rule("admin", "pool", reason="ROLE_REQUIRED")
        for m in service(UTXO_SERVICE).methods
    },
    **{
        f"{UTXO_ADMIN_SERVICE}.{m.name}": _rule("admin", reason="ADMIN_REQUIRED")
        for m in service(UTXO_ADMIN_SERVICE).methods
    },
    # publisher.v1: identity RPCs need registrar, Publish/PublishBatch publish, reads either.
    **{
        f"{PUBLISHER_SERVICE}.{name}": _rule("admin", "registrar", reason="ROLE_REQUIRED")
        for name in ("RegisterIdentity", "RevokeIdentity", "ListIdentities")
    },
    **{
        f"{PUBLISHER_SERVICE}.{name}": _rule("admin", "publish", reason="ROLE_REQUIRED")
        for name in ("Publish", "PublishBatch")
    },
    **{
        f"{PUBLISHER_SERVICE}.{name}": _rule("admin", "publish", "registrar", reason="ROLE_REQUIRED")
        for name in ("GetJob", "ListJobs", "WatchJob")
    },
    # wallet.v1: the wallet's own RPCs (money, sign-up) need `wallet` (wallet.proto: "role `wallet` ... or `admin`");
    # WalletAdminService needs `admin` only, refused with ROLE_REQUIRED (docs/api.md).
    **{f"{WALLET_SERVICE}.{name}": _rule("admin", "wallet", reason="ROLE_REQUIRED") for name in WALLET_LOCAL_RPCS},
    # The identity RPCs: the same rule (account-scoped calls of the front end), before any forwarding.
    **{
        f"{WALLET_SERVICE}.{name}": _rule("admin", "wallet", reason="ROLE_REQUIRED", succeeds=True)
        for name in WALLET_IDENTITY_RPCS
    },
    f"{WALLET_ADMIN_SERVICE}.GetReconciliation": _rule("admin", reason="ROLE_REQUIRED"),
}
STACK_OF = {
    SIGNER_SERVICE: "signer_stack",
    UTXO_SERVICE: "utxo_stack",
    UTXO_ADMIN_SERVICE: "utxo_stack",
    PUBLISHER_SERVICE: "publisher_stack",
    WALLET_SERVICE: "wallet_stack",
    WALLET_ADMIN_SERVICE: "wallet_stack",
}
ALL_RPCS = [f"{name}.{m.name}" for name in STACK_OF for m in service(name).methods]


def test_the_matrix_covers_every_served_rpc() -> None:
    assert sorted(RULES) == sorted(ALL_RPCS)
    assert len(ALL_RPCS) == 54
    assert {m.name for m in service(WALLET_SERVICE).methods} >= SESSION_ALLOWED


# --- well-formed requests, one per RPC -------------------------------------------------------------

Build = Callable[[Stack, str], Message]


def _hex(tag: str) -> str:
    return os.urandom(32).hex() if not tag else (tag.encode().hex() * 32)[:64]


def _signer_tx(stack: Stack) -> signer_pb2.TransactionToSign:
    transactions: list[signer_pb2.TransactionToSign] = stack.data["transactions"]
    [first] = [t for t in transactions if len(t.input_keys) == 1 and t.input_keys[0].key_id == "fz-acl-1"]
    return first


def _funded(stack: Stack) -> str:
    account_id: str = stack.data["accounts"]["funded"].account_id
    return account_id


REQUESTS: dict[str, Build] = {
    f"{SIGNER_SERVICE}.Sign": lambda s, rid: signer_pb2.SignRequest(
        request_id=rid, items=[signer_pb2.SignItem(key_id="fz-acl-1", digest=os.urandom(32))]
    ),
    f"{SIGNER_SERVICE}.SignTransaction": lambda s, rid: signer_pb2.SignTransactionRequest(
        request_id=rid,
        unsigned_tx=_signer_tx(s).unsigned_tx,
        spent_outputs=_signer_tx(s).spent_outputs,
        input_keys=_signer_tx(s).input_keys,
    ),
    f"{SIGNER_SERVICE}.SignTransactions": lambda s, rid: signer_pb2.SignTransactionsRequest(
        request_id=rid, transactions=[_signer_tx(s)]
    ),
    f"{SIGNER_SERVICE}.GetPublicKey": lambda s, rid: signer_pb2.GetPublicKeyRequest(key_id="fz-acl-1"),
    f"{SIGNER_SERVICE}.CreateKey": lambda s, rid: signer_pb2.CreateKeyRequest(
        request_id=rid, key_id=f"fz-acl-{rid[-24:]}", backend=signer_pb2.KEY_BACKEND_LOCAL
    ),
    f"{SIGNER_SERVICE}.ListKeys": lambda s, rid: signer_pb2.ListKeysRequest(),
    f"{SIGNER_SERVICE}.SetKeyPolicy": lambda s, rid: signer_pb2.SetKeyPolicyRequest(
        request_id=rid, key_id="fz-acl-1", policy=signer_pb2.KeyPolicy(allowed_destinations=[OUTSIDE])
    ),
    f"{UTXO_SERVICE}.LeaseUtxos": lambda s, rid: utxo_pb2.LeaseUtxosRequest(
        request_id=rid, purpose=utxo_pb2.UTXO_PURPOSE_PUBLISH, count=1, lease_duration=Duration(seconds=60)
    ),
    f"{UTXO_SERVICE}.RenewLease": lambda s, rid: utxo_pb2.RenewLeaseRequest(
        request_id=rid, lease_id=_hex("lease")[:32], fencing_token=1, lease_duration=Duration(seconds=60)
    ),
    f"{UTXO_SERVICE}.ReleaseLease": lambda s, rid: utxo_pb2.ReleaseLeaseRequest(
        request_id=rid, lease_id=_hex("lease")[:32]
    ),
    f"{UTXO_SERVICE}.CommitSpend": lambda s, rid: utxo_pb2.CommitSpendRequest(
        request_id=rid,
        lease_id=_hex("lease")[:32],
        fencing_token=1,
        spends=[utxo_pb2.Spend(txid=_hex(""), inputs=[s.data["leases"][0].utxos[0].outpoint])],
    ),
    f"{UTXO_SERVICE}.ReportConflict": lambda s, rid: utxo_pb2.ReportConflictRequest(
        request_id=rid,
        lease_id=_hex("lease")[:32],
        fencing_token=1,
        outpoints=[s.data["leases"][0].utxos[0].outpoint],
        kind=utxo_pb2.CONFLICT_KIND_DOUBLE_SPEND,
        competing_txids=[_hex("")],
    ),
    f"{UTXO_SERVICE}.ReportAccepted": lambda s, rid: utxo_pb2.ReportAcceptedRequest(
        request_id=rid, txids=[s.data["leases"][0].utxos[0].outpoint.txid]
    ),
    f"{UTXO_SERVICE}.AddOutputs": lambda s, rid: utxo_pb2.AddOutputsRequest(
        request_id=rid,
        outputs=[
            utxo_pb2.NewOutput(
                outpoint=common_pb2.Outpoint(txid=_hex(""), vout=0),
                satoshis=1_000,
                locking_script=bytes.fromhex("76a914" + "22" * 20 + "88ac"),
                owner_key_id="publish-key",
                purpose=utxo_pb2.UTXO_PURPOSE_PUBLISH,
            )
        ],
    ),
    f"{UTXO_SERVICE}.ListUtxos": lambda s, rid: utxo_pb2.ListUtxosRequest(),
    f"{UTXO_SERVICE}.GetPoolHealth": lambda s, rid: utxo_pb2.GetPoolHealthRequest(),
    f"{UTXO_ADMIN_SERVICE}.SyncFromChain": lambda s, rid: utxo_pb2.SyncFromChainRequest(request_id=rid, dry_run=True),
    f"{UTXO_ADMIN_SERVICE}.Split": lambda s, rid: utxo_pb2.SplitRequest(
        request_id=rid, dry_run=True, output_count=2, output_satoshis=1_000, ignore_cooldown=True
    ),
    f"{UTXO_ADMIN_SERVICE}.Sweep": lambda s, rid: utxo_pb2.SweepRequest(
        request_id=rid, dry_run=True, change_address=s.data["addresses"][CHANGE], change_key_id=CHANGE
    ),
    f"{UTXO_ADMIN_SERVICE}.RunMaintenance": lambda s, rid: utxo_pb2.RunMaintenanceRequest(
        request_id=rid, action=utxo_pb2.MAINTENANCE_ACTION_REAP_LEASES, dry_run=True
    ),
    f"{PUBLISHER_SERVICE}.RegisterIdentity": lambda s, rid: publisher_pb2.RegisterIdentityRequest(
        request_id=rid, pubkey=IdentityKey.generate().pubkey, label="matrix"
    ),
    f"{PUBLISHER_SERVICE}.RevokeIdentity": lambda s, rid: publisher_pb2.RevokeIdentityRequest(
        request_id=rid, pubkey=s.data["revoked"].pubkey, reason="matrix"
    ),
    f"{PUBLISHER_SERVICE}.ListIdentities": lambda s, rid: publisher_pb2.ListIdentitiesRequest(),
    f"{PUBLISHER_SERVICE}.Publish": lambda s, rid: publisher_pb2.PublishRequest(
        request_id=rid, intent=s.data["active"].intent()
    ),
    f"{PUBLISHER_SERVICE}.PublishBatch": lambda s, rid: publisher_pb2.PublishBatchRequest(
        request_id=rid, intents=[s.data["active"].intent()]
    ),
    f"{PUBLISHER_SERVICE}.GetJob": lambda s, rid: publisher_pb2.GetJobRequest(job_id=s.data["jobs"][0].job_id),
    f"{PUBLISHER_SERVICE}.ListJobs": lambda s, rid: publisher_pb2.ListJobsRequest(),
    f"{PUBLISHER_SERVICE}.WatchJob": lambda s, rid: publisher_pb2.WatchJobRequest(
        job_id=s.data["jobs"][0].job_id, until=publisher_pb2.JOB_STATUS_QUEUED
    ),
    f"{WALLET_SERVICE}.CreateAccount": lambda s, rid: wallet_pb2.CreateAccountRequest(
        request_id=rid, external_id=f"matrix-{rid}", label="matrix"
    ),
    f"{WALLET_SERVICE}.GetAccount": lambda s, rid: wallet_pb2.GetAccountRequest(account_id=_funded(s)),
    f"{WALLET_SERVICE}.ListAccounts": lambda s, rid: wallet_pb2.ListAccountsRequest(),
    f"{WALLET_SERVICE}.NewDepositAddress": lambda s, rid: wallet_pb2.NewDepositAddressRequest(
        request_id=rid, account_id=_funded(s), label="matrix"
    ),
    f"{WALLET_SERVICE}.ListDepositAddresses": lambda s, rid: wallet_pb2.ListDepositAddressesRequest(
        account_id=_funded(s)
    ),
    f"{WALLET_SERVICE}.GetBalance": lambda s, rid: wallet_pb2.GetBalanceRequest(account_id=_funded(s)),
    f"{WALLET_SERVICE}.EstimateFee": lambda s, rid: wallet_pb2.EstimateFeeRequest(
        account_id=_funded(s), to_address=RECIPIENT, amount_satoshis=1_000
    ),
    f"{WALLET_SERVICE}.Send": lambda s, rid: wallet_pb2.SendRequest(
        request_id=rid, account_id=_funded(s), to_address=RECIPIENT, amount_satoshis=1_000
    ),
    f"{WALLET_SERVICE}.ListTransactions": lambda s, rid: wallet_pb2.ListTransactionsRequest(account_id=_funded(s)),
    f"{WALLET_SERVICE}.GetTransaction": lambda s, rid: wallet_pb2.GetTransactionRequest(
        transaction_id=s.data["queued"].transaction_id
    ),
    f"{WALLET_SERVICE}.WatchTransaction": lambda s, rid: wallet_pb2.WatchTransactionRequest(
        transaction_id=s.data["queued"].transaction_id
    ),
    f"{WALLET_SERVICE}.RegisterIdentity": lambda s, rid: _register(s, rid),
    f"{WALLET_SERVICE}.RevokeIdentity": lambda s, rid: wallet_pb2.RevokeIdentityRequest(
        request_id=rid, account_id=_funded(s), pubkey=s.data["identity_revoked"].pubkey, reason="matrix"
    ),
    f"{WALLET_SERVICE}.ListIdentities": lambda s, rid: wallet_pb2.ListIdentitiesRequest(account_id=_funded(s)),
    f"{WALLET_SERVICE}.SubmitIntent": lambda s, rid: wallet_pb2.SubmitIntentRequest(
        request_id=rid, account_id=_funded(s), intent=s.data["identity_active"].intent()
    ),
    f"{WALLET_SERVICE}.SubmitIntentBatch": lambda s, rid: wallet_pb2.SubmitIntentBatchRequest(
        request_id=rid, account_id=_funded(s), intents=[s.data["identity_active"].intent()]
    ),
    f"{WALLET_SERVICE}.GetIntentJob": lambda s, rid: wallet_pb2.GetIntentJobRequest(
        account_id=_funded(s), job_id=s.data["intent_job"].job_id
    ),
    f"{WALLET_SERVICE}.WatchIntentJob": lambda s, rid: wallet_pb2.WatchIntentJobRequest(
        account_id=_funded(s), job_id=s.data["intent_job"].job_id, until=publisher_pb2.JOB_STATUS_QUEUED
    ),
    f"{WALLET_SERVICE}.StartSignUp": lambda s, rid: wallet_pb2.StartSignUpRequest(email=f"{rid.lower()}@example.com"),
    f"{WALLET_SERVICE}.CompleteSignUp": lambda s, rid: wallet_pb2.CompleteSignUpRequest(
        signup_id=f"su_{os.urandom(16).hex()}", code="123456"
    ),
    # A share of a fresh 3-of-5 split each time: the first allowed caller's is kept, the next is
    # SHARES_MISMATCH. No SMTP server in this stack: BeginRecovery does not get as far as a mail.
    f"{WALLET_SERVICE}.StoreBackupShares": lambda s, rid: wallet_pb2.StoreBackupSharesRequest(
        request_id=rid,
        account_id=_funded(s),
        pubkey=s.data["identity_active"].pubkey,
        shares=split_secret(os.urandom(32), threshold=3, count=5)[:1],
    ),
    f"{WALLET_SERVICE}.BeginRecovery": lambda s, rid: wallet_pb2.BeginRecoveryRequest(
        account_id=_funded(s), pubkey=s.data["identity_active"].pubkey
    ),
    f"{WALLET_SERVICE}.CompleteRecovery": lambda s, rid: wallet_pb2.CompleteRecoveryRequest(
        recovery_id=f"rc_{os.urandom(16).hex()}", code="123456"
    ),
    f"{WALLET_SERVICE}.BeginLogin": lambda s, rid: wallet_pb2.BeginLoginRequest(
        pubkey=s.data["identity_active"].pubkey
    ),
    f"{WALLET_SERVICE}.CompleteLogin": lambda s, rid: wallet_pb2.CompleteLoginRequest(
        challenge_id=f"lc_{os.urandom(16).hex()}", signature=s.data["identity_active"].sign(b"matrix")
    ),
    f"{WALLET_ADMIN_SERVICE}.GetReconciliation": lambda s, rid: wallet_pb2.GetReconciliationRequest(),
}


def _register(stack: Stack, request_id: str) -> wallet_pb2.RegisterIdentityRequest:
    """A fresh key with its consent proof for the funded account."""
    key = IdentityKey.generate()
    account_id = _funded(stack)
    proof = key.intent(key.payload({"accountId": account_id, "type": "proofline.identity.register"}, aud=None))
    return wallet_pb2.RegisterIdentityRequest(
        request_id=request_id, account_id=account_id, pubkey=key.pubkey, label="matrix", proof=proof
    )


def _item_reasons(rpc: str, answer: Answer) -> list[str]:
    """The per-item error reasons of an OK SignTransactions answer."""
    assert rpc.endswith("SignTransactions") and answer.response is not None
    results = signer_pb2.SignTransactionsResponse.FromString(answer.response).results
    return [r.error.reason if r.HasField("error") else "" for r in results]


def _allowed_problem(rpc: str, rule: Rule, answer: Answer) -> str:
    if answer.code == UNAUTHENTICATED or (answer.code == PERMISSION_DENIED and answer.reason in ROLE_REASONS):
        return "was refused"
    if rule.item_level and answer.code == grpc.StatusCode.OK and rule.reason in _item_reasons(rpc, answer):
        return f"an item was refused {rule.reason}"
    if rule.succeeds and answer.code != grpc.StatusCode.OK:
        return f"got {answer.code.name}/{answer.reason}"
    return ""


def _refused_problem(rpc: str, rule: Rule, answer: Answer) -> str:
    if rule.item_level and answer.code == grpc.StatusCode.OK:
        items = _item_reasons(rpc, answer)
        return "" if items and all(r == rule.reason for r in items) else f"{rule.reason} (items: {items})"
    if answer.code != PERMISSION_DENIED or answer.reason != rule.reason:
        return f"PERMISSION_DENIED/{rule.reason}"
    return ""


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label).strip("-")[:20]


@pytest.mark.parametrize("rpc", ALL_RPCS, ids=lambda name: name.rsplit(".", 2)[1] + "." + name.rsplit(".", 1)[1])
def test_every_caller_gets_what_the_auth_table_says(request: pytest.FixtureRequest, rpc: str) -> None:
    stack: Stack = request.getfixturevalue(STACK_OF[rpc.rsplit(".", 1)[0]])
    [method] = [m for m in stack.methods if m.full_name == rpc]
    target = stack.target(method)
    rule = RULES[rpc]
    findings = Findings()
    name = f"{method.containing_service.name}.{method.name}"

    for label, (metadata, reasons) in NO_CREDENTIALS.items():
        built = REQUESTS[rpc](stack, f"am-{_slug(label)}-{method.name}-{os.urandom(4).hex()}")
        answer = checked_call(target, method, built, findings, metadata=metadata, timeout_s=10)
        if answer.code != UNAUTHENTICATED or answer.reason not in reasons:
            findings.add(name, f"{label}: expected UNAUTHENTICATED/{' or '.join(sorted(reasons))}", built, answer)

    for caller in CALLERS:
        built = REQUESTS[rpc](stack, f"am-{caller}-{method.name}-{os.urandom(4).hex()}")
        answer = checked_call(target, method, built, findings, metadata=bearer(caller), timeout_s=10)
        if caller in rule.allowed:
            problem = _allowed_problem(rpc, rule, answer)
            if problem:
                findings.add(name, f"{caller} is allowed but {problem}", built, answer)
        else:
            problem = _refused_problem(rpc, rule, answer)
            if problem:
                findings.add(name, f"{caller} must be refused {problem}", built, answer)

    session: str = request.getfixturevalue("wallet_stack").data["session_token"]
    built = REQUESTS[rpc](stack, f"am-session-{method.name}-{os.urandom(4).hex()}")
    answer = checked_call(
        target, method, built, findings, metadata=(("authorization", f"Bearer {session}"),), timeout_s=10
    )
    problem = _session_problem(method, answer)
    if problem:
        findings.add(name, f"session: expected {problem}", built, answer)

    assert not findings, findings.report()


def _session_problem(method: MethodDescriptor, answer: Answer) -> str:
    service_name = method.containing_service.full_name
    if service_name not in (WALLET_SERVICE, WALLET_ADMIN_SERVICE):
        ok = answer.code == UNAUTHENTICATED and answer.reason == "TOKEN_INVALID"
        return "" if ok else "UNAUTHENTICATED/TOKEN_INVALID (another service's token)"
    if service_name == WALLET_SERVICE and method.name in SESSION_ALLOWED:
        return "" if answer.code == grpc.StatusCode.OK else "OK (its own account)"
    ok = answer.code == PERMISSION_DENIED and answer.reason == "ROLE_REQUIRED"
    return "" if ok else "PERMISSION_DENIED/ROLE_REQUIRED"


def test_listkeys_shows_only_the_keys_of_the_callers_acl(signer_stack: Stack) -> None:
    [method] = [m for m in signer_stack.methods if m.name == "ListKeys"]
    target = signer_stack.target(method)
    seen: dict[str, list[str]] = {}
    findings = Findings()
    for caller in CALLERS:
        answer = checked_call(
            target, method, signer_pb2.ListKeysRequest(page_size=1000), findings, metadata=bearer(caller)
        )
        assert answer.code == grpc.StatusCode.OK and answer.response is not None, answer.describe()
        seen[caller] = [k.key_id for k in signer_pb2.ListKeysResponse.FromString(answer.response).keys]
    assert not findings, findings.report()
    assert {"fz-local-1", "fz-acl-1", "fz-kms-1"} <= set(seen["admin"])
    assert seen["acl"] and all(k.startswith("fz-acl-") or k == "fz-shared" for k in seen["acl"]), seen["acl"]
    for caller in ("pool", "publish", "registrar", "wallet", "norole"):
        assert seen[caller] == [], f"{caller} sees keys outside its ACL: {seen[caller]}"


def _open_calls(target: Target, service_name: str) -> tuple[health_pb2.HealthCheckResponse, list[str]]:
    health = target.channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )(health_pb2.HealthCheckRequest(service=service_name), timeout=10)
    reflect = target.channel.stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
    names = [s.name for answer in reflect for s in answer.list_services_response.service]
    return health, names


@pytest.mark.parametrize("service_name", list(STACK_OF), ids=lambda name: name.rsplit(".", 1)[1])
def test_health_and_reflection_need_no_token(request: pytest.FixtureRequest, service_name: str) -> None:
    stack: Stack = request.getfixturevalue(STACK_OF[service_name])
    health, names = _open_calls(stack.targets[service_name], service_name)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert service_name in names


def test_a_session_is_refused_every_other_account(wallet_stack: Stack) -> None:
    """The funded account's session, aimed at another account: ACCOUNT_FORBIDDEN where the request
    names the account, NOT_FOUND for another account's transaction looked up by id."""
    session = (("authorization", f"Bearer {wallet_stack.data['session_token']}"),)
    other = wallet_stack.data["accounts"]["pending"].account_id
    [theirs] = [t for t in wallet_stack.data["transactions"] if t.account_id == other]
    findings = Findings()
    aimed = 0
    for method in wallet_stack.methods:
        if method.containing_service.full_name != WALLET_SERVICE or method.name not in SESSION_ALLOWED:
            continue
        aimed += 1
        built: Any = REQUESTS[method.full_name](wallet_stack, f"am-other-{method.name}-{os.urandom(4).hex()}")
        if "account_id" in built.DESCRIPTOR.fields_by_name:
            built.account_id = other
            expected = (PERMISSION_DENIED, "ACCOUNT_FORBIDDEN")
        else:
            built.transaction_id = theirs.transaction_id
            expected = (grpc.StatusCode.NOT_FOUND, "TRANSACTION_NOT_FOUND")
        answer = checked_call(wallet_stack.target(method), method, built, findings, metadata=session, timeout_s=10)
        if (answer.code, answer.reason) != expected:
            findings.add(method.name, f"session on another account: expected {expected}", built, answer)
    assert aimed == len(SESSION_ALLOWED)
    assert not findings, findings.report()
