"""Chat and portal fixtures: demo accounts, a fixed clock, portal tokens and a signed client."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text
from werkzeug.test import TestResponse

from channels.chat.service import ChatService
from channels.chat.tokens import mint_portal_token
from channels.chat.views import chat_service
from config import Settings
from config.policy import Policy
from router.services.account_import import import_accounts_csv
from router.services.bootstrap import seed_policy_defaults
from router.services.demo import _demo_csv
from router.store import migrate
from router.store.db import Database
from router.store.models import Account, Base, Contact, ContactEvent
from tests.conftest import (
    POSTGRES_SKIP_REASON,
    POSTGRES_URL,
    TEST_PEPPER,
    AppCache,
    make_settings,
)
from tests.postgres import scratch_schema

# At least 32 bytes, as RFC 7518 asks of an HS256 key (PyJWT warns below that).
PORTAL_SECRET = "chat-test-portal-secret-0123456789abcdef"

# Friday 2026-11-27 15:00 UTC: 10:00 in New York (open), 17:00 on a Friday in Israel (closed).
FRIDAY = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
# Sunday 2026-11-29 08:00 UTC: 10:00 in Israel, a working day there.
ISRAEL_SUNDAY = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
# Monday 2026-09-21 07:00 UTC: 10:00 in Israel on Yom Kippur, a public holiday.
YOM_KIPPUR = datetime(2026, 9, 21, 7, 0, tzinfo=UTC)


@dataclass
class Clock:
    """A clock tests set and move; the chat service reads it for every request."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: datetime) -> None:
        self.now = now


FREE_ACCOUNT_ROW = (
    "freeco,Free Co,free,,no,,us,no,Casey CSM,casey.csm@support.example,fred@freeco.example,\n"
)
# Tables a prepared store keeps between tests: schema version and the seeded queues and rules.
_KEPT_TABLES = {"alembic_version", "queues", "rule_set_versions"}


def _load_accounts(db: Database, policy: Policy) -> None:
    # The demo accounts and admins as `flask demo-data` loads them (trials relative to FRIDAY),
    # without its staff user (an Argon2 hash per test), plus a free account.
    import_accounts_csv(
        db, policy, TEST_PEPPER, _demo_csv(FRIDAY) + FREE_ACCOUNT_ROW, actor="tests"
    )


def _prepare(url: str, policy: Policy) -> None:
    """Migrate ``url``, store the default queues and rules, and load the demo accounts."""
    migrate.upgrade(url)
    db = Database(url)
    try:
        seed_policy_defaults(db, policy, actor="tests")
        _load_accounts(db, policy)
    finally:
        db.dispose()


class PreparedPostgres:
    """A PostgreSQL schema prepared once, emptied back to its prepared state between tests."""

    def __init__(self, url: str, policy: Policy) -> None:
        self.url = url
        self.policy = policy
        _prepare(url, policy)
        self.db = Database(url)

    def reset(self) -> None:
        """Delete every row but the schema version, queues and rules; reload the demo accounts."""
        # DELETE, children first, is several times faster than TRUNCATE on tables this small.
        with self.db.engine.begin() as connection:
            existing = {
                name
                for (name,) in connection.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
                )
            } - _KEPT_TABLES
            known = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name in existing]
            # No model references a table outside the models (e.g. a job store): empty those first.
            for name in [*sorted(existing - set(known)), *known]:
                connection.execute(text(f'DELETE FROM "{name}"'))
        _load_accounts(self.db, self.policy)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory, policy: Policy) -> Path:
    """Return a SQLite file prepared once per run; each test gets a copy."""
    path = tmp_path_factory.mktemp("chat-template") / "router.sqlite3"
    _prepare(f"sqlite:///{path}", policy)
    return path


