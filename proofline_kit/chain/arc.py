"""Async ARC client: broadcast (single and batch), transaction status, policy, health."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from proofline_kit.outbound import Sleep
from proofline_kit.outbound.deadline import Clock, Deadline
from proofline_kit.outbound.retry import RetryPolicy

from .arc_results import (
    ArcHealth,
    ArcPolicy,
    ArcTxStatus,
    outcome_from_response,
    outcomes_from_batch,
    parse_health,
    parse_policy,
    parse_tx_status,
)
from .errors import ChainResponseError, ChainUnavailable
from .fees import FeeRate
from .jsonshape import ShapeError, parse_json
from .outcomes import ArcStatus, BroadcastOutcome, Provider, unavailable
from .transport import provider_caller
from .txbytes import PreparedTx

# ARC refuses X-MaxTimeout above 30 s with a 400.
ARC_MAX_TIMEOUT_S = 30


@dataclass(frozen=True, slots=True)
class ArcSubmitOptions:
    """Per-submission ARC headers. ``wait_for=None`` leaves ARC's default (SEEN_ON_NETWORK)."""

    wait_for: ArcStatus | None = None
    callback_url: str | None = None
    callback_token: str | None = None
    full_status_updates: bool = False
    callback_batch: bool = False

    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.wait_for is not None:
            out["X-WaitFor"] = self.wait_for.name
        if self.callback_url is not None:
            out["X-CallbackUrl"] = self.callback_url
            if self.callback_token is not None:
                out["X-CallbackToken"] = self.callback_token
            if self.full_status_updates:
                out["X-FullStatusUpdates"] = "true"
            if self.callback_batch:
                out["X-CallbackBatch"] = "true"
        return out


@dataclass(frozen=True, slots=True)
class ArcConfig:
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    submit: ArcSubmitOptions = field(default_factory=ArcSubmitOptions)
    # X-MaxTimeout is the smaller of this and (attempt timeout - wait_margin_s), at least 1 s.
    max_wait_s: int = 5
    wait_margin_s: float = 1.0
    attempt_timeout_s: float = 10.0
    default_budget_s: float = 20.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    deployment_id: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.max_wait_s <= ARC_MAX_TIMEOUT_S:
            raise ValueError(f"max_wait_s must be between 1 and {ARC_MAX_TIMEOUT_S}")


class ArcClient:
    """Talks to one ARC endpoint through an injected, shared ``httpx.AsyncClient``."""

    provider = Provider.ARC

    def __init__(
        self,
        http: httpx.AsyncClient,
        config: ArcConfig,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self._clock = clock
        self._base = config.base_url.rstrip("/")
        self._caller = provider_caller(
            http, Provider.ARC, config.retry, attempt_timeout_s=config.attempt_timeout_s, sleep=sleep, rand=rand
        )
        headers = {"Accept": "application/json"}
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        if config.deployment_id:
            headers["XDeployment-ID"] = config.deployment_id
        self._headers: Mapping[str, str] = headers

    def _deadline(self, deadline: Deadline | None) -> Deadline:
        return deadline if deadline is not None else Deadline.after(self.config.default_budget_s, self._clock)

    def _max_timeout_header(self, attempt_timeout_s: float) -> Mapping[str, str]:
        wait = int(attempt_timeout_s - self.config.wait_margin_s)
        return {"X-MaxTimeout": str(max(1, min(self.config.max_wait_s, wait)))}

    async def _post(
        self, path: str, body: Any, deadline: Deadline | None, options: ArcSubmitOptions | None
    ) -> httpx.Response:
        chosen = options if options is not None else self.config.submit
        return await self._caller.request(
            "POST",
            self._base + path,
            deadline=self._deadline(deadline),
            headers={**self._headers, **chosen.headers()},
            headers_for_timeout=self._max_timeout_header,
            json=body,
        )

    # ---- broadcast ---------------------------------------------------------------------------

    async def broadcast(
        self, tx: PreparedTx, *, deadline: Deadline | None = None, options: ArcSubmitOptions | None = None
    ) -> BroadcastOutcome:
        """Submit one transaction (EF when available). Re-sending the same bytes is safe: ARC
        answers a known txid with its stored status."""
        try:
            response = await self._post("/v1/tx", {"rawTx": tx.arc_payload.hex()}, deadline, options)
        except ChainUnavailable as exc:
            return unavailable(tx.txid, Provider.ARC, exc.message, exc.http_status)
        return outcome_from_response(response, tx.txid)

    async def broadcast_many(
        self, txs: Sequence[PreparedTx], *, deadline: Deadline | None = None, options: ArcSubmitOptions | None = None
    ) -> dict[str, BroadcastOutcome]:
        """Submit several transactions in one ``POST /v1/txs``; results keyed by txid in request
        order (duplicates collapse to one entry). Parents must come before their children."""
        unique = list({tx.txid: tx for tx in txs}.values())
        if not unique:
            return {}
        body = [{"rawTx": tx.arc_payload.hex()} for tx in unique]
        txids = [tx.txid for tx in unique]
        try:
            response = await self._post("/v1/txs", body, deadline, options)
        except ChainUnavailable as exc:
            return {t: unavailable(t, Provider.ARC, exc.message, exc.http_status) for t in txids}
        return outcomes_from_batch(response, txids)

    # ---- lookups -----------------------------------------------------------------------------

    async def _get(self, path: str, deadline: Deadline | None) -> httpx.Response:
        return await self._caller.request(
            "GET", self._base + path, deadline=self._deadline(deadline), headers=self._headers
        )

    def _read(self, response: httpx.Response, what: str) -> Any:
        if response.status_code != 200:
            raise ChainUnavailable(
                Provider.ARC,
                f"{what}: HTTP {response.status_code}: {response.text[:200]}",
                http_status=response.status_code,
                attempts=1,
            )
        try:
            return parse_json(response)
        except ShapeError as exc:
            raise ChainResponseError(Provider.ARC, f"{what}: {exc}", http_status=200) from exc

    async def status(self, txid: str, *, deadline: Deadline | None = None) -> ArcTxStatus | None:
        """ARC's record of ``txid`` (with blockHash/blockHeight/merklePath once MINED); None when
        ARC does not know it (never submitted, or past ARC's retention)."""
        response = await self._get(f"/v1/tx/{txid}", deadline)
        if response.status_code == 404:
            return None
        payload = self._read(response, "ARC transaction status")
        try:
            return parse_tx_status(payload)
        except ShapeError as exc:
            raise ChainResponseError(Provider.ARC, f"ARC transaction status: {exc}") from exc

    async def policy(self, *, deadline: Deadline | None = None) -> ArcPolicy:
        payload = self._read(await self._get("/v1/policy", deadline), "ARC policy")
        try:
            return parse_policy(payload)
        except ShapeError as exc:
            raise ChainResponseError(Provider.ARC, f"ARC policy: {exc}") from exc

    async def fee_rate(self, *, deadline: Deadline | None = None) -> FeeRate:
        """The policy mining fee (satisfies ``FeeRateSource`` for :class:`FeeRateCache`)."""
        return (await self.policy(deadline=deadline)).fee_rate

    async def health(self, *, deadline: Deadline | None = None) -> ArcHealth:
        payload = self._read(await self._get("/v1/health", deadline), "ARC health")
        try:
            return parse_health(payload)
        except ShapeError as exc:
            raise ChainResponseError(Provider.ARC, f"ARC health: {exc}") from exc
