"""An external HTTP KMS (seed 000's contract).

POST KMS_SIGN_URL with `[{"keyIdentifier": ..., "sighash": <hex>}]`; the answer is
`[{"signatureHex": ..., "pubKeyHex": ...}]` aligned with the request. KMS_API_KEY, when set, is sent
as `Authorization: Bearer` and `X-API-Key`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from proofline_kit.errors import DomainError, ErrorKind
from proofline_kit.outbound import Deadline, HttpCaller, RetryPolicy
from services.signer_gateway.domain.models import KeyRecord
from services.signer_gateway.domain.ports import key_probe_digest


class KmsError(DomainError):
    pass


def _unavailable(message: str) -> KmsError:
    return KmsError(ErrorKind.UNAVAILABLE, "KMS_UNAVAILABLE", message, retry_after_ms=500)


def _bad_answer(message: str) -> KmsError:
    return KmsError(ErrorKind.INTERNAL, "KMS_BAD_RESPONSE", message)


class HttpKmsBackend:
    checks_signatures = False

    def __init__(
        self,
        client: httpx.AsyncClient,
        sign_url: str,
        api_key: str | None,
        max_attempts: int = 3,
        request_timeout_s: float = 5.0,
    ) -> None:
        self._url = sign_url
        self._headers = {"Authorization": f"Bearer {api_key}", "X-API-Key": api_key} if api_key else {}
        self._caller = HttpCaller(
            client,
            RetryPolicy(max_attempts=max_attempts, base_delay_s=0.05, max_delay_s=2.0),
            attempt_timeout_s=request_timeout_s,
            give_up=_gave_up,
        )

    async def sign(self, keys: Sequence[KeyRecord], digests: Sequence[bytes], timeout_s: float) -> list[bytes]:
        answers = await self._call([(k.key_id, d) for k, d in zip(keys, digests, strict=True)], timeout_s)
        for key, (_, public_key) in zip(keys, answers, strict=True):
            if public_key != key.public_key:
                raise _bad_answer(f"KMS answered for key {key.key_id} with a different public key")
        return [signature for signature, _ in answers]

    async def probe_key(self, key_id: str, timeout_s: float) -> tuple[bytes, bytes]:
        [(signature, public_key)] = await self._call([(key_id, key_probe_digest(key_id))], timeout_s)
        return public_key, signature

    async def _call(self, items: list[tuple[str, bytes]], timeout_s: float) -> list[tuple[bytes, bytes]]:
        body = [{"keyIdentifier": key_id, "sighash": digest.hex()} for key_id, digest in items]
        response = await self._caller.request(
            "POST", self._url, deadline=Deadline.after(timeout_s), headers=self._headers, json=body
        )
        if response.status_code == 404:
            raise KmsError(
                ErrorKind.FAILED_PRECONDITION, "KMS_KEY_NOT_FOUND", "the external KMS does not know this key id"
            )
        if response.status_code != 200:
            raise _bad_answer(f"KMS answered HTTP {response.status_code}")
        return _parse_answer(response, len(items))


def _gave_up(message: str, attempts: int, http_status: int | None) -> KmsError:
    return _unavailable(f"KMS did not answer after {attempts} attempt(s): {message}")


def _parse_answer(response: httpx.Response, expected: int) -> list[tuple[bytes, bytes]]:
    try:
        data: Any = response.json()
    except ValueError as exc:
        raise _bad_answer("KMS answer is not JSON") from exc
    if not isinstance(data, list) or len(data) != expected:
        raise _bad_answer(f"KMS answered {len(data) if isinstance(data, list) else 'a non-list'} items for {expected}")
    answers = []
    for item in data:
        try:
            answers.append((bytes.fromhex(item["signatureHex"]), bytes.fromhex(item["pubKeyHex"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise _bad_answer("KMS answer item lacks signatureHex/pubKeyHex hex strings") from exc
    return answers
