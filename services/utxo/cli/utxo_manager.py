"""`utxo-manager`: one maintenance pass (reap expired leases, sync from chain, split when low).

    utxo-manager [--target HOST:PORT] [--dry-run] [--json]
    SPLIT_DRY_RUN=1 utxo-manager         # plan only (seed 000)

Talks to the utxo service (UTXO_TARGET, default 127.0.0.1:50052) with the admin token in
UTXO_ADMIN_TOKEN. A real run makes each step its own RunMaintenance call, printed as soon as it
finishes; a dry run asks for the whole PASS at once, because its split must plan with the coins its
(unapplied) sync would add. Exit status: 0 done, 1 a step failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import grpc
from proofline.utxo.v1 import utxo_pb2, utxo_pb2_grpc

from services.utxo.cli import common

STEPS = (
    utxo_pb2.MAINTENANCE_ACTION_REAP_LEASES,
    utxo_pb2.MAINTENANCE_ACTION_SYNC,
    utxo_pb2.MAINTENANCE_ACTION_SPLIT,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="utxo-manager", description="One UTXO pool maintenance pass.")
    parser.add_argument("--target", help="utxo service host:port (default UTXO_TARGET or 127.0.0.1:50052)")
    parser.add_argument("--dry-run", action="store_true", help="plan only (also SPLIT_DRY_RUN=1)")
    parser.add_argument("--json", action="store_true", help="print each result as one JSON line")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per step (default 120)")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    dry_run = args.dry_run or os.environ.get("SPLIT_DRY_RUN", "").strip().lower() in {"1", "true", "yes"}
    async with grpc.aio.insecure_channel(common.target(args.target)) as channel:
        stub = utxo_pb2_grpc.UtxoAdminServiceStub(channel)
        steps = (utxo_pb2.MAINTENANCE_ACTION_PASS,) if dry_run else STEPS
        for number, action in enumerate(steps, start=1):
            name = utxo_pb2.MaintenanceAction.Name(action).removeprefix("MAINTENANCE_ACTION_").lower()
            if not args.json:
                print(f"[{number}/{len(steps)}] {name}{' (dry run)' if dry_run else ''} ...", flush=True)
            try:
                response = await stub.RunMaintenance(
                    utxo_pb2.RunMaintenanceRequest(
                        request_id=common.request_id("utxo-manager"), action=action, dry_run=dry_run
                    ),
                    metadata=common.metadata(),
                    timeout=args.timeout,
                )
            except grpc.aio.AioRpcError as error:
                print(f"utxo-manager: {name} failed: {common.describe_error(error)}", file=sys.stderr, flush=True)
                return 1
            for result in response.results:
                common.print_result(result, as_json=args.json)
    return 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
