"""Fixtures for the scheduler: accounts and queues, contacts made by intake, local receivers."""

from __future__ import annotations

import json
import random
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, inspect, make_url, pool, select, text, update

from config.policy import Policy
from config.settings import Settings
from router.core.domain import Channel, Severity, Topic
from router.intake import ContactRequest, IntakeService, Sender
from router.mailer import Mailer, MemoryTransport, SmtpTransport
from router.services.bootstrap import seed_policy_defaults
from router.services.notify import HttpWebhookPoster, Notifier
from router.services.routing import RoutingCache
from router.services.sla_monitor import SlaMonitor
from router.store import migrate
from router.store.db import Database
from router.store.models import Account, Admin, Contact, ContactEvent, Queue
from router.store.models.scheduler import Notification
from tests.conftest import POSTGRES_SKIP_REASON, POSTGRES_URL, make_settings
from tests.postgres import scratch_schema

WEBHOOK_SECRET = "webhook-secret-0123456789abcdef"
CSM = "casey.csm@support.example"
ACCOUNT_MANAGER = "amy.am@support.example"
WINDOWS_LEAD = "lead.windows@support.example"
DUTY_MANAGER = "duty.manager@support.example"


# Migrating a fresh database for every test is most of a test's time here. Instead, SQLite tests
# get a copy of a file migrated once, and PostgreSQL tests share one schema migrated once and
# emptied before each test. Migrations themselves are tested in tests/integration.


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a SQLite file migrated to head, made once per session."""
    path = tmp_path_factory.mktemp("template") / "router.sqlite3"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[tuple[str, list[str]]]:
    """Yield the URL of a PostgreSQL schema migrated to head, and its tables (children first)."""
    if not POSTGRES_URL:
        pytest.skip(POSTGRES_SKIP_REASON)
    with scratch_schema(POSTGRES_URL, "test_scheduler") as url:
        migrate.upgrade(url)
        engine = create_engine(url)
        present = set(inspect(engine).get_table_names()) - {"alembic_version"}
        engine.dispose()
        ordered = [t.name for t in reversed(migrate.metadata().sorted_tables)]
        yield url, [t for t in ordered if t in present] + sorted(present - set(ordered))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Return a database URL: a SQLite file, or the shared PostgreSQL schema, emptied."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'router.sqlite3'}"
    url, tables = request.getfixturevalue("postgres_schema")
    engine = create_engine(url, poolclass=pool.NullPool)
    # DELETE, not TRUNCATE: on tables this small it is many times quicker.
    with engine.begin() as connection:
        for table in tables:
            connection.execute(text(f'DELETE FROM "{table}"'))
    engine.dispose()
    return str(url)


@pytest.fixture
def migrated_url(database_url: str, sqlite_template: Path) -> str:
    """Return a database at head: a copy of the SQLite template, or the PostgreSQL schema."""
    if database_url.startswith("sqlite"):
        database = make_url(database_url).database
        assert database is not None
        shutil.copyfile(sqlite_template, database)
    return database_url


@pytest.fixture
def settings(migrated_url: str) -> Settings:
    """Return test settings with a lock key of this test's own and no metrics caching."""
    # Advisory locks are per database, not per schema: tests running side by side (and other
    # people's test runs on the same server) must not contend for the same key.
    return make_settings(migrated_url).with_overrides(
        scheduler_lock_key=random.randrange(1, 2**62), metrics_cache_seconds=0
    )


