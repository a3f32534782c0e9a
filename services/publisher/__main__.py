"""`python -m services.publisher`: run the publisher until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

from proofline_kit.rpc.server import run_until_signalled
from proofline_kit.settings import SettingsError
from services.publisher.app import start_publisher
from services.publisher.settings import read_publisher_settings


def main() -> int:
    try:
        settings = read_publisher_settings()
    except SettingsError as exc:
        print(f"publisher: configuration error: {exc}", file=sys.stderr)
        return 2

    async def start() -> Callable[[], Awaitable[None]]:
        return (await start_publisher(settings)).stop

    asyncio.run(run_until_signalled(start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
