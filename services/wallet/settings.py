"""wallet configuration, read once from the environment."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field

from proofline_kit.chain import CallbackSettings, ChainSettings, FeeRate, read_callback_settings, read_chain_settings
from proofline_kit.settings import EnvReader, RunMode, ServiceSettings, SettingsError, read_service_settings
from proofline_kit.wire import MAX_SATOSHIS
from services.wallet.adapters.backup_sealer import parse_kek
from services.wallet.adapters.smtp_mailer import SmtpSecurity, SmtpSettings
from services.wallet.domain.chains import BSV
from services.wallet.domain.deposits import FollowConfig
from services.wallet.domain.history import WaitLimits
from services.wallet.domain.login import LoginConfig
from services.wallet.domain.models import Network
from services.wallet.domain.send_pipeline import PipelineConfig
from services.wallet.domain.sends import SendLimits
from services.wallet.domain.signup import SignUpConfig

# The utxo service's and the signer's gRPC ports as `make run` hands them to every service.
_UTXO_PORT_ENV, _UTXO_PORT = "UTXO_GRPC_PORT", 50052
_SIGNER_PORT_ENV, _SIGNER_PORT = "SIGNER_GRPC_PORT", 50051
_PUBLISHER_PORT_ENV, _PUBLISHER_PORT = "PUBLISHER_GRPC_PORT", 50053
_KEY_ID_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")
# WhatsOnChain bulk requests in flight at once (WALLET_WOC_BULK_CONCURRENCY / WOC_BULK_CONCURRENCY):
# the follower reads every transaction of a block 20 a request. Measured against chainsim on a
# 2-core machine, 2-4 at once read a block of 10,000 transactions 1.2-1.35x faster than 1 (medians),
# 6 or more slower again: the wallet's own CPU per request (the HTTP client) is the limit there, not
# chainsim's. A real WoC limits the request rate (services/wallet/README.md).
_WOC_BULK_CONCURRENCY = 4


@dataclass(frozen=True, slots=True)
class WalletSettings:
    service: ServiceSettings
    network: Network
    chain: ChainSettings
    fixed_fee_rate: FeeRate | None
    # Also broadcast through WhatsOnChain when ARC gives no verdict.
    woc_fallback: bool
    fee_ttl_s: float
    limits: SendLimits
    waits: WaitLimits
    follow: FollowConfig
    pipeline: PipelineConfig
    # Sends per account per minute (Redis); 0 = no limit.
    sends_per_minute: int
    # Per wallet key, enforced by the signer (the second line of defence).
    key_max_per_day_satoshis: int
    change_key_id: str
    utxo_addr: str
    utxo_token: str | None = field(repr=False)
    signer_addr: str
    signer_token: str | None = field(repr=False)
    # The publisher the identity side forwards to (its token needs roles `registrar` and `publish`).
    publisher_addr: str
    publisher_token: str | None = field(repr=False)
    rpc_timeout_s: float
    workers: bool
    worker_id: str
    poll_s: float
    # Build rounds running at once in this process (each claims its own sends): one round's waits on
    # the pool, the signer and the network overlap another's.
    build_workers: int
    follow_poll_s: float
    # How long intake prices sends against one reading of the pool's coins; 0 = read every time.
    candidate_ttl_s: float
    callbacks: CallbackSettings
    signup: SignUpConfig
    smtp: SmtpSettings
    # Keys the one-time codes' hashes (and the rate limiter's address keys).
    otp_secret: bytes = field(repr=False)
    # Sign-ups per address per hour and per caller per minute; 0 = no limit.
    signups_per_address: int
    signups_per_caller: int
    # The backup shares' key-encryption key (AES-256-GCM), 32 bytes.
    backup_kek: bytes = field(repr=False)
    recovery: SignUpConfig
    # Recoveries begun per account and per key, per day; 0 = no limit.
    recoveries_per_account: int
    recoveries_per_key: int
    login: LoginConfig
    # Derives each session token's HS256 key (HKDF-SHA256, bound to the pubkey and account).
    session_secret: bytes = field(repr=False)
    session_ttl_s: float
    # BeginLogin per pubkey and per caller per minute; 0 = no limit.
    logins_per_key: int
    logins_per_caller: int
    # Whether a session (a user's own login) may Send and EstimateFee from its account.
    user_sends: bool


def _ms(env: EnvReader, name: str, default: int, minimum: int = 1, maximum: int | None = None) -> float:
    return env.integer(name, default, minimum=minimum, maximum=maximum) / 1000


def read_wallet_settings(env: EnvReader | None = None) -> WalletSettings:
    env = env or EnvReader()
    service = read_service_settings(
        env,
        service_name="wallet",
        env_prefix="WALLET",
        default_grpc_port=50054,
        default_metrics_port=9104,
        default_schema="wallet",
    )
    chain = read_chain_settings(env, "WALLET", default_woc_bulk_concurrency=_WOC_BULK_CONCURRENCY)
    if chain.woc_url is None:
        raise SettingsError("the wallet needs WOC_URL (or WALLET_WOC_URL) to follow the chain")
    production = service.run_mode is RunMode.PRODUCTION
    utxo_token = env.optional_string("WALLET_UTXO_TOKEN")
    signer_token = env.optional_string("WALLET_SIGNER_TOKEN")
    publisher_token = env.optional_string("WALLET_PUBLISHER_TOKEN")
    callbacks_on = env.flag("WALLET_CALLBACK_ENABLED", True)
    callback_token = env.optional_string("WALLET_CALLBACK_TOKEN")
    smtp_host = env.string("WALLET_SMTP_HOST", "")
    otp_secret = env.optional_string("WALLET_OTP_SECRET")
    if otp_secret is not None and len(otp_secret) < 32:
        raise SettingsError("WALLET_OTP_SECRET must be at least 32 characters")
    backup_kek_text = env.optional_string("WALLET_BACKUP_KEK")
    backup_kek = parse_kek(backup_kek_text) if backup_kek_text is not None else None
    if backup_kek_text is not None and backup_kek is None:
        raise SettingsError("WALLET_BACKUP_KEK must be 32 bytes, as 64 hex digits or base64")
    session_secret = env.optional_string("WALLET_SESSION_SECRET")
    if session_secret is not None and len(session_secret) < 32:
        raise SettingsError("WALLET_SESSION_SECRET must be at least 32 characters")
    if production:
        missing = [
            name
            for name, value in (
                ("WALLET_UTXO_TOKEN", utxo_token),
                ("WALLET_SIGNER_TOKEN", signer_token),
                ("WALLET_PUBLISHER_TOKEN", publisher_token),
                ("WALLET_CALLBACK_TOKEN", callback_token if callbacks_on else "-"),
                ("WALLET_SMTP_HOST", smtp_host),
                ("WALLET_OTP_SECRET", otp_secret),
                ("WALLET_BACKUP_KEK", backup_kek_text),
                ("WALLET_SESSION_SECRET", session_secret),
            )
            if not value
        ]
        if missing:
            raise SettingsError(f"{', '.join(missing)} required in production mode")
    change_key_id = env.string("WALLET_CHANGE_KEY_ID", "wallet-change")
    if not 1 <= len(change_key_id) <= 128 or not set(change_key_id) <= _KEY_ID_CHARS:
        raise SettingsError("WALLET_CHANGE_KEY_ID must be 1-128 characters of [A-Za-z0-9._:-]")
    max_send = env.integer("WALLET_MAX_SEND_SATOSHIS", 100_000_000_000, minimum=1, maximum=MAX_SATOSHIS)
    min_rate = env.integer("WALLET_MIN_FEE_RATE", 1, minimum=1, maximum=1_000_000_000)
    max_rate = env.integer("WALLET_MAX_FEE_RATE", 1_000_000, minimum=1, maximum=1_000_000_000)
    if min_rate > max_rate:
        raise SettingsError("WALLET_MIN_FEE_RATE must not exceed WALLET_MAX_FEE_RATE")
    fixed_rate = env.integer("WALLET_FEE_RATE_SAT_PER_KB", 0, minimum=0, maximum=1_000_000_000)
    default_wait_ms = env.integer("WALLET_DEFAULT_WAIT_MS", 30_000, minimum=0)
    max_wait_ms = env.integer("WALLET_MAX_WAIT_MS", 300_000, minimum=0)
    if default_wait_ms > max_wait_ms:
        raise SettingsError("WALLET_DEFAULT_WAIT_MS must not exceed WALLET_MAX_WAIT_MS")
    utxo_port = env.integer(_UTXO_PORT_ENV, _UTXO_PORT, minimum=0, maximum=65535) or _UTXO_PORT
    signer_port = env.integer(_SIGNER_PORT_ENV, _SIGNER_PORT, minimum=0, maximum=65535) or _SIGNER_PORT
    publisher_port = env.integer(_PUBLISHER_PORT_ENV, _PUBLISHER_PORT, minimum=0, maximum=65535) or _PUBLISHER_PORT
    long_term_rate = env.integer("WALLET_LONG_TERM_FEE_RATE", min_rate, minimum=0, maximum=1_000_000_000)
    return WalletSettings(
        service=service,
        network=env.choice("WALLET_NETWORK", Network, Network.TESTNET),
        chain=chain,
        fixed_fee_rate=FeeRate(fixed_rate, 1000) if fixed_rate else None,
        woc_fallback=env.flag("WALLET_WOC_BROADCAST_FALLBACK", True),
        fee_ttl_s=_ms(env, "WALLET_FEE_RATE_TTL_MS", 300_000, minimum=100),
        limits=SendLimits(
            max_send_satoshis=max_send,
            daily_limit_satoshis=env.integer("WALLET_DAILY_LIMIT_SATOSHIS", 0, minimum=0, maximum=MAX_SATOSHIS),
            min_fee_rate_per_kb=min_rate,
            max_fee_rate_per_kb=max_rate,
            max_fee_satoshis=env.integer("WALLET_MAX_FEE_SATOSHIS", 1_000_000, minimum=1, maximum=MAX_SATOSHIS),
            long_term_fee_rate_per_kb=long_term_rate,
            send_confirmations=env.integer(
                "WALLET_SEND_CONFIRMATIONS", BSV.default_send_confirmations, minimum=1, maximum=10_000
            ),
        ),
        waits=WaitLimits(
            default_wait_s=default_wait_ms / 1000,
            max_wait_s=max_wait_ms / 1000,
            poll_s=_ms(env, "WALLET_WATCH_POLL_MS", 2_000, minimum=50, maximum=60_000),
        ),
        follow=FollowConfig(
            min_confirmations=env.integer(
                "WALLET_MIN_CONFIRMATIONS", BSV.default_deposit_confirmations, minimum=1, maximum=10_000
            ),
            coinbase_maturity=BSV.coinbase_maturity,
            drop_after_s=_ms(env, "WALLET_DEPOSIT_DROP_AFTER_MS", 600_000, minimum=0),
        ),
        pipeline=PipelineConfig(
            batch=env.integer("WALLET_SEND_BATCH", 100, minimum=1, maximum=1000),
            work_lease_s=_ms(env, "WALLET_WORK_LEASE_MS", 60_000, minimum=100),
            coin_lease_s=_ms(env, "WALLET_COIN_LEASE_MS", 600_000, minimum=1_000, maximum=3_600_000),
            long_term_fee_rate_per_kb=long_term_rate,
            max_builds=env.integer("WALLET_MAX_BUILDS", 10, minimum=1, maximum=1000),
            max_broadcast_attempts=env.integer("WALLET_MAX_BROADCAST_ATTEMPTS", 20, minimum=1, maximum=10_000),
            retry_base_s=_ms(env, "WALLET_RETRY_BASE_MS", 1_000),
            retry_max_s=_ms(env, "WALLET_RETRY_MAX_MS", 60_000),
            # At most the pool's UTXO_MAX_UNCONFIRMED_DEPTH (same default).
            max_unconfirmed_depth=env.integer("WALLET_UNCONFIRMED_DEPTH", 25, minimum=0, maximum=1000),
        ),
        sends_per_minute=env.integer("WALLET_SENDS_PER_MINUTE", 600, minimum=0),
        key_max_per_day_satoshis=env.integer("WALLET_KEY_DAILY_LIMIT_SATOSHIS", 0, minimum=0, maximum=MAX_SATOSHIS),
        change_key_id=change_key_id,
        utxo_addr=env.string("WALLET_UTXO_ADDR", f"127.0.0.1:{utxo_port}"),
        utxo_token=utxo_token,
        signer_addr=env.string("WALLET_SIGNER_ADDR", f"127.0.0.1:{signer_port}"),
        signer_token=signer_token,
        publisher_addr=env.string("WALLET_PUBLISHER_ADDR", f"127.0.0.1:{publisher_port}"),
        publisher_token=publisher_token,
        rpc_timeout_s=_ms(env, "WALLET_RPC_TIMEOUT_MS", 10_000, minimum=100),
        workers=env.flag("WALLET_WORKERS", True),
        worker_id=env.string("WALLET_WORKER_ID", f"{socket.gethostname()}/{os.getpid()}"),
        poll_s=_ms(env, "WALLET_POLL_MS", 500, minimum=10),
        build_workers=env.integer("WALLET_BUILD_WORKERS", 2, minimum=1, maximum=16),
        follow_poll_s=_ms(env, "WALLET_FOLLOW_POLL_MS", 1_000, minimum=10),
        candidate_ttl_s=_ms(env, "WALLET_CANDIDATE_TTL_MS", 500, minimum=0, maximum=60_000),
        callbacks=read_callback_settings(
            env,
            "WALLET",
            enabled=callbacks_on,
            token=callback_token,
            default_host=service.grpc_host,
            # Not the publisher's 8753: `make run` starts both on one host.
            default_port=8754,
        ),
        signup=SignUpConfig(
            code_ttl_s=_ms(env, "WALLET_SIGNUP_CODE_TTL_MS", 600_000, minimum=1_000, maximum=3_600_000),
            max_attempts=env.integer("WALLET_SIGNUP_MAX_ATTEMPTS", 5, minimum=1, maximum=20),
        ),
        smtp=SmtpSettings(
            host=smtp_host,
            port=env.integer("WALLET_SMTP_PORT", 587, minimum=1, maximum=65535),
            security=env.choice("WALLET_SMTP_SECURITY", SmtpSecurity, SmtpSecurity.STARTTLS),
            username=env.string("WALLET_SMTP_USERNAME", ""),
            password=env.optional_string("WALLET_SMTP_PASSWORD"),
            mail_from=env.string("WALLET_SMTP_FROM", "Proofline <no-reply@localhost>"),
            timeout_s=_ms(env, "WALLET_SMTP_TIMEOUT_MS", 10_000, minimum=100),
        ),
        # Outside production a secret per process: codes do not outlive it (one replica in dev).
        otp_secret=(otp_secret or secrets.token_hex(32)).encode(),
        signups_per_address=env.integer("WALLET_SIGNUPS_PER_ADDRESS", 5, minimum=0),
        signups_per_caller=env.integer("WALLET_SIGNUPS_PER_CALLER", 60, minimum=0),
        # Outside production a KEK per process: kept shares do not open after a restart.
        backup_kek=backup_kek or secrets.token_bytes(32),
        recovery=SignUpConfig(
            code_ttl_s=_ms(env, "WALLET_RECOVERY_CODE_TTL_MS", 600_000, minimum=1_000, maximum=3_600_000),
            max_attempts=env.integer("WALLET_SIGNUP_MAX_ATTEMPTS", 5, minimum=1, maximum=20),
        ),
        recoveries_per_account=env.integer("WALLET_RECOVERIES_PER_ACCOUNT", 5, minimum=0),
        recoveries_per_key=env.integer("WALLET_RECOVERIES_PER_KEY", 3, minimum=0),
        login=LoginConfig(
            challenge_ttl_s=_ms(env, "WALLET_LOGIN_CHALLENGE_TTL_MS", 60_000, minimum=100, maximum=600_000)
        ),
        # Outside production a secret per process: sessions do not outlive it (one replica in dev).
        session_secret=(session_secret or secrets.token_hex(32)).encode(),
        session_ttl_s=_ms(env, "WALLET_SESSION_TTL_MS", 900_000, minimum=1_000, maximum=86_400_000),
        logins_per_key=env.integer("WALLET_LOGINS_PER_KEY", 10, minimum=0),
        logins_per_caller=env.integer("WALLET_LOGINS_PER_CALLER", 600, minimum=0),
        user_sends=env.flag("WALLET_USER_SENDS", False),
    )
