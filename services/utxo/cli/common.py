"""What both CLIs share: the channel, the token, WIF refusal and printing maintenance results."""

from __future__ import annotations

import os
import re
import sys
import uuid
from typing import TextIO

import grpc
from google.protobuf import json_format
from proofline.utxo.v1 import utxo_pb2

from proofline_kit.rpc.status import error_reason

DEFAULT_TARGET = "127.0.0.1:50052"
# Base58 strings of 51-52 characters starting like a WIF (5/K/L mainnet, 9/c testnet).
_WIF = re.compile(r"^[59KLc][1-9A-HJ-NP-Za-km-z]{50,51}$")


def target(explicit: str | None) -> str:
    return explicit or os.environ.get("UTXO_TARGET", DEFAULT_TARGET)


def metadata() -> tuple[tuple[str, str], ...]:
    token = os.environ.get("UTXO_ADMIN_TOKEN", "")
    return (("authorization", f"Bearer {token}"),) if token else ()


def request_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def looks_like_wif(value: str) -> bool:
    return bool(_WIF.match(value))


def describe_error(error: grpc.aio.AioRpcError) -> str:
    reason = error_reason(error)
    return f"{error.code().name}{f' {reason}' if reason else ''}: {error.details()}"


_ACTION = utxo_pb2.MaintenanceAction
_OUTCOME = utxo_pb2.MaintenanceOutcome
_BROADCAST = utxo_pb2.BroadcastOutcome
_PURPOSE = utxo_pb2.UtxoPurpose


def _name(enum: object, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix).lower()  # type: ignore[attr-defined]


def print_result(result: utxo_pb2.MaintenanceResult, out: TextIO | None = None, *, as_json: bool = False) -> None:
    out = out or sys.stdout
    if as_json:
        print(json_format.MessageToJson(result, indent=None), file=out, flush=True)
        return
    action = _name(_ACTION, result.action, "MAINTENANCE_ACTION_")
    outcome = _name(_OUTCOME, result.outcome, "MAINTENANCE_OUTCOME_").upper()
    dry = " (dry run)" if result.dry_run else ""
    print(f"{action}: {outcome}{dry} - {result.detail}", file=out, flush=True)
    if result.HasField("sync"):
        s = result.sync
        print(
            f"  tip {s.tip_height}: added {s.added}, confirmed {s.confirmed}, spent {s.marked_spent}, "
            f"dirty->available {s.dirty_to_available}, dirty->spent {s.dirty_to_spent}, "
            f"invalidated {s.invalidated}, unchanged {s.unchanged}",
            file=out,
        )
        for change in s.changes[:20]:
            before = _name(utxo_pb2.UtxoStatus, change.from_status, "UTXO_STATUS_") if change.from_status else "new"
            after = _name(utxo_pb2.UtxoStatus, change.to_status, "UTXO_STATUS_")
            print(
                f"    {change.outpoint.txid}:{change.outpoint.vout} {change.satoshis} sat {before} -> {after} "
                f"({change.reason})",
                file=out,
            )
    for index, tx in enumerate(result.transactions, start=1):
        label = tx.txid or "planned"
        broadcast = _name(_BROADCAST, tx.broadcast_outcome, "BROADCAST_OUTCOME_").upper()
        print(
            f"  tx {index}/{len(result.transactions)} {label}: {len(tx.inputs)} inputs {tx.input_satoshis} sat -> "
            f"{len(tx.outputs)} outputs {tx.output_satoshis} sat, fee {tx.fee_satoshis} sat "
            f"({tx.fee_rate_satoshis_per_kb} sat/kB, {tx.size_bytes} bytes) {broadcast}"
            + (f" [{tx.broadcast_detail}]" if tx.broadcast_detail else ""),
            file=out,
        )
        for utxo in tx.inputs[:10]:
            print(f"      in  {utxo.outpoint.txid}:{utxo.outpoint.vout} {utxo.satoshis} sat", file=out)
        if len(tx.inputs) > 10:
            print(f"      ... {len(tx.inputs) - 10} more inputs", file=out)
        for output in tx.outputs[:10]:
            purpose = _name(_PURPOSE, output.purpose, "UTXO_PURPOSE_") if output.purpose else "external"
            print(f"      out #{output.vout} {output.satoshis} sat -> {output.address} ({purpose})", file=out)
        if len(tx.outputs) > 10:
            print(f"      ... {len(tx.outputs) - 10} more outputs", file=out)
    if result.HasField("next_allowed_time"):
        print(f"  next split allowed at {result.next_allowed_time.ToJsonString()}", file=out)
    out.flush()
