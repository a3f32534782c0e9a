"""A real local SMTP server (aiosmtpd) for `make run` and the tests: the wallet's sign-up mail is
delivered to it over SMTP and kept in memory (and, for `make run`, written to a folder), so a
newcomer or a test reads the code from the mail itself."""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

_CODE = re.compile(r"\b(\d{6})\b")
# `make run` keeps the mail its SMTP server receives here, under the data directory.
MAIL_FOLDER = "mail"


@dataclass(frozen=True, slots=True)
class Mail:
    to: tuple[str, ...]
    subject: str
    body: str

    @property
    def code(self) -> str:
        """The first 6-digit number in the body (the one-time code of a sign-up mail)."""
        found = _CODE.search(self.body)
        return found.group(1) if found else ""


class _Inbox:
    def __init__(self, folder: Path | None) -> None:
        self.mails: list[Mail] = []
        self._folder = folder

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        body = parsed.get_body(("plain",))
        mail = Mail(tuple(envelope.rcpt_tos), str(parsed["Subject"] or ""), body.get_content() if body else "")
        self.mails.append(mail)
        if self._folder is not None:
            self._folder.mkdir(parents=True, exist_ok=True)
            text = f"To: {', '.join(mail.to)}\nSubject: {mail.subject}\n\n{mail.body}"
            (self._folder / f"{len(self.mails):04d}.eml").write_text(text)
            (self._folder / "latest.eml").write_text(text)
        return "250 OK"


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class LocalMailServer:
    """Listens on `host:port` (0: a free port) until `stop()`; `mails` is what it received."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, folder: Path | None = None) -> None:
        self.host = host
        self.port = port or _free_port(host)
        self._inbox = _Inbox(folder)
        self._controller = Controller(self._inbox, hostname=host, port=self.port)
        self._running = False

    @property
    def mails(self) -> list[Mail]:
        return self._inbox.mails

    def start(self) -> None:
        self._controller.start()
        self._running = True

    def stop(self) -> None:
        """Stops listening (for good: a stopped server does not start again). Stopping twice is a no-op."""
        if self._running:
            self._running = False
            self._controller.stop()

    def mail_to(self, address: str, timeout_s: float = 5.0) -> Mail:
        """The latest mail to `address`, waiting up to `timeout_s` for one (blocking; for tests)."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = [m for m in self.mails if address in m.to]
            if found:
                return found[-1]
            if time.monotonic() > deadline:
                raise AssertionError(f"no mail to {address} within {timeout_s} s")
            time.sleep(0.02)
