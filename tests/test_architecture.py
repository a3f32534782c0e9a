"""The dependency rule of docs/architecture.md, kept by reading every module's imports.

- `domain/` knows ports, not adapters: nothing under a service's `domain/` imports that service's
  `store/`, `rpc/`, `adapters/`, `backends/`, `workers/`, `settings` or `app`, nor a transport or
  driver (gRPC, generated protobuf code, asyncpg, Redis, HTTP clients), nor the kit's server side.
- No service imports another service: they meet only over the protobuf contracts.
- The kit imports no service and no tool.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ROOT / "services"
OUTER_LAYERS = ("store", "rpc", "adapters", "backends", "workers", "settings", "app", "cli")
# Transports, drivers and the kit's process plumbing: what adapters and composition roots use.
FORBIDDEN_IN_DOMAIN = (
    "grpc",
    "grpc_status",
    "google.rpc",
    "proofline",
    "asyncpg",
    "psycopg",
    "redis",
    "httpx",
    "aiohttp",
    "proofline_kit.rpc",
    "proofline_kit.runtime",
    "proofline_kit.database",
    "proofline_kit.cache",
)


def imported_modules(source: str, module: str) -> Iterator[str]:
    """Every module a source imports, anywhere in it (lazy imports inside functions too)."""
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                yield f"{base}.{node.module}" if node.module else base
            elif node.module:
                yield node.module


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(f"{prefix}.")


def domain_violations(source: str, module: str) -> list[str]:
    service = module.split(".")[1]
    outer = [f"services.{service}.{layer}" for layer in OUTER_LAYERS]
    return [
        name
        for name in imported_modules(source, module)
        if any(within(name, p) for p in (*outer, *FORBIDDEN_IN_DOMAIN))
    ]


def cross_service_violations(source: str, module: str) -> list[str]:
    own = ".".join(module.split(".")[:2])
    return [
        name
        for name in imported_modules(source, module)
        if within(name, "services") and name.count(".") >= 1 and not within(name, own)
    ]


def kit_violations(source: str, module: str) -> list[str]:
    return [
        name for name in imported_modules(source, module) if within(name, "services") or within(name, "proofline_tools")
    ]


def modules(root: Path) -> Iterator[tuple[str, str]]:
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(ROOT).with_suffix("")
        yield ".".join(relative.parts), path.read_text()


def test_the_checks_catch_what_they_forbid() -> None:
    assert domain_violations(
        "from services.utxo.store.store import UtxoStore\nimport grpc", "services.utxo.domain.pool"
    ) == ["services.utxo.store.store", "grpc"]
    assert domain_violations("def f():\n    from ..adapters import chain\n", "services.utxo.domain.pool") == [
        "services.utxo.adapters"
    ]
    assert domain_violations("from services.utxo.domain.models import Utxo", "services.utxo.domain.pool") == []
    assert cross_service_violations("from services.utxo.domain import models", "services.publisher.app") == [
        "services.utxo.domain"
    ]
    assert kit_violations("import services.publisher.app", "proofline_kit.runtime") == ["services.publisher.app"]


def test_domain_modules_know_ports_not_adapters() -> None:
    domains = sorted(SERVICES.glob("*/domain"))
    assert len(domains) >= 3
    found = {
        module: bad
        for domain in domains
        for module, source in modules(domain)
        if (bad := domain_violations(source, module))
    }
    assert found == {}


@pytest.mark.parametrize("service", sorted(p.name for p in SERVICES.iterdir() if (p / "__init__.py").exists()))
def test_no_service_imports_another(service: str) -> None:
    found = {
        module: bad
        for module, source in modules(SERVICES / service)
        if (bad := cross_service_violations(source, module))
    }
    assert found == {}


def test_the_kit_imports_no_service_and_no_tool() -> None:
    found = {
        module: bad for module, source in modules(ROOT / "proofline_kit") if (bad := kit_violations(source, module))
    }
    assert found == {}


def test_the_simulated_chain_knows_none_of_its_faces_and_chainsim_none_of_the_kits_chain_clients() -> None:
    """chainsim is the independent stand-in that the kit's ARC and WhatsOnChain clients are tested
    against: sharing their code would let a mistake agree with itself on both sides."""
    faces = ("services.chainsim.arc", "services.chainsim.woc", "services.chainsim.control", "services.chainsim.app")
    found = {
        module: bad
        for module, source in modules(SERVICES / "chainsim" / "chain")
        if (bad := [n for n in imported_modules(source, module) if any(within(n, f) for f in faces)])
    }
    found |= {
        module: bad
        for module, source in modules(SERVICES / "chainsim")
        if (bad := [n for n in imported_modules(source, module) if within(n, "proofline_kit.chain")])
    }
    assert found == {}
