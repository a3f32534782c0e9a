"""`python -m services.utxo`: run the UTXO pool service until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

from proofline_kit.rpc.server import run_until_signalled
from proofline_kit.settings import SettingsError
from services.utxo.app import start_utxo
from services.utxo.settings import read_utxo_settings


def main() -> int:
    try:
        settings = read_utxo_settings()
    except SettingsError as exc:
        print(f"utxo: configuration error: {exc}", file=sys.stderr)
        return 2

    async def start() -> Callable[[], Awaitable[None]]:
        return (await start_utxo(settings)).stop

    asyncio.run(run_until_signalled(start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