@dataclass
class World:
    """A seeded store: a premium and a standard account (both US), queues with owners."""

    db: Database
    policy: Policy
    intake: IntakeService
    monitor: SlaMonitor
    counter: int = 0

    def contact(
        self,
        at: datetime,
        *,
        admin: str = "alice@acme.example",
        severity: Severity = Severity.S1,
        topic: Topic = Topic.WINDOWS,
    ) -> int:
        """Open an email contact through the one intake path; return its id."""
        self.counter += 1
        result = self.intake.intake(
            ContactRequest(
                channel=Channel.EMAIL,
                external_id=f"<m{self.counter}@test.example>",
                received_at=at,
                sender=Sender(admin_email=admin),
                subject=f"Agent problem {self.counter}",
                severity=severity,
                topic=topic,
            )
        )
        assert result.created and result.due_at is not None, result
        return result.contact_id

    def get(self, contact_id: int) -> Contact:
        with self.db.session() as session:
            contact = session.get(Contact, contact_id)
            assert contact is not None
            return contact

    def events(self, contact_id: int, *kinds: str) -> list[ContactEvent]:
        with self.db.session() as session:
            query = select(ContactEvent).where(ContactEvent.contact_id == contact_id)
            if kinds:
                query = query.where(ContactEvent.kind.in_(kinds))
            return list(session.scalars(query.order_by(ContactEvent.id)))

    def kinds(self, contact_id: int) -> list[str]:
        return [event.kind for event in self.events(contact_id)]

    def notifications(self, contact_id: int | None = None) -> list[Notification]:
        with self.db.session() as session:
            query = select(Notification).order_by(Notification.id)
            if contact_id is not None:
                query = query.where(Notification.contact_id == contact_id)
            return list(session.scalars(query))

    def set_contact(self, contact_id: int, **values: Any) -> None:
        with self.db.transaction() as session:
            session.execute(update(Contact).where(Contact.id == contact_id).values(**values))

    def set_queue(self, key: str, **values: Any) -> None:
        with self.db.transaction() as session:
            session.execute(update(Queue).where(Queue.key == key).values(**values))


@pytest.fixture
def world(db: Database, policy: Policy) -> World:
    """Return a store with queues, a premium and a standard US account, and a monitor."""
    seed_policy_defaults(db, policy)
    with db.transaction() as session:
        for account_id, name, tier, admin in (
            ("acme", "Acme Corp", "premium", "alice@acme.example"),
            ("initrode", "Initrode", "standard", "sam@initrode.example"),
        ):
            session.add(
                Account(
                    id=account_id,
                    name=name,
                    tier=tier,
                    region="us",
                    country="US",
                    timezone="America/New_York",
                    csm_name="Casey CSM",
                    csm_email=CSM,
                    account_manager_email=ACCOUNT_MANAGER,
                    attributes={},
                )
            )
            session.flush()
            session.add(Admin(account_id=account_id, email=admin, active=True))
        session.execute(
            update(Queue).where(Queue.key == "cse-windows").values(owners=[WINDOWS_LEAD])
        )
        session.execute(
            update(Queue).where(Queue.key == "escalations").values(owners=[DUTY_MANAGER])
        )
    return World(
        db=db,
        policy=policy,
        intake=IntakeService(db, policy, RoutingCache(policy)),
        monitor=SlaMonitor(db, policy),
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class SmtpSink:
    """A local SMTP server (aiosmtpd) that keeps what it receives."""

    host: str
    port: int
    received: list[tuple[list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [message for rcpts, message in self.received if address in rcpts]


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    """Run a local SMTP server on a free loopback port."""
    sink = SmtpSink(host="127.0.0.1", port=free_port())
    controller = Controller(sink, hostname=sink.host, port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


@dataclass
class WebhookSink:
    """A local HTTP server that records POSTs and answers with ``status``."""

    url: str
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    status: int = 204

    def documents(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]


@pytest.fixture
def webhook() -> Iterator[WebhookSink]:
    """Run a local webhook receiver (http.server in a thread)."""
    sink = WebhookSink(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            sink.received.append(({k: v for k, v in self.headers.items()}, body))
            self.send_response(sink.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/sla"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()


def smtp_notifier(db: Database, smtp: SmtpSink, **options: Any) -> Notifier:
    """Return a notifier mailing through the local SMTP server and posting real webhooks."""
    mailer = Mailer(SmtpTransport(host=smtp.host, port=smtp.port, timeout=5), "support@example.com")
    return Notifier(
        db,
        mailer,
        HttpWebhookPoster(timeout=5),
        webhook_secret=options.pop("webhook_secret", WEBHOOK_SECRET),
        **options,
    )


def memory_notifier(db: Database, **options: Any) -> tuple[Notifier, MemoryTransport]:
    """Return a notifier whose mail is kept in memory."""
    transport = MemoryTransport()
    notifier = Notifier(
        db,
        Mailer(transport, "support@example.com"),
        HttpWebhookPoster(timeout=5),
        webhook_secret=options.pop("webhook_secret", WEBHOOK_SECRET),
        **options,
    )
    return notifier, transport
