"""The project's mailer: build an email, send it through a transport, get its Message-ID back.

Transports: ``smtp`` (the real one: host, port, STARTTLS or implicit TLS, AUTH credentials from
settings), ``console`` (development: the message is logged, not sent) and ``memory`` (tools and
tests: messages are kept in a list). Every failure to hand a message over is a ``MailError``;
callers decide whether to retry (``MailError.permanent`` says retrying cannot help).
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Protocol

from config.settings import Settings

log = logging.getLogger(__name__)

# Header values must stay on one line: a CR or LF in a value would let it inject headers.
_LINE_BREAKS = re.compile(r"[\r\n]+")


class MailError(Exception):
    """A message could not be handed to the mail server."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class MailTransport(Protocol):
    """Something that hands a finished message over for delivery."""

    @property
    def name(self) -> str:
        """Return the transport's name (smtp, console, memory)."""
        ...

    def deliver(self, message: EmailMessage) -> None:
        """Hand ``message`` over; raise MailError when it was not accepted."""
        ...


@dataclass(frozen=True)
class SmtpTransport:
    """Send through an SMTP server, optionally with STARTTLS or implicit TLS and AUTH."""

    host: str
    port: int
    security: str = "none"  # none, starttls or tls
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 10.0
    name: str = "smtp"

    def deliver(self, message: EmailMessage) -> None:
        """Send ``message`` in one SMTP conversation; raise MailError on any failure."""
        try:
            if self.security == "tls":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
                )
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with client:
                if self.security == "starttls":
                    client.starttls(context=ssl.create_default_context())
                if self.username and self.password:
                    client.login(self.username, self.password)
                refused = client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise MailError(
                f"every recipient was refused: {sorted(exc.recipients)} ({codes})",
                permanent=all(500 <= code < 600 for code in codes),
            ) from exc
        except smtplib.SMTPResponseException as exc:
            # The server's own words; they never contain our credentials.
            error = exc.smtp_error
            reply = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
            raise MailError(f"{type(exc).__name__} {exc.smtp_code}: {reply}".strip()) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise MailError(f"{type(exc).__name__}: {exc}") from exc
        if refused:
            raise MailError(f"some recipients were refused: {sorted(refused)}")


@dataclass(frozen=True)
class ConsoleTransport:
    """Development transport: log the whole message instead of sending it."""

    name: str = "console"

    def deliver(self, message: EmailMessage) -> None:
        """Log ``message`` at INFO."""
        log.info(
            "mail not sent (MAIL_TRANSPORT=console) to %s, Message-ID %s:\n%s",
            message["To"],
            message["Message-ID"],
            message.as_string(),
        )


@dataclass
class MemoryTransport:
    """Keep messages in a list (tools and tests); ``fail_with`` makes every delivery fail."""

    sent: list[EmailMessage] = field(default_factory=list)
    fail_with: MailError | None = None
    name: str = "memory"

    def deliver(self, message: EmailMessage) -> None:
        """Append ``message`` to ``sent``, or raise ``fail_with``."""
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append(message)


class Mailer:
    """Build and send the router's email; every message gets a Message-ID in our domain."""

    def __init__(self, transport: MailTransport, sender: str, sender_name: str | None = None):
        self.transport = transport
        self.sender = sender
        self.sender_name = sender_name

    @property
    def domain(self) -> str:
        """Return the domain our Message-IDs use (the sender address's)."""
        return self.sender.rpartition("@")[2] or "localhost"

    def new_message_id(self) -> str:
        """Return a fresh, globally unique Message-ID such as <...@example.com>."""
        return make_msgid(domain=self.domain)

    def compose(
        self,
        *,
        to: str,
        subject: str,
        text: str,
        to_name: str | None = None,
        html: str | None = None,
        message_id: str | None = None,
        in_reply_to: str | None = None,
        references: Iterable[str] = (),
        headers: Mapping[str, str] | None = None,
        date: datetime | None = None,
    ) -> EmailMessage:
        """Build a plain-text (optionally also HTML) message from us to ``to``."""
        try:
            message = EmailMessage()
            message["From"] = formataddr((_one_line(self.sender_name or ""), self.sender))
            message["To"] = formataddr((_one_line(to_name or ""), _one_line(to)))
            message["Subject"] = _one_line(subject)
            message["Date"] = format_datetime(date or datetime.now(UTC))
            message["Message-ID"] = _one_line(message_id or self.new_message_id())
            if in_reply_to:
                message["In-Reply-To"] = _one_line(in_reply_to)
            chain = " ".join(_one_line(reference) for reference in references if reference)
            if chain:
                message["References"] = chain
            for name, value in (headers or {}).items():
                message[_one_line(name)] = _one_line(value)
            message.set_content(text)
            if html is not None:
                message.add_alternative(html, subtype="html")
        except (ValueError, TypeError) as exc:
            raise MailError(f"message could not be built: {exc}", permanent=True) from exc
        return message

    def send(self, message: EmailMessage) -> str:
        """Send ``message`` (adding From, Date and Message-ID if missing); return its Message-ID."""
        if message["From"] is None:
            message["From"] = formataddr((self.sender_name or "", self.sender))
        if message["Date"] is None:
            message["Date"] = format_datetime(datetime.now(UTC))
        if message["Message-ID"] is None:
            message["Message-ID"] = self.new_message_id()
        self.transport.deliver(message)
        return str(message["Message-ID"])


def transport_from_settings(settings: Settings) -> MailTransport:
    """Return the transport MAIL_TRANSPORT names (smtp in production, console otherwise)."""
    if settings.effective_mail_transport == "smtp":
        return SmtpTransport(
            host=settings.smtp_host,
            port=settings.smtp_port,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=settings.smtp_password,
            timeout=float(settings.smtp_timeout_seconds),
        )
    return ConsoleTransport()


def mailer_from_settings(settings: Settings) -> Mailer:
    """Return the mailer the settings describe."""
    return Mailer(transport_from_settings(settings), settings.mail_from, settings.mail_from_name)


def _one_line(value: str) -> str:
    return _LINE_BREAKS.sub(" ", value).strip()
