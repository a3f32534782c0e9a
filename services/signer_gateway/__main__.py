"""`python -m services.signer_gateway`: run the signing gateway until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

from proofline_kit.rpc.server import run_until_signalled
from proofline_kit.settings import SettingsError
from services.signer_gateway.app import start_signer
from services.signer_gateway.settings import read_signer_settings


def main() -> int:
    try:
        settings = read_signer_settings()
    except SettingsError as exc:
        print(f"signer_gateway: configuration error: {exc}", file=sys.stderr)
        return 2

    async def start() -> Callable[[], Awaitable[None]]:
        return (await start_signer(settings)).stop

    asyncio.run(run_until_signalled(start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
