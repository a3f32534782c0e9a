"""`sweep-change`: consolidate the change address's outputs back to the funding address (seed 000).

    sweep-change --changeAddress ADDR --changeKeyId KEY_ID --destinationAddress ADDR [--dryRun]

`--changeKeyId` is the signer key id of the change address: signing happens in signer_gateway, and
this tool never accepts a private key (a WIF is refused). The service holds the 5-minute lock
`sweep-address-<changeAddress>` while it works. A real run first syncs the change key from the chain,
then calls Sweep until nothing is left, printing every transaction. Exit status: 0 done, 1 a call
failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import grpc
from proofline.utxo.v1 import utxo_pb2, utxo_pb2_grpc

from services.utxo.cli import common

MAX_ROUNDS = 1000


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sweep-change", description="Sweep the change address to funding.")
    parser.add_argument("--changeAddress", required=True, help="P2PKH address to sweep")
    parser.add_argument("--changeKeyId", required=True, help="signer key id of the change address (never a WIF)")
    parser.add_argument("--destinationAddress", required=True, help="where the coins go (the funding address)")
    parser.add_argument("--dryRun", action="store_true", help="print the plan, change nothing")
    parser.add_argument("--maxInputs", type=int, default=0, help="inputs per transaction (default: server's)")
    parser.add_argument("--maxTransactions", type=int, default=5, help="transactions per call (default 5)")
    parser.add_argument("--target", help="utxo service host:port (default UTXO_TARGET or 127.0.0.1:50052)")
    parser.add_argument("--json", action="store_true", help="print each result as one JSON line")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per call (default 300)")
    args = parser.parse_args(argv)
    if common.looks_like_wif(args.changeKeyId):
        parser.error("--changeKeyId looks like a private key (WIF); pass the signer key id instead")
    return args


async def run(args: argparse.Namespace) -> int:
    metadata = common.metadata()
    async with grpc.aio.insecure_channel(common.target(args.target)) as channel:
        stub = utxo_pb2_grpc.UtxoAdminServiceStub(channel)
        try:
            if not args.dryRun:
                print(f"syncing {args.changeKeyId} ({args.changeAddress}) from the chain ...", flush=True)
                synced = await stub.SyncFromChain(
                    utxo_pb2.SyncFromChainRequest(
                        request_id=common.request_id("sweep-sync"), owner_key_ids=[args.changeKeyId]
                    ),
                    metadata=metadata,
                    timeout=args.timeout,
                )
                common.print_result(synced.result, as_json=args.json)
            for round_number in range(1, MAX_ROUNDS + 1):
                if not args.json:
                    print(f"sweep round {round_number}{' (dry run)' if args.dryRun else ''} ...", flush=True)
                response = await stub.Sweep(
                    utxo_pb2.SweepRequest(
                        request_id=common.request_id("sweep-change"),
                        dry_run=args.dryRun,
                        change_address=args.changeAddress,
                        change_key_id=args.changeKeyId,
                        destination_address=args.destinationAddress,
                        max_inputs_per_transaction=args.maxInputs,
                        max_transactions=args.maxTransactions,
                    ),
                    metadata=metadata,
                    timeout=args.timeout,
                )
                common.print_result(response.result, as_json=args.json)
                if args.dryRun or response.result.outcome != utxo_pb2.MAINTENANCE_OUTCOME_DONE:
                    break
        except grpc.aio.AioRpcError as error:
            print(f"sweep-change: {common.describe_error(error)}", file=sys.stderr, flush=True)
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
