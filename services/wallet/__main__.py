"""`python -m services.wallet`: run the wallet until SIGTERM/SIGINT."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable

from proofline_kit.runtime import run_service
from services.wallet.app import start_wallet
from services.wallet.settings import WalletSettings, read_wallet_settings


async def _start(settings: WalletSettings) -> Callable[[], Awaitable[None]]:
    return (await start_wallet(settings)).stop


if __name__ == "__main__":
    sys.exit(run_service("wallet", read_wallet_settings, _start))
