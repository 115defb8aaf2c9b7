"""Email channel fixtures: a real SMTP server (aiosmtpd), configured providers, demo accounts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email import policy as email_policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, select, text
from werkzeug.test import TestResponse

from channels.email.addresses import read_from
from config import Settings
from config.policy import Policy
from router.runtime import EXTENSION_KEY
from router.services.account_import import import_accounts_csv
from router.services.bootstrap import seed_policy_defaults
from router.store import migrate
from router.store.db import Database
from router.store.models import Contact, ContactEvent
from router.store.models.email import EmailMessage as StoredEmail
from tests.conftest import (
    POSTGRES_SKIP_REASON,
    POSTGRES_URL,
    TEST_PEPPER,
    AppCache,
    make_settings,
)
from tests.postgres import scratch_schema

SENDGRID_USER, SENDGRID_PASSWORD = "sendgrid-user", "sendgrid-password-0123456789"
POSTMARK_USER, POSTMARK_PASSWORD = "postmark-user", "postmark-password-0123456789"
MAILGUN_KEY = "key-mailgun-signing-0123456789abcdef"
MIME_TOKEN = "mime-token-0123456789abcdef"
SUPPORT = "support@router.example"
# The receiving host whose Authentication-Results the tests' app believes, and staff's domain.
TRUSTED_HOST = "mx.router.example"
STAFF_DOMAIN = "support.example"


class Inbox:
    """What the test SMTP server received; can be told to refuse the next messages."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse = 0  # answer this many DATA commands with a temporary failure
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            if self.refuse > 0:
                self.refuse -= 1
                return "451 4.3.0 try again later"
            message = BytesParser(policy=email_policy.default).parsebytes(envelope.content)
            self.messages.append(message)  # type: ignore[arg-type]
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        """Return the messages sent to ``address``."""
        return [m for m in self.messages if address in str(m["To"])]

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()
            self.envelopes.clear()
            self.refuse = 0


InboxT = TypeVar("InboxT", bound=Inbox)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def smtp_serving(inbox: InboxT) -> Iterator[tuple[InboxT, int]]:
    """Run a real SMTP server delivering to ``inbox`` on a free loopback port."""
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    """Run a real SMTP server on a free loopback port for the whole session."""
    with smtp_serving(Inbox()) as served:
        yield served


@pytest.fixture
def inbox(smtp_server: tuple[Inbox, int]) -> Iterator[Inbox]:
    """Return the SMTP server's inbox, empty."""
    smtp_server[0].clear()
    yield smtp_server[0]
    smtp_server[0].clear()


@pytest.fixture
def settings(migrated_url: str, smtp_server: tuple[Inbox, int]) -> Settings:
    """Return test settings with every email provider configured and SMTP to the test server."""
    return make_settings(migrated_url).with_overrides(
        sendgrid_basic_user=SENDGRID_USER,
        sendgrid_basic_password=SENDGRID_PASSWORD,
        mailgun_signing_key=MAILGUN_KEY,
        postmark_basic_user=POSTMARK_USER,
        postmark_basic_password=POSTMARK_PASSWORD,
        inbound_mime_token=MIME_TOKEN,
        mail_transport="smtp",
        smtp_host="127.0.0.1",
        smtp_port=smtp_server[1],
        smtp_timeout_seconds=5,
        mail_from=SUPPORT,
        mail_from_name="Acme Support Router",
        help_center_url="https://help.router.example",
        email_send_mode="inline",  # tests look in the inbox right after the request
        email_trusted_authserv_ids=TRUSTED_HOST,
        email_staff_domains=STAFF_DOMAIN,
    )


# The demo accounts the email tests use (same shape as `flask demo-data`, without the staff
# user whose password hashing would cost most of a second per test).
def demo_csv(now: datetime) -> str:
    trial, expired = (now - timedelta(days=5)).isoformat(), (now - timedelta(days=45)).isoformat()
    header = "account_id,account_name,tier,trial_started_at,is_partner,partner_id,region,admin_email,admin_name,admin_active"
    rows = [
        "acme,Acme Corp,premium,,no,,us,alice@acme.example,Alice Admin,yes",
        "acme,Acme Corp,premium,,no,,us,olga@acme.example,Olga,no",
        "globex,Globex Israel,standard,,no,,il,bob@globex.example,Bob,yes",
        f"initech,Initech,trial,{trial},no,,gb,carol@initech.example,Carol,yes",
        f"umbrella,Umbrella,trial,{expired},no,,fr,dave@umbrella.example,Dave,yes",
        "northwind,Northwind MSP,premium,,yes,,au,erin@northwind.example,Erin,yes",
        "contoso,Contoso,standard,,no,northwind,au,frank@contoso.example,Frank,yes",
    ]
    return "\n".join([header, *rows]) + "\n"


