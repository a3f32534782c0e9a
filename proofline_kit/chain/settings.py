"""Where a service finds the chain, read from the environment, and the ARC / WhatsOnChain clients
built from it: one definition for every service that talks to the chain."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import httpx

from proofline_kit.outbound.retry import RetryPolicy
from proofline_kit.settings import EnvReader, SettingsError

from .arc import ArcClient, ArcConfig, ArcSubmitOptions
from .woc import WocClient, WocConfig

WOC_NETWORKS = ("main", "test", "stn")


@dataclass(frozen=True, slots=True)
class ChainSettings:
    """ARC (broadcast, fee policy, status) and WhatsOnChain (lookups, fallback broadcast); chainsim
    serves both. A URL that is None is not configured."""

    arc_url: str | None
    arc_api_key: str | None = field(repr=False)
    woc_url: str | None
    woc_api_key: str | None = field(repr=False)
    woc_network: str
    # Per attempt; a call's whole budget is twice this unless its caller gives a deadline.
    timeout_s: float
    # WhatsOnChain requests of one bulk call (20 ids each) or one block's txid pages in flight at
    # once. 1 = one after the other; a real WoC limits the request rate (3/s without an API key).
    woc_bulk_concurrency: int = 1


@dataclass(frozen=True, slots=True)
class CallbackSettings:
    """The ARC callback endpoint a service serves (X-CallbackUrl)."""

    enabled: bool
    host: str
    port: int
    # What ARC is told to call; None = http://<host>:<bound port>/v1/arc/callback.
    public_url: str | None
    token: str = field(repr=False)
    batch: bool


def read_callback_settings(
    env: EnvReader, prefix: str, *, enabled: bool, token: str | None, default_host: str, default_port: int
) -> CallbackSettings:
    """`<prefix>_CALLBACK_HOST/PORT/URL/BATCH`; `enabled` and `token` are read by the caller (its
    production check names a missing token with its other required settings). Without a token, a
    random one per process: callbacks meant for an earlier process are refused, and the service's
    own polling looks at those transactions."""
    return CallbackSettings(
        enabled=enabled,
        host=env.string(f"{prefix}_CALLBACK_HOST", default_host),
        port=env.integer(f"{prefix}_CALLBACK_PORT", default_port, minimum=0, maximum=65535),
        public_url=env.optional_string(f"{prefix}_CALLBACK_URL"),
        token=token or os.urandom(16).hex(),
        batch=env.flag(f"{prefix}_CALLBACK_BATCH", True),
    )


def read_chain_settings(env: EnvReader, prefix: str, *, default_woc_bulk_concurrency: int = 1) -> ChainSettings:
    """`{prefix}_ARC_URL` or `ARC_URL`, likewise WOC_URL, the API keys, WOC_NETWORK (main, test or
    stn; default test) and WOC_BULK_CONCURRENCY (1-64; the service's default); `{prefix}_CHAIN_TIMEOUT_MS`
    (default 10 s). WOC_URL may also be the API root (`.../v1/bsv/<network>`), which names the
    network too."""

    def either(name: str) -> str | None:
        return env.optional_string(f"{prefix}_{name}") or env.optional_string(name)

    def either_integer(name: str, default: int, minimum: int, maximum: int) -> int:
        own = f"{prefix}_{name}"
        if env.optional_string(own) is not None:
            return env.integer(own, default, minimum=minimum, maximum=maximum)
        return env.integer(name, default, minimum=minimum, maximum=maximum)

    network = either("WOC_NETWORK") or "test"
    woc_url = either("WOC_URL")
    if woc_url is not None:
        base, marker, tail = woc_url.rstrip("/").rpartition("/v1/bsv/")
        if marker and tail in WOC_NETWORKS:
            woc_url, network = base, tail
    if network not in WOC_NETWORKS:
        raise SettingsError(f"{prefix}_WOC_NETWORK / WOC_NETWORK must be main, test or stn")
    return ChainSettings(
        arc_url=either("ARC_URL"),
        arc_api_key=either("ARC_API_KEY"),
        woc_url=woc_url,
        woc_api_key=either("WOC_API_KEY"),
        woc_network=network,
        timeout_s=env.integer(f"{prefix}_CHAIN_TIMEOUT_MS", 10_000, minimum=100) / 1000,
        woc_bulk_concurrency=either_integer("WOC_BULK_CONCURRENCY", default_woc_bulk_concurrency, 1, 64),
    )


@dataclass
class ChainClients:
    """The configured clients over one pooled HTTP client, which `aclose` closes."""

    arc: ArcClient | None
    woc: WocClient | None
    http: httpx.AsyncClient

    async def aclose(self) -> None:
        await self.http.aclose()


def open_chain_clients(
    settings: ChainSettings,
    *,
    max_connections: int,
    retry: RetryPolicy | None = None,
    arc_submit: ArcSubmitOptions | None = None,
) -> ChainClients:
    # trust_env=False: a proxy from the environment must not sit between a service and its chain.
    http = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections // 2),
        trust_env=False,
    )
    budget_s = 2 * settings.timeout_s
    retry = retry or RetryPolicy()
    arc = (
        ArcClient(
            http,
            ArcConfig(
                settings.arc_url,
                api_key=settings.arc_api_key,
                submit=arc_submit or ArcSubmitOptions(),
                attempt_timeout_s=settings.timeout_s,
                default_budget_s=budget_s,
                retry=retry,
            ),
        )
        if settings.arc_url
        else None
    )
    woc = (
        WocClient(
            http,
            WocConfig(
                settings.woc_url,
                network=settings.woc_network,
                api_key=settings.woc_api_key,
                attempt_timeout_s=settings.timeout_s,
                default_budget_s=budget_s,
                retry=retry,
                bulk_concurrency=settings.woc_bulk_concurrency,
            ),
        )
        if settings.woc_url
        else None
    )
    return ChainClients(arc, woc, http)
