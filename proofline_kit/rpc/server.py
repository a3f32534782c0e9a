"""grpc.aio server bootstrap shared by every service: interceptors, health, reflection, metrics
endpoint and graceful shutdown."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry, start_http_server

from proofline_kit.auth import SessionVerifier, TokenDirectory
from proofline_kit.contract_rules import ContractRules
from proofline_kit.logging import get_logger
from proofline_kit.rpc.interceptors import AuthInterceptor, ObservabilityInterceptor, RpcMetrics
from proofline_kit.settings import ServiceSettings


@dataclass(frozen=True, slots=True)
class ServiceBinding:
    """One gRPC service to serve: its full name, the servicer and the generated add function."""

    full_name: str
    servicer: object
    add_to_server: Callable[[Any, grpc.aio.Server], None]


@dataclass(frozen=True, slots=True)
class ServerOptions:
    host: str
    port: int
    reflection: bool
    max_message_bytes: int
    shutdown_grace_s: float
    error_domain: str

    @classmethod
    def for_service(cls, service: ServiceSettings, error_domain: str) -> ServerOptions:
        return cls(
            host=service.grpc_host,
            port=service.grpc_port,
            reflection=service.reflection_enabled,
            max_message_bytes=service.max_message_bytes,
            shutdown_grace_s=service.shutdown_grace_ms / 1000,
            error_domain=error_domain,
        )


class GrpcServer:
    """Owns one grpc.aio server; create it inside the running event loop."""

    def __init__(
        self,
        options: ServerOptions,
        bindings: Sequence[ServiceBinding],
        tokens: TokenDirectory,
        registry: CollectorRegistry,
        session_verifier: SessionVerifier | None = None,
    ) -> None:
        self._options = options
        self._bindings = bindings
        self.health = health.aio.HealthServicer()
        self._server = grpc.aio.server(
            interceptors=[
                AuthInterceptor(tokens, options.error_domain, session_verifier),
                ObservabilityInterceptor(options.error_domain, RpcMetrics(registry), ContractRules()),
            ],
            options=[
                ("grpc.max_receive_message_length", options.max_message_bytes),
                ("grpc.max_send_message_length", options.max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        self.port = 0

    async def start(self) -> int:
        for binding in self._bindings:
            binding.add_to_server(binding.servicer, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        if self._options.reflection:
            names = [b.full_name for b in self._bindings]
            reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], self._server)
        self.port = self._server.add_insecure_port(f"{self._options.host}:{self._options.port}")
        if self.port == 0:
            raise OSError(f"cannot bind {self._options.host}:{self._options.port}")
        await self._server.start()
        for name in ["", *(b.full_name for b in self._bindings)]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        return self.port

    async def stop(self) -> None:
        """NOT_SERVING first, then let in-flight RPCs finish within the grace period."""
        await self.health.enter_graceful_shutdown()
        await self._server.stop(self._options.shutdown_grace_s)


class MetricsEndpoint:
    """Prometheus metrics over HTTP on the service's metrics port (0 = disabled)."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry) -> None:
        self._host, self._port, self._registry = host, port, registry
        self._server: Any = None

    def start(self) -> None:
        if self._port:
            self._server, _ = start_http_server(self._port, addr=self._host, registry=self._registry)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


async def wait_for_shutdown_signal() -> None:
    """Returns on the first SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    get_logger("server").info("shutdown.requested")


async def run_until_signalled(start: Callable[[], Awaitable[Callable[[], Awaitable[None]]]]) -> None:
    """Start a service, wait for SIGTERM/SIGINT, then run the stop function start returned."""
    stop = await start()
    try:
        await wait_for_shutdown_signal()
    finally:
        await stop()