def _seed(url: str, policy: Policy) -> None:
    db = Database(url)
    try:
        seed_policy_defaults(db, policy, actor="tests")
        import_accounts_csv(db, policy, TEST_PEPPER, demo_csv(datetime.now(UTC)), actor="tests")
    finally:
        db.dispose()


# Per-test databases are reset, not rebuilt: a migration (~0.5 s) and an app (~0.3 s, the API's
# OpenAPI document) per test would make this directory slow. Each database kind gets one file or
# schema, migrated and seeded once; a test starts from a copy of the seeded SQLite file, or from
# the PostgreSQL schema with every contact-related table emptied.
CONTACT_TABLES = (
    "contacts",
    "email_messages",
    "email_outbox",
    "webhook_replay_tokens",
    "ops_events",
)


@pytest.fixture(scope="session")
def _sqlite_files(tmp_path_factory: pytest.TempPathFactory, policy: Policy) -> tuple[Path, Path]:
    """Return (seeded template, the working file tests use)."""
    folder = tmp_path_factory.mktemp("email-db")
    template = folder / "template.sqlite3"
    url = f"sqlite:///{template}"
    migrate.upgrade(url)
    _seed(url, policy)
    engine = create_engine(url)
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return template, folder / "router.sqlite3"


@pytest.fixture(scope="session")
def _postgres_schema(policy: Policy) -> Iterator[str]:
    """Migrate and seed one PostgreSQL schema for the session."""
    if not POSTGRES_URL:
        pytest.skip(POSTGRES_SKIP_REASON)
    with scratch_schema(POSTGRES_URL, "test_email") as url:
        migrate.upgrade(url)
        _seed(url, policy)
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def migrated_url(request: pytest.FixtureRequest) -> str:
    """Return a migrated database holding the demo accounts and default rules, and no contacts."""
    if request.param == "sqlite":
        template, working = request.getfixturevalue("_sqlite_files")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{working}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(template, working)
        return f"sqlite:///{working}"
    url: str = request.getfixturevalue("_postgres_schema")
    engine = create_engine(url)
    with engine.begin() as connection:
        # DELETE and a sequence reset: much faster than TRUNCATE on a handful of rows.
        for table in CONTACT_TABLES:
            connection.execute(text(f"DELETE FROM {table}"))
            connection.execute(
                text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 1, false)")
            )
        # Shared allowances (the global rejection cap) start full for every test.
        connection.execute(text("DELETE FROM rate_limit_buckets"))
    engine.dispose()
    return url


@pytest.fixture
def app(settings: Settings, apps: AppCache) -> Iterator[Flask]:
    """Yield the app for these settings (built once per database kind, its pool emptied after)."""
    application = apps.get(settings)
    yield application
    application.extensions[EXTENSION_KEY].db.dispose()


@pytest.fixture
def other_app(settings: Settings, apps: AppCache) -> Iterator[Any]:
    """Return a builder of test clients on the same database with other settings."""
    used: list[Flask] = []

    def build(**overrides: Any) -> FlaskClient:
        application = apps.get(settings.with_overrides(**overrides))
        used.append(application)
        return application.test_client()

    yield build
    for application in used:
        application.extensions[EXTENSION_KEY].db.dispose()


@pytest.fixture
def demo() -> None:
    """Mark a test as relying on the demo accounts (every test database holds them)."""
    # alice (premium, us), bob (standard, il), carol (trial), dave (expired trial: free),
    # erin (partner admin managing contoso), frank (contoso admin), olga (inactive acme admin).


# --- building messages -------------------------------------------------------------------


def new_id(domain: str = "acme.example") -> str:
    return f"<{uuid.uuid4().hex}@{domain}>"


def trusted_pass(sender: str, host: str = TRUSTED_HOST) -> str:
    """Return the Authentication-Results our MTA adds for mail whose DMARC check passed."""
    address = read_from([sender]).address or sender
    return f"{host}; spf=pass smtp.mailfrom={address}; dmarc=pass header.from={address.rpartition('@')[2]}"


def message(
    *,
    sender: str = "Alice Admin <alice@acme.example>",
    to: str = SUPPORT,
    subject: str = "[Sev2] Windows agent not reporting",
    body: str = "The agent on our Windows laptops stopped reporting.",
    message_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    attachments: Sequence[tuple[str, str, bytes]] = (),
    authenticated: bool = True,
) -> EmailMessage:
    """Build a real-looking message; ``authenticated``: as our trusted MTA passed it (DMARC)."""
    msg = EmailMessage()
    if authenticated:
        msg["Authentication-Results"] = trusted_pass(sender)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = "Fri, 27 Nov 2026 10:00:00 -0500"
    msg["Message-ID"] = message_id or new_id()
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    for filename, content_type, data in attachments:
        maintype, subtype = content_type.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg


