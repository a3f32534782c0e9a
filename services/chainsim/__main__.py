"""``python -m services.chainsim``: serve until SIGTERM/SIGINT, saving the snapshot on the way out."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from proofline_kit.settings import SettingsError
from services.chainsim.app import ChainSim
from services.chainsim.settings import read_chainsim_settings


async def serve() -> None:
    settings = read_chainsim_settings()
    sim = ChainSim(settings)
    port = await sim.start()
    print(f"chainsim listening on http://{settings.host}:{port} (port {port})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await sim.stop()
        print("chainsim stopped", flush=True)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        asyncio.run(serve())
    except SettingsError as exc:
        print(f"chainsim: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


if __name__ == "__main__":
    main()