@pytest.fixture(scope="session")
def postgres_schema(policy: Policy) -> Iterator[PreparedPostgres]:
    """Yield a PostgreSQL schema prepared once per run (dropped at the end)."""
    if not POSTGRES_URL:
        pytest.skip(POSTGRES_SKIP_REASON)
    with scratch_schema(POSTGRES_URL, "test_chat") as url:
        prepared = PreparedPostgres(url, policy)
        try:
            yield prepared
        finally:
            prepared.db.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Return a store holding only the default queues, rules and demo accounts, per test.

    Preparing a store from scratch (migrate, seed, import) for every test would dominate this
    directory's run time, so it is done once per run: SQLite tests get a copy of a prepared
    file, PostgreSQL tests a prepared schema emptied back to that state before each test.
    """
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "router.sqlite3"
        # The backup API copies a consistent image, whatever the template's WAL holds.
        with (
            closing(sqlite3.connect(template)) as source,
            closing(sqlite3.connect(path)) as target,
        ):
            source.backup(target)
        return f"sqlite:///{path}"
    prepared: PreparedPostgres = request.getfixturevalue("postgres_schema")
    prepared.reset()
    return prepared.url


@pytest.fixture
def migrated_url(database_url: str) -> str:
    """Return the prepared store (already migrated)."""
    return database_url


@pytest.fixture
def app(apps: AppCache, settings: Settings) -> Iterator[Flask]:
    """Yield a cached app rewired to this test's store and settings.

    Each test has a store of its own (a copied file), so asking `apps.get` for an app of the
    test's settings would build one per test; the cached app's services are rebuilt instead.
    """
    with apps.rewire(apps.get(make_settings("sqlite://")), settings) as application:
        yield application


@pytest.fixture
def settings(migrated_url: str) -> Settings:
    """Return test settings with a full-length portal secret."""
    return make_settings(migrated_url).with_overrides(portal_jwt_secret=PORTAL_SECRET)


@pytest.fixture
def clock() -> Clock:
    return Clock(FRIDAY)


@pytest.fixture
def service(app: Flask, clock: Clock) -> ChatService:
    chat = chat_service(app)
    chat.clock = clock
    return chat


@pytest.fixture
def portal(client: FlaskClient, service: ChatService, clock: Clock) -> Iterator[Portal]:
    yield Portal(client, clock)


class Portal:
    """The admin portal: mints tokens and calls the chat endpoints."""

    def __init__(self, client: FlaskClient, clock: Clock) -> None:
        self.client = client
        self.clock = clock

    def token(
        self,
        admin: str = "alice@acme.example",
        org: str = "acme",
        *,
        ttl: timedelta = timedelta(minutes=5),
        secret: str = PORTAL_SECRET,
    ) -> str:
        return mint_portal_token(
            secret=secret, admin_email=admin, account_id=org, now=self.clock(), ttl=ttl
        )

    def post(
        self,
        path: str,
        body: Any = None,
        *,
        admin: str = "alice@acme.example",
        org: str = "acme",
        token: str | None = None,
        key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> TestResponse:
        sent = {"Authorization": f"Bearer {token or self.token(admin, org)}"}
        if key is not None:
            sent["Idempotency-Key"] = key
        sent.update(headers or {})
        if body is None:
            return self.client.post(path, headers=sent)
        return self.client.post(path, json=body, headers=sent)

    def get(
        self, path: str, *, admin: str = "alice@acme.example", org: str = "acme"
    ) -> TestResponse:
        return self.client.get(path, headers={"Authorization": f"Bearer {self.token(admin, org)}"})

    def chat(
        self, admin: str = "alice@acme.example", org: str = "acme", **body: Any
    ) -> TestResponse:
        payload = {"topic": "windows", "subject": "Agent will not start", **body}
        key = payload.pop("key", None)
        return self.post("/chat/sessions", payload, admin=admin, org=org, key=key)


def raw_token(
    claims: dict[str, Any], *, secret: str = PORTAL_SECRET, algorithm: str = "HS256"
) -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def counts(db: Database) -> tuple[int, int]:
    """Return (contacts, timeline events) stored."""
    with db.session() as session:
        return (
            session.scalar(select(func.count()).select_from(Contact)) or 0,
            session.scalar(select(func.count()).select_from(ContactEvent)) or 0,
        )


def set_trial_start(db: Database, account_id: str, started: datetime) -> None:
    with db.transaction() as session:
        account = session.get(Account, account_id)
        assert account is not None
        account.trial_started_at = started


def stored(db: Database, contact_id: int) -> Contact:
    with db.session() as session:
        contact = session.get(Contact, contact_id)
        assert contact is not None
        _ = (contact.events, contact.admin)  # load before the session closes
        return contact
