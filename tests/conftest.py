"""Shared fixtures: settings, databases (SQLite always, PostgreSQL when configured), the app,
and a demo store with a log for tests that serve it through gunicorn."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from config import Settings
from config.policy import Policy
from router.runtime import EXTENSION_KEY, Runtime
from router.store import migrate
from router.store.db import Database, scratch_schema
from tests.unit.conftest import policy  # noqa: F401  (the pure tests' fixture, shared)

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


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    """Yield an app on a migrated database."""
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