# --- posting to the endpoints ------------------------------------------------------------


def post_mime(
    client: FlaskClient, raw: bytes | EmailMessage, token: str = MIME_TOKEN
) -> TestResponse:
    data = raw.as_bytes() if isinstance(raw, EmailMessage) else raw
    return client.post(
        "/email/inbound/mime",
        data=data,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "message/rfc822"},
    )


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def post_sendgrid_raw(
    client: FlaskClient,
    msg: EmailMessage,
    *,
    spf: str = "pass",
    dkim: str = "{@acme.example : pass}",
    auth: tuple[str, str] = (SENDGRID_USER, SENDGRID_PASSWORD),
) -> TestResponse:
    form = {
        "email": msg.as_string(),
        "to": str(msg["To"]),
        "from": str(msg["From"]),
        "subject": str(msg["Subject"]),
        "SPF": spf,
        "dkim": dkim,
        "envelope": json.dumps({"to": [SUPPORT], "from": "alice@acme.example"}),
        "charsets": json.dumps({"to": "UTF-8", "from": "UTF-8", "subject": "UTF-8"}),
        "sender_ip": "203.0.113.5",
    }
    return client.post(
        "/email/inbound/sendgrid",
        data=form,
        headers=basic(*auth),
        content_type="multipart/form-data",
    )


def post_multipart(
    client: FlaskClient,
    url: str,
    fields: Sequence[tuple[str, bytes]],
    files: Sequence[tuple[str, str, str, bytes]] = (),
    headers: Mapping[str, str] | None = None,
) -> TestResponse:
    """Post a multipart body built byte for byte (fields may be in any charset)."""
    boundary = "xYzZY" + uuid.uuid4().hex
    chunks: list[bytes] = []
    for name, value in fields:
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value
            + b"\r\n"
        )
    for field_name, filename, content_type, data in files:
        chunks.append(
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{field_name}"; '
                f'filename="{filename}"\r\nContent-Type: {content_type}\r\n\r\n'
            ).encode()
            + data
            + b"\r\n"
        )
    chunks.append(f"--{boundary}--\r\n".encode())
    return client.post(
        url,
        data=b"".join(chunks),
        headers=dict(headers or {}),
        content_type=f"multipart/form-data; boundary={boundary}",
    )


def mailgun_signature(
    timestamp: int | None = None, token: str | None = None, key: str = MAILGUN_KEY
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    tok = token or uuid.uuid4().hex + uuid.uuid4().hex[:18]
    signature = hmac.new(key.encode(), (ts + tok).encode(), hashlib.sha256).hexdigest()
    return {"timestamp": ts, "token": tok, "signature": signature}


def stored_contact(db: Database, message_id: str) -> Contact:
    """Return the contact stored for a Message-ID, its events and account loaded."""
    with db.session() as session:
        contact = session.scalar(
            select(Contact).where(Contact.channel == "email", Contact.external_id == message_id)
        )
        assert contact is not None, f"no contact for {message_id}"
        _ = (contact.events, contact.account)
        return contact


def events(db: Database, contact_id: int) -> list[ContactEvent]:
    with db.session() as session:
        return list(
            session.scalars(
                select(ContactEvent)
                .where(ContactEvent.contact_id == contact_id)
                .order_by(ContactEvent.id)
            )
        )


def stored_messages(db: Database) -> list[StoredEmail]:
    with db.session() as session:
        return list(session.scalars(select(StoredEmail).order_by(StoredEmail.id)))


# --- SendGrid signed webhooks: a test signing key (P-256; OpenSSL generated it) ------------

SIGNING_SECRET = 0x3211A06F49C17FD4F7434944F652FD306D7F7816D1D1A5E18C40DACD96170AE0


def sendgrid_public_key(secret: int = SIGNING_SECRET) -> str:
    """Return the base64 DER public key SendGrid would show for this private key."""
    public = ec.derive_private_key(secret, ec.SECP256R1()).public_key()
    der = public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def sendgrid_sign(payload: bytes, secret: int = SIGNING_SECRET) -> str:
    """Sign like SendGrid: ECDSA P-256 over SHA-256 of timestamp + body, base64 DER."""
    private = ec.derive_private_key(secret, ec.SECP256R1())
    return base64.b64encode(private.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
