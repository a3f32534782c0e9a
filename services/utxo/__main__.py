"""`python -m services.utxo`: run the UTXO pool service until SIGTERM/SIGINT."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable

from proofline_kit.runtime import run_service
from services.utxo.app import start_utxo
from services.utxo.settings import UtxoSettings, read_utxo_settings


async def _start(settings: UtxoSettings) -> Callable[[], Awaitable[None]]:
    return (await start_utxo(settings)).stop


if __name__ == "__main__":
    sys.exit(run_service("utxo", read_utxo_settings, _start))
