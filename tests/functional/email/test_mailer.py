"""The mailer: SMTP (against a real aiosmtpd server), console and memory transports."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from router.mailer import (
    ConsoleTransport,
    Mailer,
    MailError,
    MemoryTransport,
    SmtpTransport,
    mailer_from_settings,
)
from tests.conftest import make_settings
from tests.functional.email.conftest import Inbox, free_port


def smtp_mailer(port: int, **options: Any) -> Mailer:
    transport = SmtpTransport(host="127.0.0.1", port=port, timeout=5, **options)
    return Mailer(transport, "support@router.example", "Support")


def test_smtp_send_returns_the_message_id(smtp_server: tuple[Inbox, int], inbox: Inbox) -> None:
    mailer = smtp_mailer(smtp_server[1])
    message = mailer.compose(
        to="alice@acme.example",
        to_name="Alice Admin",
        subject="Re: [#C-1] Agent\r\nBcc: injected@evil.example",
        text="Hello Alice \u2713",
        in_reply_to="<in@acme.example>",
        references=["<a@x>", "<in@acme.example>"],
        headers={"Auto-Submitted": "auto-replied"},
    )
    message_id = mailer.send(message)
    assert message_id.endswith("@router.example>")
    (received,) = inbox.messages
    assert received["Message-ID"] == message_id
    assert received["From"] == "Support <support@router.example>"
    assert received["To"] == "Alice Admin <alice@acme.example>"
    assert (
        received["Subject"] == "Re: [#C-1] Agent Bcc: injected@evil.example"
    )  # no header injection
    assert received["Bcc"] is None
    assert received["In-Reply-To"] == "<in@acme.example>"
    assert received["References"] == "<a@x> <in@acme.example>"
    assert received["Auto-Submitted"] == "auto-replied"
    assert received.get_content().strip() == "Hello Alice ✓"
    assert inbox.envelopes == [("support@router.example", ["alice@acme.example"])]


def test_send_fills_in_missing_headers(smtp_server: tuple[Inbox, int], inbox: Inbox) -> None:
    from email.message import EmailMessage

    message = EmailMessage()
    message["To"] = "bob@globex.example"
    message["Subject"] = "SLA warning"
    message.set_content("C-4 is at 75 %")
    message_id = smtp_mailer(smtp_server[1]).send(message)
    (received,) = inbox.messages
    assert received["Message-ID"] == message_id and received["Date"] is not None
    assert "support@router.example" in received["From"]


@pytest.fixture
def auth_server() -> Iterator[tuple[Inbox, int, list[tuple[bytes, bytes]]]]:
    inbox, logins = Inbox(), []

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        return AuthResult(success=data.password == b"right-password", handled=False)

    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=False,
        auth_exclude_mechanism=["LOGIN"],
    )
    controller.start()
    yield inbox, port, logins
    controller.stop()


def test_smtp_auth_uses_the_credentials(
    auth_server: tuple[Inbox, int, list[tuple[bytes, bytes]]],
) -> None:
    inbox, port, logins = auth_server
    good = smtp_mailer(port, username="router", password="right-password")
    good.send(good.compose(to="a@acme.example", subject="s", text="t"))
    assert len(inbox.messages) == 1 and logins[-1] == (b"router", b"right-password")
    bad = smtp_mailer(port, username="router", password="wrong-password")
    with pytest.raises(MailError, match="SMTPAuthenticationError 535") as failure:
        bad.send(bad.compose(to="a@acme.example", subject="s", text="t"))
    assert "wrong-password" not in str(failure.value)
    assert repr(SmtpTransport("h", 1, password="secret-value")).count("secret-value") == 0


def test_starttls_is_required_when_configured(smtp_server: tuple[Inbox, int], inbox: Inbox) -> None:
    mailer = smtp_mailer(smtp_server[1], security="starttls")
    with pytest.raises(MailError, match="STARTTLS"):
        mailer.send(mailer.compose(to="a@acme.example", subject="s", text="t"))
    assert inbox.messages == []


def test_unreachable_server_and_refusals_are_mail_errors(
    smtp_server: tuple[Inbox, int], inbox: Inbox
) -> None:
    down = smtp_mailer(free_port())
    with pytest.raises(MailError, match="ConnectionRefusedError") as refused:
        down.send(down.compose(to="a@acme.example", subject="s", text="t"))
    assert not refused.value.permanent
    inbox.refuse = 1
    busy = smtp_mailer(smtp_server[1])
    with pytest.raises(MailError, match="451"):
        busy.send(busy.compose(to="a@acme.example", subject="s", text="t"))


def test_console_transport_logs_instead_of_sending(caplog: pytest.LogCaptureFixture) -> None:
    mailer = Mailer(ConsoleTransport(), "support@router.example")
    with caplog.at_level(logging.INFO, logger="router.mailer"):
        message_id = mailer.send(
            mailer.compose(to="a@acme.example", subject="Hello", text="Body text")
        )
    assert (
        message_id in caplog.text
        and "Body text" in caplog.text
        and "MAIL_TRANSPORT=console" in caplog.text
    )


def test_memory_transport_and_settings() -> None:
    memory = MemoryTransport()
    mailer = Mailer(memory, "support@router.example")
    mailer.send(mailer.compose(to="a@acme.example", subject="s", text="t"))
    assert len(memory.sent) == 1
    memory.fail_with = MailError("down")
    with pytest.raises(MailError):
        mailer.send(mailer.compose(to="a@acme.example", subject="s", text="t"))
    settings = make_settings("sqlite://")
    assert isinstance(mailer_from_settings(settings).transport, ConsoleTransport)
    smtp = mailer_from_settings(
        settings.with_overrides(
            mail_transport="smtp", smtp_host="mx.example", smtp_port=587, smtp_security="starttls"
        )
    ).transport
    assert isinstance(smtp, SmtpTransport) and (smtp.host, smtp.port, smtp.security) == (
        "mx.example",
        587,
        "starttls",
    )
    with pytest.raises(MailError, match="could not be built"):
        mailer.compose(to="a@acme.example", subject="s", text="t", headers={"Subject": "twice"})


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"MAIL_TRANSPORT": "pigeon"}, "MAIL_TRANSPORT must be one of smtp, console"),
        ({"SMTP_SECURITY": "ssl"}, "SMTP_SECURITY must be one of none, starttls, tls"),
        ({"EMAIL_SEND_MODE": "later"}, "EMAIL_SEND_MODE must be one of background, inline"),
        ({"SMTP_PORT": "70000"}, "SMTP_PORT must be between 1 and 65535"),
        ({"SMTP_USERNAME": "router"}, "SMTP_USERNAME and SMTP_PASSWORD must be set together"),
        ({"EMAIL_MAX_MESSAGE_BYTES": "0"}, "EMAIL_MAX_MESSAGE_BYTES must be 1 or more"),
        (
            {"EMAIL_WEBHOOK_MAX_AGE_SECONDS": "-5"},
            "EMAIL_WEBHOOK_MAX_AGE_SECONDS must be 1 or more",
        ),
    ],
)
def test_mail_settings_are_validated(environ: dict[str, str], message: str) -> None:
    from config.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match=message):
        Settings.from_env(environ)


def test_production_mail_settings() -> None:
    from config.settings import Settings, SettingsError

    production = {
        "APP_ENV": "production",
        "DATABASE_URL": "postgresql://db/router",
        "SECRET_KEY": "Vq3xN8tR2kLm9ZpW4yHc7JdF6gBs1AeU",
        "PIN_PEPPER": "pepper-6Tf9Qw2Lx8Rk4Nm7Hc3Vb5Zj1Yd",
        "PORTAL_JWT_SECRET": "J4k8Pz2Wq6Xm9Rt3Vn7Hc5Lb1Fd0Gs8Ye",
        "TWILIO_AUTH_TOKEN": "9f8e2d4c6b1a3e5d7c9b0a2f4e6d8c1b",
        "PUBLIC_BASE_URL": "https://support-router.example.com",
    }
    assert Settings.from_env(production).effective_mail_transport == "smtp"
    assert Settings.from_env(production).email_send_mode == "background"
    assert (
        Settings.from_env({**production, "EMAIL_SEND_MODE": "inline"}).email_send_mode == "inline"
    )
    with pytest.raises(SettingsError, match="SMTP_SECURITY must be starttls or tls"):
        Settings.from_env({**production, "SMTP_USERNAME": "u", "SMTP_PASSWORD": "secret-password"})
    secure = Settings.from_env(
        {
            **production,
            "SMTP_USERNAME": "u",
            "SMTP_PASSWORD": "secret-password",
            "SMTP_SECURITY": "starttls",
        }
    )
    assert "secret-password" not in repr(secure)
    assert Settings.from_env({}).effective_mail_transport == "console"
