"""`make bench`: every benchmark of the suite, each printing its own figures.

`python -m bench` runs them all; `python -m bench signer` (or chainsim, utxo, publisher) runs one.
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "signer": "bench.signer_bench",
    "chainsim": "bench.chainsim_bench",
    "utxo": "bench.utxo_bench",
    "publisher": "bench.publisher_bench",
}


def main(argv: list[str]) -> int:
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
