"""Reading ARC callbacks (the webhooks registered with X-CallbackUrl / X-CallbackToken).

ARC posts either one status object or ``{"count": n, "callbacks": [...]}`` (X-CallbackBatch), with
``Authorization: Bearer <X-CallbackToken>``. The same status may arrive twice, and MINED twice
after a reorg (with the new block), so receivers must be idempotent.
"""

from __future__ import annotations

import hmac
from typing import Any

from .arc_results import ArcTxStatus, parse_tx_status
from .jsonshape import ShapeError, as_list, as_object


def parse_callback(payload: Any) -> list[ArcTxStatus]:
    """The status reports in a callback body (raises ``ShapeError`` when it is not one)."""
    obj = as_object(payload, "ARC callback")
    if "callbacks" in obj:
        return [parse_tx_status(item) for item in as_list(obj["callbacks"], "callbacks")]
    if "txid" not in obj:
        raise ShapeError("ARC callback has neither txid nor callbacks")
    return [parse_tx_status(obj)]


def callback_authorized(authorization_header: str | None, expected_token: str) -> bool:
    """Whether the ``Authorization`` header carries our callback token (constant-time compare)."""
    if authorization_header is None or not authorization_header.startswith("Bearer "):
        return False
    given = authorization_header[len("Bearer ") :].encode()
    return hmac.compare_digest(given, expected_token.encode())
