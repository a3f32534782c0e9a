"""Entry point of `make run` (`python -m proofline_tools.devstack`, or the `proofline-run` script)."""

from __future__ import annotations

import asyncio
import sys

from proofline_kit.settings import SettingsError
from proofline_tools.devstack.config import read_config
from proofline_tools.devstack.console import Console
from proofline_tools.devstack.supervisor import supervise


def main() -> int:
    console = Console(sys.stdout)
    try:
        config = read_config()
    except SettingsError as exc:
        console.say(f"configuration error: {exc}")
        return 2
    return asyncio.run(supervise(config, console))
