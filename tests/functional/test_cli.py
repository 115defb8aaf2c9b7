"""The `flask --app app …` commands, through Flask's CLI runner."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from flask import Flask
from sqlalchemy import func, select

from app import create_app
from config import Settings
from router.runtime import EXTENSION_KEY
from router.services.logins import authenticate_token, verify_password
from router.store import migrate
from router.store.db import Database
from router.store.models import (
    Account,
    Admin,
    ApiToken,
    AuditEntry,
    Queue,
    RuleSetVersion,
    StaffUser,
    SupportPin,
)


def invoke(app: Flask, *args: str, input: str | None = None) -> tuple[int, str]:
    # Click 8.2+ mixes stderr into `output`, as a user at a terminal would see it.
    result = app.test_cli_runner().invoke(args=list(args), input=input)
    return result.exit_code, result.output


def count(db: Database, model: type) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_db_upgrade_seeds_queues_and_rules_once(app: Flask, db: Database) -> None:
    code, output = invoke(app, "db", "upgrade")
    assert code == 0, output
    assert "default queues added: 16" in output
    assert count(db, Queue) == 16 and count(db, RuleSetVersion) == 1
    code, output = invoke(app, "db", "upgrade")
    assert code == 0 and "default queues added: 0" in output
    assert count(db, RuleSetVersion) == 1


def test_db_upgrade_stops_when_the_rules_in_force_no_longer_compile(
    app: Flask, db: Database
) -> None:
    code, output = invoke(app, "db", "upgrade")
    assert code == 0, output
    with db.transaction() as session:
        rules = session.get(RuleSetVersion, 1).documents["rules"]
        # Stored by an earlier release whose engine took lookarounds; RE2 does not.
        lookaround = {"field": "subject", "op": "matches", "value": "^(?!spam).*outage"}
        broken = [{**rules[0], "when": {"all": [lookaround]}}, *rules[1:]]
        session.add(RuleSetVersion(version=2, documents={"rules": broken}, created_by="old"))
    code, output = invoke(app, "db", "upgrade")
    assert code == 1
    assert "no longer compile" in output and "rules[0].when.all[0]" in output


def test_db_current_and_downgrade(app: Flask) -> None:
    code, output = invoke(app, "db", "current")
    head = migrate.head_revision()
    assert code == 0 and f"current: {head}; head: {head}" in output
    code, output = invoke(app, "db", "downgrade", "base")
    assert code == 0, output
    code, output = invoke(app, "db", "current")
    assert "current: empty" in output
    code, output = invoke(app, "db", "downgrade", "nonsense")
    assert code == 1 and "Error:" in output


def test_demo_data_is_idempotent(app: Flask, db: Database) -> None:
    code, first = invoke(app, "demo-data")
    assert code == 0, first
    assert "demo data loaded" in first
    assert "482913  acme" in first and "alice@acme.example" in first
    sizes = [count(db, model) for model in (Account, Admin, SupportPin, StaffUser, Queue)]
    code, second = invoke(app, "demo-data")
    assert code == 0 and "already present" in second
    assert [count(db, model) for model in (Account, Admin, SupportPin, StaffUser, Queue)] == sizes
    # Each run prints a fresh token and revokes the previous demo token.
    tokens = [line.split(": ")[1] for line in (first + second).splitlines() if "API token" in line]
    assert len(tokens) == 2 and tokens[0] != tokens[1]
    now = datetime.now(UTC)
    assert authenticate_token(db, tokens[0], now) is None
    identity = authenticate_token(db, tokens[1], now)
    assert identity is not None and identity.role == "admin"


def test_demo_data_refuses_production(app: Flask, settings: Settings, db: Database) -> None:
    # Issue 12, item 9: it used to add an admin with a published password, published PINs and
    # an admin API token, even to a database holding real data.
    # Built fresh: a production app on this test's own database (never asked for again).
    production = create_app(dataclasses.replace(settings, env="production"))
    models = (Account, Admin, SupportPin, StaffUser, ApiToken, Queue, RuleSetVersion, AuditEntry)
    try:
        for state in ("empty", "holding data"):
            sizes = [count(db, model) for model in models]
            code, output = invoke(production, "demo-data")
            assert code != 0, output
            assert output.startswith("Error: demo-data refuses to run with APP_ENV=production")
            assert "482913" not in output and "Staff API token" not in output
            assert [count(db, model) for model in models] == sizes, state
            code, output = invoke(app, "demo-data")  # development and test still load it
            assert code == 0, output
    finally:
        production.extensions[EXTENSION_KEY].db.dispose()


def test_staff_create_and_token(app: Flask, db: Database) -> None:
    code, output = invoke(app, "staff", "create", "Lead@Support.Example", "--role", "editor")
    assert code == 0 and "created lead@support.example (editor)" in output
    code, output = invoke(app, "staff", "create", "lead@support.example", "--role", "viewer")
    assert code == 1 and "already exists" in output
    code, output = invoke(app, "staff", "create", "x@support.example", "--role", "owner")
    assert code == 2 and "owner" in output
    code, output = invoke(app, "staff", "create", "not-an-email", "--role", "viewer")
    assert code == 1 and "not an email address" in output
    code, output = invoke(app, "staff", "token", "lead@support.example")
    assert code == 0
    token = output.strip()
    identity = authenticate_token(db, token, datetime.now(UTC))
    assert identity is not None and identity.email == "lead@support.example"
    with db.session() as session:
        stored = session.scalars(select(ApiToken.token_hash)).all()
    assert token not in stored  # only the digest is kept
    code, output = invoke(app, "staff", "token", "nobody@support.example")
    assert code == 1 and "no active staff user" in output


def test_staff_create_with_prompted_password(app: Flask) -> None:
    code, output = invoke(
        app,
        "staff",
        "create",
        "sup@support.example",
        "--role",
        "admin",
        "--password",
        input="a-long-password-1\na-long-password-1\n",
    )
    assert code == 0, output
    db = app.extensions[EXTENSION_KEY].db
    assert verify_password(db, "sup@support.example", "a-long-password-1") is not None
    assert verify_password(db, "sup@support.example", "wrong-password-12") is None


def test_accounts_import(app: Flask, db: Database, tmp_path: Path) -> None:
    good = tmp_path / "accounts.csv"
    good.write_text(
        "account_id,account_name,tier,region,admin_email,pin\n"
        "acme,Acme,premium,us,alice@acme.example,482913\n"
    )
    code, output = invoke(app, "accounts", "import", str(good))
    assert code == 0, output
    assert "1 account(s) created" in output and "1 PIN(s) set" in output
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "account_id,account_name,tier,region,admin_email,pin\n"
        "globex,Globex,standard,il,bob@globex.example,\n"
        "hooli,Hooli,platinum,in,priya@hooli.example,\n"
    )
    code, output = invoke(app, "accounts", "import", str(bad))
    assert code == 1
    assert f"{bad}: line 3: tier 'platinum'" in output
    assert "nothing was imported" in output
    assert count(db, Account) == 1
    code, output = invoke(app, "accounts", "import", str(tmp_path / "missing.csv"))
    assert code == 2 and "does not exist" in output


def test_explain_prints_the_decision_and_trace(app: Flask) -> None:
    invoke(app, "demo-data")
    code, output = invoke(
        app,
        "explain",
        "--account",
        "acme",
        "--channel",
        "voice",
        "--severity",
        "S1",
        "--topic",
        "identity",
        "--at",
        "2026-11-27T15:00:00Z",
    )
    assert code == 0, output
    assert "queue:    cse-identity  (priority 90)" in output
    assert "due 2026-11-27T16:00:00+00:00" in output
    assert "no_match  free-tier-help-center: tier eq 'free' (was 'premium')" in output
    code, output = invoke(
        app,
        "explain",
        "--tier",
        "standard",
        "--region",
        "il",
        "--channel",
        "email",
        "--at",
        "2026-11-27T15:00:00Z",
        "--json",
    )
    assert code == 0, output
    assert '"queue": "cse-general"' in output and '"sla_policy": "standard"' in output


def test_explain_reports_bad_input(app: Flask) -> None:
    code, output = invoke(app, "explain", "--account", "nobody", "--channel", "voice")
    assert code == 1 and "cannot identify the contact: unknown_account" in output
    code, output = invoke(
        app, "explain", "--tier", "premium", "--channel", "voice", "--at", "yesterday"
    )
    assert code == 2 and "--at" in output
    code, output = invoke(app, "explain", "--channel", "voice")
    assert code == 2 and "give --account/--admin, or --tier" in output
