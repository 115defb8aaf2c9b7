"""`flask simulate chat` against a running instance (a real HTTP server on a local port)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import func, select
from werkzeug.serving import make_server

from router.store.db import Database
from router.store.models import ContactEvent
from tests.functional.chat.conftest import counts


@pytest.fixture
def running(app: Flask) -> Iterator[str]:
    """Serve the app on 127.0.0.1 (an ephemeral port) and yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


def simulate(app: Flask, *args: str):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=["simulate", "chat", *args])


def test_simulated_premium_chat_is_live(app: Flask, running: str, db: Database) -> None:
    result = simulate(
        app,
        *("--org", "acme", "--admin", "alice@acme.example", "--topic", "windows"),
        *("--subject", "Agent down", "--severity", "S1", "--say", "any news?", "--url", running),
    )
    assert result.exit_code == 0, result.output
    assert "POST /chat/sessions -> 201" in result.output
    assert "mode: live" in result.output and "queue:    cse-windows" in result.output
    assert "sla:      premium, first response due" in result.output
    assert "/messages -> 201" in result.output
    with db.session() as session:
        messages = select(func.count()).where(ContactEvent.kind == "message")
        assert session.scalar(messages) == 1


def test_simulated_standard_chat_with_handoff(app: Flask, running: str) -> None:
    result = simulate(
        app,
        *("--org", "globex", "--admin", "bob@globex.example", "--topic", "mac", "--subject", "x"),
        *("--handoff", "--json", "--url", running),
    )
    assert result.exit_code == 0, result.output
    opened, handed = (json.loads(line) for line in result.output.splitlines())
    assert opened["mode"] == "bot"
    # Live or offline depends on the real clock's time in Israel; either is routed.
    assert handed["mode"] in ("live", "offline") and handed["queue"] == "standard-chat"


def test_simulated_chat_reports_a_refusal(app: Flask, running: str, db: Database) -> None:
    result = simulate(
        app,
        *("--org", "acme", "--admin", "mallory@evil.example", "--topic", "mac", "--subject", "x"),
        *("--url", running),
    )
    assert result.exit_code != 0
    assert "answered 401" in result.output and "unknown_admin" in result.output
    assert counts(db) == (0, 0)


def test_simulator_needs_a_reachable_http_url(app: Flask) -> None:
    bad = simulate(
        app,
        "--org",
        "a",
        "--admin",
        "a@b.c",
        "--topic",
        "mac",
        "--subject",
        "x",
        "--url",
        "file:///etc/passwd",
    )
    assert bad.exit_code != 0 and "http://" in bad.output
    down = simulate(
        app,
        "--org",
        "a",
        "--admin",
        "a@b.c",
        "--topic",
        "mac",
        "--subject",
        "x",
        "--url",
        "http://127.0.0.1:9",
    )
    assert down.exit_code != 0 and "cannot reach" in down.output
