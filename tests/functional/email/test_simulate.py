"""`flask --app app simulate email` against a running instance (a real HTTP server)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from router.store.db import Database
from tests.functional.email.conftest import Inbox, stored_contact

pytestmark = pytest.mark.usefixtures("demo")


@pytest.fixture
def running(app: Flask) -> Iterator[str]:
    """Serve the app on a free loopback port; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_simulate_email_prints_what_the_customer_receives(
    app: Flask, running: str, db: Database, inbox: Inbox, tmp_path: Path
) -> None:
    log = tmp_path / "jcagent.log"
    log.write_text("2026-11-27 09:00 agent on windows failed to connect\n")
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=[
            "simulate",
            "email",
            "--url",
            running,
            "--subject",
            "[Sev1] Agent down on Windows",
            "--attach",
            str(log),
            "--message-id",
            "<sim-1@acme.example>",
        ]
    )
    assert result.exit_code == 0, result.output
    contact = stored_contact(db, "<sim-1@acme.example>")
    assert f"created, contact {contact.reference} (waiting, queue cse-windows" in result.output
    assert "--- acknowledgement to alice@acme.example (sent)" in result.output
    assert f"Subject: Re: [#{contact.reference}] [Sev1] Agent down on Windows" in result.output
    assert "First response: by" in result.output
    assert contact.checklist["agent_logs"] is True
    (ack,) = inbox.to("alice@acme.example")
    assert ack["In-Reply-To"] == "<sim-1@acme.example>"

    again = runner.invoke(
        args=["simulate", "email", "--url", running, "--message-id", "<sim-1@acme.example>"]
    )
    assert "duplicate, contact" in again.output and "the customer receives no email" in again.output

    stranger = runner.invoke(
        args=["simulate", "email", "--url", running, "--from", "eve@evil.example"]
    )
    assert "(rejected, not_an_admin)" in stranger.output
    assert "--- rejection to eve@evil.example (sent)" in stranger.output

    wrong = runner.invoke(args=["simulate", "email", "--url", running, "--token", "wrong"])
    assert wrong.exit_code != 0 and "401" in wrong.output and "wrong bearer token" in wrong.output

    down = runner.invoke(args=["simulate", "email", "--url", "http://127.0.0.1:9"])
    assert down.exit_code != 0 and "could not reach" in down.output
