"""Waiting for something to answer, with a deadline."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

from proofline_tools.devstack.errors import StartupError

_POLL_INTERVAL_S = 0.2


async def poll_until(probe: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    """Call `probe` until it returns True; StartupError after `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await probe():
        if loop.time() >= deadline:
            raise StartupError(f"{what} did not become ready within {timeout_s:g} s")
        await asyncio.sleep(_POLL_INTERVAL_S)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def require_free_port(port: int, what: str) -> None:
    """Refuse to start next to a stale server: its health answer would be mistaken for ours."""
    if not port_is_free(port):
        raise StartupError(f"port {port} ({what}) is already in use on 127.0.0.1")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port
