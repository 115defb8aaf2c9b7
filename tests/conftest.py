"""Shared fixtures: settings, databases (SQLite always, PostgreSQL when configured), the apps
(`apps`: the one cache of built apps every folder asks), and a demo store with a log for tests
that serve it through gunicorn."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import IO

import pytest
from flask import Flask
from flask.testing import FlaskClient

import app as app_module
from app import create_app
from channels.email.sender import EmailSender
from channels.email.views import SENDER_KEY
from config import Settings
from config.policy import Policy
from router.runtime import EXTENSION_KEY, Runtime
from router.store import migrate
from router.store.db import Database
from tests.postgres import scratch_schema

# The pure tests' fixtures, shared: the policy, and the TwiML XSD (skipping, or None when absent).
from tests.unit.conftest import policy, twiml_schema, twiml_schema_if_present  # noqa: F401

# The test harness's own switch (not a service setting): CI points it at PostgreSQL.
POSTGRES_URL = os.environ.get("TEST_DATABASE_URL")
POSTGRES_SKIP_REASON = "TEST_DATABASE_URL is not set: PostgreSQL tests skipped (CI sets it)"

TEST_PEPPER = "test-pepper-0123456789abcdef"


def make_settings(database_url: str) -> Settings:
    """Return test settings on ``database_url``."""
    return Settings(
        env="test",
        database_url=database_url,
        secret_key="test-secret-key-0123456789",
        twilio_auth_token="test-twilio-token-0123456789",
        portal_jwt_secret="test-portal-secret-0123456789",
        pin_pepper=TEST_PEPPER,
        public_base_url="https://router.example.com",
    ).validated()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Yield an empty database URL: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'router.sqlite3'}"
        return
    if not POSTGRES_URL:
        pytest.skip(POSTGRES_SKIP_REASON)
    with scratch_schema(POSTGRES_URL, "test") as url:
        yield url


@pytest.fixture
def migrated_url(database_url: str) -> str:
    """Return a database URL migrated to head."""
    migrate.upgrade(database_url)
    return database_url


@pytest.fixture
def settings(migrated_url: str) -> Settings:
    """Return test settings on a migrated database."""
    return make_settings(migrated_url)


class AppCache:
    """The apps the tests use, built once per distinct Settings (create_app plus its OpenAPI
    document cost far more than most tests), and disposed at the end of the session.

    Folders whose database is reset in place between tests (voice, email, the API, abuse, the
    browser) ask `get` for the app of their settings. A folder whose tests each get a store of
    their own (chat: a copied SQLite file per test) would build an app per test that way, so it
    borrows one cached app and `rewire`s it to the test's settings for the test's duration.
    """

    def __init__(self) -> None:
        self._apps: dict[Settings, Flask] = {}

    def get(self, settings: Settings) -> Flask:
        """Return the app built from ``settings`` (TESTING set), building it on first use."""
        application = self._apps.get(settings)
        if application is None:
            application = self._apps[settings] = create_app(settings)
            application.config["TESTING"] = True
        return application

    @contextmanager
    def rewire(self, application: Flask, settings: Settings) -> Iterator[Flask]:
        """Point ``application`` at ``settings`` (their database) until the block ends.

        A fresh runtime (database, intake and its routing cache) and fresh channel services are
        built by app.py's own `_runtime` and `_channel_services`, so each test starts from new
        services (default clocks, empty caches, an unstarted email sender); the app's metrics
        (its request hook counts into them) and policy are kept. Only settings those read may
        differ: the Flask config, the policy and the blueprints were fixed by create_app.
        """
        base: Runtime = application.extensions[EXTENSION_KEY]
        for name in ("env", "secret_key", "policy_dir", "log_level"):
            assert getattr(settings, name) == getattr(base.settings, name), (
                f"rewire cannot change {name}: ask get() for an app of these settings"
            )
        saved = dict(application.extensions)
        runtime = replace(app_module._runtime(settings, base.policy), metrics=base.metrics)
        application.extensions[EXTENSION_KEY] = runtime
        app_module._channel_services(application, runtime)
        try:
            yield application
        finally:
            sender: EmailSender = application.extensions[SENDER_KEY]
            application.extensions.clear()
            application.extensions.update(saved)
            assert sender.stop(), "the email sender thread did not stop"
            runtime.db.dispose()

    def dispose(self) -> None:
        """Close every cached app's database connections."""
        for application in self._apps.values():
            application.extensions[EXTENSION_KEY].db.dispose()


@pytest.fixture(scope="session")
def apps() -> Iterator[AppCache]:
    """Yield the session's app cache (the one place tests get a shared app from)."""
    cache = AppCache()
    yield cache
    cache.dispose()


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    """Yield an app on a migrated database."""
    # Built fresh: each test here has a database of its own, so a cached app would never be
    # asked for again, and tests such as the metrics ones count from a new app's zero.
    application = create_app(settings)
    application.config["TESTING"] = True
    yield application
    application.extensions[EXTENSION_KEY].db.dispose()


@pytest.fixture
def rt(app: Flask) -> Runtime:
    """Return the app's runtime (settings, policy, database)."""
    runtime: Runtime = app.extensions[EXTENSION_KEY]
    return runtime


@pytest.fixture
def db(rt: Runtime) -> Database:
    """Return the app's database."""
    return rt.db


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """Return a test client for the app."""
    return app.test_client()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path, policy: Policy) -> Iterator[str]:
    """Yield the URL of a migrated store holding the demo data (a SQLite file or a schema)."""
    # The harness builds on this module's settings, so it is imported when first needed.
    from tests.reliability.harness import postgres_schema, prepare_store

    if request.param == "sqlite":
        (tmp_path / "store").mkdir()
        url = f"sqlite:///{tmp_path / 'store' / 'router.sqlite3'}"
        prepare_store(url, policy)
        yield url
        return
    with postgres_schema("served") as url:
        prepare_store(url, policy)
        yield url


@pytest.fixture
def server_log(tmp_path: Path) -> Iterator[IO[str]]:
    """Yield the file the servers under test log to (its end is shown when a test fails)."""
    path = tmp_path / "server.log"
    with path.open("w") as log:
        yield log
    # Shown by pytest on failure through the captured output.
    print(f"--- server log ({path}):\n{path.read_text()[-6000:]}")
