"""`python -m services.publisher`: run the publisher until SIGTERM/SIGINT."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable

from proofline_kit.runtime import run_service
from services.publisher.app import start_publisher
from services.publisher.settings import PublisherSettings, read_publisher_settings


async def _start(settings: PublisherSettings) -> Callable[[], Awaitable[None]]:
    return (await start_publisher(settings)).stop


if __name__ == "__main__":
    sys.exit(run_service("publisher", read_publisher_settings, _start))
