"""`make bench`: every benchmark of the suite, each printing its own figures.

`python -m bench` runs them all; `python -m bench signer` (or chainsim, utxo, publisher, coinsel)
runs one. A benchmark that takes options (coinsel) gets the arguments after its name:
`python -m bench coinsel --scenario FILE ...`.
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "signer": "bench.signer_bench",
    "chainsim": "bench.chainsim_bench",
    "utxo": "bench.utxo_bench",
    "publisher": "bench.publisher_bench",
    "wallet": "bench.wallet_bench",
    "coinsel": "bench.coinsel_bench",
}
# Benchmarks whose main() takes the command line after their name; the others take nothing.
TAKES_ARGUMENTS = {"coinsel"}


def main(argv: list[str]) -> int:
    if argv and argv[0] in TAKES_ARGUMENTS:
        print(f"\n=== {argv[0]} ===", flush=True)
        importlib.import_module(BENCHMARKS[argv[0]]).main(argv[1:])
        return 0
    wanted = argv or list(BENCHMARKS)
    unknown = [name for name in wanted if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    for name in wanted:
        print(f"\n=== {name} ===", flush=True)
        importlib.import_module(BENCHMARKS[name]).main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
