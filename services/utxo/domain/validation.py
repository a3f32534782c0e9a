"""Checks of request fields; each failure names the field and a stable `<FIELD>_INVALID` reason."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from proofline_kit.errors import invalid_argument
from proofline_kit.wire import Outpoint
from services.utxo.domain.models import KEY_ID_PATTERN, TXID_PATTERN, OutputSpec, Purpose, TrackedOutput

MAX_ITEMS = 1000
MAX_SCRIPT_BYTES = 10_000
MAX_HOLDER_CHARS = 128
MAX_DETAIL_CHARS = 1024
MAX_LEASE_ID_CHARS = 64
MIN_LEASE = timedelta(seconds=1)


def txid(value: str, field: str, reason: str = "TXID_INVALID") -> str:
    if not TXID_PATTERN.match(value):
        raise invalid_argument(reason, field, "must be 64 lowercase hex characters (display order)")
    return value


def txids(values: Sequence[str], field: str, reason: str) -> tuple[str, ...]:
    """1 to MAX_ITEMS well-formed txids, none twice; every failure is `reason`."""
    if not 1 <= len(values) <= MAX_ITEMS:
        raise invalid_argument(reason, field, f"1 to {MAX_ITEMS} txids")
    seen: set[str] = set()
    for index, value in enumerate(values):
        txid(value, f"{field}[{index}]", reason)
        if value in seen:
            raise invalid_argument(reason, f"{field}[{index}]", f"{value} is listed twice")
        seen.add(value)
    return tuple(values)


def max_unconfirmed_depth(value: int, maximum: int) -> int:
    """A lease's max_unconfirmed_depth: 0 to UTXO_MAX_UNCONFIRMED_DEPTH."""
    if not 0 <= value <= maximum:
        raise invalid_argument(
            "MAX_UNCONFIRMED_DEPTH_INVALID",
            "max_unconfirmed_depth",
            f"must be 0 to {maximum} (UTXO_MAX_UNCONFIRMED_DEPTH)",
        )
    return value


def outpoint(value: Outpoint, field: str) -> Outpoint:
    txid(value.txid, f"{field}.txid", "OUTPOINT_INVALID")
    if value.vout < 0:
        raise invalid_argument("OUTPOINT_INVALID", f"{field}.vout", "must not be negative")
    return value


def outpoints(
    values: Sequence[Outpoint], field: str, *, allow_empty: bool = False, reason: str = ""
) -> tuple[Outpoint, ...]:
    """1 to MAX_ITEMS well-formed outpoints (0 with `allow_empty`), none twice. The list's reason is
    `reason`, by default `<FIELD>_INVALID`; a malformed item is OUTPOINT_INVALID."""
    reason = reason or f"{field.upper()}_INVALID"
    if not values and not allow_empty:
        raise invalid_argument(reason, field, "at least one outpoint is required")
    if len(values) > MAX_ITEMS:
        raise invalid_argument(reason, field, f"at most {MAX_ITEMS} outpoints")
    seen: set[Outpoint] = set()
    for index, value in enumerate(values):
        outpoint(value, f"{field}[{index}]")
        if value in seen:
            raise invalid_argument(reason, f"{field}[{index}]", f"{value} is listed twice")
        seen.add(value)
    return tuple(values)


def key_id(value: str, field: str, *, optional: bool = False) -> str:
    if optional and value == "":
        return value
    if not KEY_ID_PATTERN.match(value):
        raise invalid_argument(f"{field.split('.')[-1].upper()}_INVALID", field, "1-128 characters of [A-Za-z0-9._:-]")
    return value


def lease_id(value: str) -> str:
    if not value or len(value) > MAX_LEASE_ID_CHARS:
        raise invalid_argument("LEASE_ID_INVALID", "lease_id", f"required, at most {MAX_LEASE_ID_CHARS} characters")
    return value


def purpose(value: Purpose | None, field: str = "purpose") -> Purpose:
    if value is None:
        raise invalid_argument("PURPOSE_INVALID", field, "required: PUBLISH, FUNDING, CHANGE or WALLET")
    return value


def positive_satoshis(value: int, field: str, reason: str = "SATOSHIS_INVALID") -> int:
    if value <= 0:
        raise invalid_argument(reason, field, "must be > 0 satoshis")
    return value


def non_negative(value: int, field: str) -> int:
    if value < 0:
        raise invalid_argument(f"{field.split('.')[-1].upper()}_INVALID", field, "must not be negative")
    return value


def lease_duration(value: timedelta | None, default: timedelta, maximum: timedelta, field: str) -> timedelta:
    if value is None:
        return default
    if value < MIN_LEASE or value > maximum:
        raise invalid_argument(
            "LEASE_DURATION_INVALID", field, f"must be 0 (default) or between 1 s and {int(maximum.total_seconds())} s"
        )
    return value


def text(value: str, field: str, maximum: int) -> str:
    if len(value) > maximum:
        raise invalid_argument(f"{field.upper()}_INVALID", field, f"at most {maximum} characters")
    return value


def tracked_output(value: OutputSpec, field: str, *, outpoint_field: str = "outpoint") -> TrackedOutput:
    outpoint(value.outpoint, f"{field}.{outpoint_field}")
    positive_satoshis(value.satoshis, f"{field}.satoshis")
    if not 1 <= len(value.locking_script) <= MAX_SCRIPT_BYTES:
        raise invalid_argument("LOCKING_SCRIPT_INVALID", f"{field}.locking_script", f"1-{MAX_SCRIPT_BYTES} bytes")
    key_id(value.owner_key_id, f"{field}.owner_key_id")
    return TrackedOutput(
        value.outpoint,
        value.satoshis,
        value.locking_script,
        value.owner_key_id,
        purpose(value.purpose, f"{field}.purpose"),
    )
