"""Mail over SMTP with the standard library's client (in a worker thread: smtplib blocks)."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from enum import Enum

from proofline_kit.logging import get_logger
from services.wallet.adapters.redis_signups import email_unavailable


class SmtpSecurity(Enum):
    STARTTLS = "starttls"
    TLS = "tls"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    security: SmtpSecurity
    username: str
    password: str | None = field(repr=False)
    mail_from: str
    timeout_s: float


class SmtpMailer:
    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings
        self._log = get_logger("wallet.mail")

    async def send(self, to: str, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"] = self._settings.mail_from
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        try:
            await asyncio.to_thread(self._deliver, message)
        except (smtplib.SMTPException, OSError) as error:
            # The address and the body (the code) stay out of the log.
            self._log.warning("mail.not_sent", error=type(error).__name__, host=self._settings.host)
            raise email_unavailable("the mail could not be sent") from None

    def _deliver(self, message: EmailMessage) -> None:
        s = self._settings
        if not s.host:
            raise smtplib.SMTPException("no SMTP server configured (WALLET_SMTP_HOST)")
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if s.security is SmtpSecurity.TLS:
            client = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_s, context=context)
        else:
            client = smtplib.SMTP(s.host, s.port, timeout=s.timeout_s)
        with client:
            if s.security is SmtpSecurity.STARTTLS:
                client.starttls(context=context)
            if s.username:
                client.login(s.username, s.password or "")
            client.send_message(message)
