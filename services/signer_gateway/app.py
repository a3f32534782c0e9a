"""Composition root of the signing gateway: builds everything and owns its lifetime."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from proofline.signer.v1 import signer_pb2, signer_pb2_grpc

from proofline_kit.logging import get_logger
from proofline_kit.rpc.server import ServiceBinding
from proofline_kit.runtime import ServiceRuntime
from services.signer_gateway.backends.external_kms import HttpKmsBackend
from services.signer_gateway.backends.local_keystore import LocalKeystoreBackend
from services.signer_gateway.domain import ecdsa
from services.signer_gateway.domain.crypto_pool import CryptoPool
from services.signer_gateway.domain.gateway import SignerGateway
from services.signer_gateway.rpc.mappers import ERROR_DOMAIN
from services.signer_gateway.rpc.servicer import SignerServicer
from services.signer_gateway.settings import SignerSettings
from services.signer_gateway.store.signer_store import MIGRATIONS, SignerStore

SERVICE_NAME = signer_pb2.DESCRIPTOR.services_by_name["SignerService"].full_name


@dataclass
class RunningSigner:
    port: int
    gateway: SignerGateway
    stop: Callable[[], Awaitable[None]]


async def start_signer(settings: SignerSettings, *, configure_logs: bool = True) -> RunningSigner:
    ecdsa.require_native()
    runtime = await ServiceRuntime.open(settings.service, MIGRATIONS, configure_logs=configure_logs)
    http = httpx.AsyncClient(limits=httpx.Limits(max_connections=32, max_keepalive_connections=16))
    runtime.on_stop(http.aclose)
    external = (
        HttpKmsBackend(
            http,
            settings.kms_sign_url,
            settings.kms_api_key,
            max_attempts=settings.kms_max_attempts,
            request_timeout_s=settings.kms_timeout_ms / 1000,
        )
        if settings.kms_sign_url
        else None
    )
    store = SignerStore(runtime.db)
    crypto = CryptoPool(settings.crypto_workers)
    runtime.on_stop(crypto.close)
    gateway = SignerGateway(
        store,
        settings.acl,
        LocalKeystoreBackend(settings.keyring, crypto),
        external,
        settings.default_backend,
        crypto,
        settings.service.max_message_bytes,
    )
    resealed = await gateway.reseal_old_keys()
    servicer = SignerServicer(gateway, settings.network, settings.default_deadline_ms / 1000)
    port = await runtime.serve(
        ERROR_DOMAIN,
        [ServiceBinding(SERVICE_NAME, servicer, signer_pb2_grpc.add_SignerServiceServicer_to_server)],
        ready=store.ping,
    )
    get_logger("signer.app").info(
        "signer.started",
        port=port,
        metrics_port=settings.service.metrics_port,
        migrations_applied=runtime.migrations_applied,
        keys_resealed=resealed,
        backend=settings.default_backend.value,
    )
    return RunningSigner(port, gateway, runtime.stop)
