"""The "where does everything listen" banner printed once the stack is up."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from proofline_tools.devstack.demo import DemoPublish
from proofline_tools.devstack.provisioning import PoolKeys
from proofline_tools.devstack.suite import RunningService
from proofline_tools.devstack.wallet_demo import DemoWallet, sign_up_lines, wallet_demo_lines

SIGNER = "signer_gateway"
UTXO = "utxo"
PUBLISHER = "publisher"
WALLET = "wallet"
PUBLISH_METHOD = "proofline.publisher.v1.PublisherService/Publish"


@dataclass(frozen=True, slots=True)
class Dependency:
    """PostgreSQL, Redis or the chain: where it is and where it came from."""

    label: str
    url: str
    origin: str


@dataclass(frozen=True, slots=True)
class StackReport:
    services: tuple[RunningService, ...]
    not_started: tuple[str, ...]
    dependencies: tuple[Dependency, ...]
    admin_token: str | None  # None when AUTH_TOKENS came from the environment
    pool_keys: PoolKeys | None = None  # dev keys created for the utxo pool
    chain_url: str = ""
    demo: DemoPublish | None = None  # the funded demo pool and identity
    wallet_demo: DemoWallet | None = None  # the demo wallet account and its deposit address
    mail_folder: Path | None = None  # where the stack's own SMTP server keeps the mail


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def grpcurl_examples(signer_address: str, token: str | None) -> tuple[str, ...]:
    """Commands that work against a fresh stack (CreateKey is idempotent on its request_id)."""
    bearer = token if token is not None else "<a token from AUTH_TOKENS>"
    call = f"grpcurl -plaintext -H 'authorization: Bearer {bearer}'"
    service = "proofline.signer.v1.SignerService"
    return (
        f"grpcurl -plaintext {signer_address} list",
        f"""{call} -d '{{"request_id":"try-demo","key_id":"demo"}}' {signer_address} {service}/CreateKey""",
        f"""{call} -d '{{"key_id":"demo"}}' {signer_address} {service}/GetPublicKey""",
    )


def ready_banner(report: StackReport) -> list[str]:
    return [
        "",
        "  Proofline dev stack",
        "",
        *_service_table(report),
        "",
        *_dependency_lines(report.dependencies),
        *_try_lines(report),
        "",
    ]


def _service_table(report: StackReport) -> list[str]:
    if not report.services:
        lines = ["  no service started"]
    else:
        rows = [("service", "gRPC", "metrics", "pid")]
        rows += [(s.name, s.grpc_address, s.metrics_url, str(s.pid)) for s in report.services]
        lines = [f"  {name:<16} {grpc:<17} {metrics:<32} {pid}" for name, grpc, metrics, pid in rows]
    if report.not_started:
        skipped = ", ".join(report.not_started)
        lines.append(f"  not started (not implemented yet, or not in DEVSTACK_SERVICES): {skipped}")
    return lines


def _dependency_lines(dependencies: tuple[Dependency, ...]) -> list[str]:
    return [f"  {d.label:<11} {redact_url(d.url)}   ({d.origin})" for d in dependencies]


def _try_lines(report: StackReport) -> list[str]:
    signer = next((s for s in report.services if s.name == SIGNER), None)
    if signer is None:
        return []
    examples = list(grpcurl_examples(signer.grpc_address, report.admin_token))
    keys = report.pool_keys
    if report.demo is not None:
        return ["", "  try:", *(f"    {line}" for line in examples), *_demo_lines(report), *_wallet_lines(report)]
    if keys is not None and report.chain_url:
        examples.append(
            f"""curl -s -XPOST {report.chain_url}/_sim/fund -d '{{"address":"{keys.funding_address}","""
            f""""satoshis":1000000,"count":1}}'   # fund the pool's key {keys.funding_key_id}"""
        )
    return ["", "  try:", *(f"    {line}" for line in examples)]


def _demo_lines(report: StackReport) -> list[str]:
    demo = report.demo
    publisher = next((s for s in report.services if s.name == PUBLISHER), None)
    if demo is None or publisher is None:
        return []
    bearer = report.admin_token if report.admin_token is not None else "<a token from AUTH_TOKENS>"
    call = f"grpcurl -plaintext -H 'authorization: Bearer {bearer}'"
    hours = f"{demo.ttl_s / 3600:g} h"
    return [
        "",
        f"  publish (pool: {demo.available_utxos} publish UTXOs on chainsim;"
        f" demo identity {demo.identity_pubkey[:16]}…):",
        f"    # a signed intent, ready: answers once the job is SENT; valid for {hours}; sent again, the same job",
        f"    {call} -d '{demo.publish_request_json}' {publisher.grpc_address} {PUBLISH_METHOD}",
        "    # a fresh one, with your own record:",
        f"    .venv/bin/proofline-intent --key-file {demo.identity_key_file} --wait-for-sent"
        f""" --record '{{"note":"hi"}}' | {call} -d @ {publisher.grpc_address} {PUBLISH_METHOD}""",
        f"    curl -s -XPOST {report.chain_url}/_sim/mine -d '{{}}'   # mine it; the job goes CONFIRMED",
    ]


def _wallet_lines(report: StackReport) -> list[str]:
    wallet = next((s for s in report.services if s.name == WALLET), None)
    if report.wallet_demo is None or wallet is None:
        return []
    bearer = report.admin_token if report.admin_token is not None else "<a token from AUTH_TOKENS>"
    return [
        *wallet_demo_lines(report.wallet_demo, wallet.grpc_address, report.chain_url, bearer),
        *(sign_up_lines(wallet.grpc_address, report.mail_folder, bearer) if report.mail_folder else []),
    ]
