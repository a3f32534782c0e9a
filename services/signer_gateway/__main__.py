"""`python -m services.signer_gateway`: run the signing gateway until SIGTERM/SIGINT."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable

from proofline_kit.runtime import run_service
from services.signer_gateway.app import start_signer
from services.signer_gateway.settings import SignerSettings, read_signer_settings


async def _start(settings: SignerSettings) -> Callable[[], Awaitable[None]]:
    return (await start_signer(settings)).stop


if __name__ == "__main__":
    sys.exit(run_service("signer_gateway", read_signer_settings, _start))
