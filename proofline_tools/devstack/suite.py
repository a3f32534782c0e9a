"""The suite's own processes: chainsim and the gRPC services, each `python -m services.<name>`."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from proofline_tools.devstack.config import ServiceSpec
from proofline_tools.devstack.procs import Launcher, ProcessSpec
from proofline_tools.devstack.readiness import poll_until, require_free_port

CHAINSIM = "chainsim"
_HOST = "127.0.0.1"
_PROBE_TIMEOUT_S = 1.0
# Local probes must never go through an HTTP proxy taken from the environment.
_GRPC_OPTIONS = (("grpc.enable_http_proxy", 0),)


@dataclass(frozen=True, slots=True)
class RunningService:
    name: str
    grpc_address: str
    metrics_url: str
    pid: int


@dataclass(frozen=True, slots=True)
class ChainsimUrls:
    arc_url: str
    woc_url: str
    pid: int


def services_root() -> Path | None:
    """The directory of the `services` package, found without importing any service."""
    spec = importlib.util.find_spec("services")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def is_runnable(root: Path | None, name: str) -> bool:
    """True when `python -m services.<name>` would run something."""
    return root is not None and (root / name / "__main__.py").is_file()


async def start_chainsim(
    launcher: Launcher, env: Mapping[str, str], port: int, snapshot: Path, ready_timeout_s: float
) -> ChainsimUrls:
    require_free_port(port, "CHAINSIM_PORT")
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    child_env = {**env, "CHAINSIM_PORT": str(port), "CHAINSIM_SNAPSHOT": str(snapshot)}
    child = await launcher.spawn(ProcessSpec(CHAINSIM, _module_argv(CHAINSIM), child_env))
    base_url = f"http://{_HOST}:{port}"
    await wait_http_ok(f"{base_url}/v1/health", ready_timeout_s, CHAINSIM)
    # WOC_URL is the API host, as for api.whatsonchain.com; the network travels in WOC_NETWORK.
    return ChainsimUrls(arc_url=base_url, woc_url=base_url, pid=child.pid)


async def start_service(
    launcher: Launcher, spec: ServiceSpec, env: Mapping[str, str], ready_timeout_s: float
) -> RunningService:
    """Start one service with `env` (which names its ports) and wait until its health says SERVING."""
    grpc_port, metrics_port = int(env[spec.grpc_port_env]), int(env[spec.metrics_port_env])
    require_free_port(grpc_port, spec.grpc_port_env)
    require_free_port(metrics_port, spec.metrics_port_env)
    child = await launcher.spawn(ProcessSpec(spec.name, _module_argv(spec.name), env))
    address = f"{_HOST}:{grpc_port}"
    await wait_serving(address, spec.health_service, ready_timeout_s, f"{spec.name} on {address}")
    return RunningService(spec.name, address, f"http://{_HOST}:{metrics_port}/metrics", child.pid)


def _module_argv(name: str) -> tuple[str, ...]:
    return (sys.executable, "-m", f"services.{name}")


async def wait_http_ok(url: str, timeout_s: float, what: str) -> None:
    async with httpx.AsyncClient(timeout=_PROBE_TIMEOUT_S, trust_env=False) as client:

        async def probe() -> bool:
            try:
                response = await client.get(url)
            except httpx.HTTPError:
                return False
            return response.status_code == httpx.codes.OK

        await poll_until(probe, timeout_s, f"{what} ({url})")


async def wait_serving(address: str, service: str, timeout_s: float, what: str) -> None:
    """Poll the standard gRPC health Check for `service` until it answers SERVING."""
    async with grpc.aio.insecure_channel(address, options=_GRPC_OPTIONS) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service=service)

        async def probe() -> bool:
            try:
                reply = await stub.Check(request, timeout=_PROBE_TIMEOUT_S)
            except grpc.aio.AioRpcError:
                return False
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

        await poll_until(probe, timeout_s, f"{what} (gRPC health of {service})")
