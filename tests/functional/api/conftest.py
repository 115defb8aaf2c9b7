"""Staff API fixtures: one migrated database and app for the package, tokens for every role.

Migrating and loading demo data once (not per test) keeps the API suite quick on SQLite and
PostgreSQL; tests therefore create what they change under names of their own and leave shared
things (the rule order, the demo accounts) as they found them. The schemathesis run, which
changes anything it can, has a database of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from router.core.domain import Category, Channel, Severity, Topic
from router.intake import ContactRequest, IntakeResult, Sender
from router.runtime import EXTENSION_KEY, Runtime
from router.services import rule_changes, rules
from router.services.demo import load_demo_data
from router.services.logins import create_staff, issue_token
from router.store import migrate
from tests.conftest import POSTGRES_SKIP_REASON, POSTGRES_URL, AppCache, make_settings
from tests.postgres import scratch_schema

ROLES = ("viewer", "editor", "admin")


def migrated_database(param: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Yield a migrated database: a SQLite file, or a fresh PostgreSQL schema (dropped after)."""
    if param == "sqlite":
        path: Path = tmp_path_factory.mktemp("api") / "router.sqlite3"
        url = f"sqlite:///{path}"
        migrate.upgrade(url)
        yield url
        return
    if not POSTGRES_URL:
        pytest.skip(POSTGRES_SKIP_REASON)
    with scratch_schema(POSTGRES_URL, "test") as url:
        migrate.upgrade(url)
        yield url


def demo_app(apps: AppCache, url: str) -> Flask:
    """Return the app on ``url``, after loading the demo data and a staff user of every role."""
    application = apps.get(make_settings(url))
    rt: Runtime = application.extensions[EXTENSION_KEY]
    load_demo_data(rt.db, rt.policy, rt.settings.pin_pepper, datetime.now(UTC) - timedelta(days=1))
    for role in ("viewer", "editor"):
        create_staff(rt.db, f"{role}@support.example", role, name=f"Test {role}")
    return application


def role_tokens(app: Flask) -> dict[str, str]:
    """Return a bearer token for each role (admin is the demo staff user)."""
    db = app.extensions[EXTENSION_KEY].db
    return {
        "viewer": issue_token(db, "viewer@support.example").token,
        "editor": issue_token(db, "editor@support.example").token,
        "admin": issue_token(db, "ops@support.example").token,
    }


@pytest.fixture(
    scope="package", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def shared_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Yield the migrated database the API tests share (one per database kind)."""
    yield from migrated_database(request.param, tmp_path_factory)


@pytest.fixture(scope="package")
def api_app(apps: AppCache, shared_url: str) -> Iterator[Flask]:
    """Yield an app with the demo data and a staff user of every role."""
    application = demo_app(apps, shared_url)
    yield application
    application.extensions[EXTENSION_KEY].db.dispose()


@pytest.fixture(scope="package")
def tokens(api_app: Flask) -> dict[str, str]:
    """Return a bearer token for each role."""
    return role_tokens(api_app)


class ApiClient:
    """Call the API as a role and get (status, JSON) back."""

    def __init__(self, client: FlaskClient, tokens: dict[str, str]) -> None:
        self.client = client
        self.tokens = tokens

    def call(
        self,
        method: str,
        path: str,
        *,
        role: str | None = "admin",
        json: Any = None,
        query: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> TestResponse:
        """Send one request; ``role=None`` sends no token."""
        all_headers = dict(headers or {})
        if role is not None:
            all_headers["Authorization"] = f"Bearer {self.tokens[role]}"
        url = path if path.startswith("/") else f"/api/v1/{path}"
        return self.client.open(
            url, method=method, json=json, query_string=query, headers=all_headers
        )

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> TestResponse:
        return self.call("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> TestResponse:
        return self.call("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> TestResponse:
        return self.call("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> TestResponse:
        return self.call("DELETE", path, **kwargs)


@pytest.fixture
def api(api_app: Flask, tokens: dict[str, str]) -> ApiClient:
    """Return an API client for the module's app."""
    return ApiClient(api_app.test_client(), tokens)


@pytest.fixture
def rt(api_app: Flask) -> Runtime:
    """Return the module app's runtime (overrides the root fixture of the same name)."""
    runtime: Runtime = api_app.extensions[EXTENSION_KEY]
    return runtime


@pytest.fixture
def rules_put_back(rt: Runtime) -> Iterator[None]:
    """Store the rules in force again after the test if it left them changed."""
    # Other modules' tests route contacts through the shared rules and expect their order.
    before = rules.get_rules(rt.db, rt.policy)
    yield
    after = rules.get_rules(rt.db, rt.policy)
    if after.documents != before.documents:
        rule_changes.replace_rules(
            rt.db,
            rt.policy,
            base_version=after.version,
            documents=before.documents,
            actor="tests@support.example",
            note="put back after a test",
        )


def make_contact(
    rt: Runtime,
    *,
    channel: Channel = Channel.EMAIL,
    admin_email: str | None = "alice@acme.example",
    account_id: str | None = None,
    received_at: datetime | None = None,
    severity: Severity | None = Severity.S2,
    topic: Topic | None = Topic.WINDOWS,
    category: Category | None = None,
    subject: str | None = "It is broken",
    tags: frozenset[str] = frozenset(),
) -> IntakeResult:
    """Store and route one contact through the one intake path."""
    return rt.intake.intake(
        ContactRequest(
            channel=channel,
            external_id=f"test-{uuid.uuid4().hex}",
            received_at=received_at or datetime.now(UTC),
            sender=Sender(account_id=account_id, admin_email=admin_email, from_address=admin_email),
            subject=subject,
            severity=severity,
            category=category,
            topic=topic,
            tags=tags,
        )
    )


def current_version(api: ApiClient) -> int:
    """Return the rules version in force."""
    response = api.get("rule-set", role="viewer")
    assert response.status_code == 200, response.get_json()
    version: int = response.get_json()["version"]
    return version
