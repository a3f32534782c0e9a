"""signer_gateway configuration, read once from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from proofline_kit.settings import EnvReader, ServiceSettings, SettingsError, read_service_settings
from services.signer_gateway.domain.acl import KeyAcl
from services.signer_gateway.domain.addresses import Network
from services.signer_gateway.domain.keystore import MasterKeyError, MasterKeyring
from services.signer_gateway.domain.models import Backend


@dataclass(frozen=True, slots=True)
class SignerSettings:
    service: ServiceSettings
    keyring: MasterKeyring
    acl: KeyAcl
    network: Network
    default_backend: Backend
    kms_sign_url: str | None
    kms_api_key: str | None = field(repr=False)
    kms_timeout_ms: int
    kms_max_attempts: int
    default_deadline_ms: int
    crypto_workers: int


def read_signer_settings(env: EnvReader | None = None) -> SignerSettings:
    env = env or EnvReader()
    service = read_service_settings(
        env,
        service_name="signer_gateway",
        env_prefix="SIGNER",
        default_grpc_port=50051,
        default_metrics_port=9101,
        default_schema="signer",
    )
    kms_sign_url = env.optional_string("KMS_SIGN_URL")
    default_backend = env.choice("SIGNER_BACKEND", Backend, Backend.LOCAL)
    if default_backend is Backend.EXTERNAL_KMS and not kms_sign_url:
        raise SettingsError("SIGNER_BACKEND=external_kms needs KMS_SIGN_URL")
    return SignerSettings(
        service=service,
        keyring=_read_keyring(env),
        acl=KeyAcl.parse(env.string("SIGNER_ACL", "")) if env.optional_string("SIGNER_ACL") else KeyAcl({}),
        network=env.choice("SIGNER_NETWORK", Network, Network.TESTNET),
        default_backend=default_backend,
        kms_sign_url=kms_sign_url,
        kms_api_key=env.optional_string("KMS_API_KEY"),
        kms_timeout_ms=env.integer("KMS_TIMEOUT_MS", 5_000, minimum=100),
        kms_max_attempts=env.integer("KMS_MAX_ATTEMPTS", 3, minimum=1, maximum=10),
        default_deadline_ms=env.integer("SIGNER_DEFAULT_DEADLINE_MS", 10_000, minimum=100),
        crypto_workers=env.integer("SIGNER_CRYPTO_WORKERS", os.cpu_count() or 1, minimum=0, maximum=64),
    )


def _read_keyring(env: EnvReader) -> MasterKeyring:
    """SIGNER_MASTER_KEYS (`version:base64,...`) or SIGNER_MASTER_KEY_FILE; required in every mode."""
    try:
        inline = env.optional_string("SIGNER_MASTER_KEYS")
        if inline:
            return MasterKeyring.parse(inline)
        path = env.optional_string("SIGNER_MASTER_KEY_FILE")
        if path:
            return MasterKeyring.from_file(Path(path))
    except (MasterKeyError, OSError) as exc:
        raise SettingsError(f"signer master key: {exc}") from exc
    raise SettingsError("SIGNER_MASTER_KEYS or SIGNER_MASTER_KEY_FILE is required (the local keystore key)")
