"""Plain console output: every line is prefixed with who wrote it."""

from __future__ import annotations

from typing import TextIO

SUPERVISOR = "devstack"
_PREFIX_WIDTH = 14  # len("signer_gateway")


class Console:
    """Writes whole lines to one stream; a closed stream never stops the supervisor."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def say(self, message: str) -> None:
        self.line(SUPERVISOR, message)

    def line(self, source: str, text: str) -> None:
        self.raw(f"{source:>{_PREFIX_WIDTH}} | {text}")

    def raw(self, text: str) -> None:
        try:
            self._stream.write(text + "\n")
            self._stream.flush()
        except (BrokenPipeError, ValueError):
            pass  # the reader went away (e.g. `make run | head`); keep supervising
