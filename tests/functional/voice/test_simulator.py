"""`flask --app app simulate call` against an instance served over real HTTP (demo data)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from channels.voice.simulate import split_digits
from router.store.db import Database
from tests.functional.voice.conftest import ACME_PIN, GB, AppFactory, contact_for


@pytest.fixture
def served(make_app: AppFactory) -> Iterator[tuple[Flask, str]]:
    """Serve an app (no PUBLIC_BASE_URL: the URL is the request's own) on a free loopback port."""
    app = make_app(public_base_url=None)
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


def simulate(app: Flask, *args: str) -> str:
    result = app.test_cli_runner().invoke(args=["simulate", "call", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_the_simulator_plays_a_full_call(served: tuple[Flask, str], vdb: Database) -> None:
    app, url = served
    output = simulate(
        app,
        "--url",
        url,
        "--to",
        GB,
        "--from",
        "+447700900123",
        "--digits",
        f"{ACME_PIN},1,2",
        "--call-sid",
        "CA" + "5" * 32,
    )
    lines = output.splitlines()
    assert lines[0] == f"calling {GB} from +447700900123 (CallSid CA{'5' * 32})"
    assert "  [en-GB] Thank you for calling Premium Support." in lines
    assert "caller keys ******#" in lines  # the PIN is masked
    assert ACME_PIN not in output
    assert "  [en-GB] Thank you, your PIN is verified." in lines
    assert "caller keys 1#" in lines and "caller keys 2#" in lines
    assert "caller waits in queue 'cse-mac'" in lines
    assert "  [en-GB] You are number 1 in the queue." in lines
    assert any(line.startswith("  ♪ ") for line in lines)
    assert lines[-3:] == [
        "  [en-GB] Thank you for calling. Goodbye.",
        "the IVR hangs up",
        "call completed",
    ]
    contact = contact_for(vdb, "CA" + "5" * 32)
    assert contact is not None and contact.queue_key == "cse-mac" and contact.severity == "S1"
    kinds = [e.kind for e in contact.events]
    assert kinds[-5:] == ["bridged", "accepted", "first_response", "sla_met", "completed"]


def test_the_simulator_plays_wrong_pins_and_silence(served: tuple[Flask, str]) -> None:
    app, url = served
    output = simulate(app, "--url", url, "--to", "+33805988144", "--digits", "123456,,1,2")
    assert "  [fr-FR] Désolé, ce code PIN n'a pas été reconnu." in output
    assert "caller says nothing" in output
    assert output.count("Désolé, ce code PIN n'a pas été reconnu.") == 3
    assert "  [fr-FR] Nous n'avons pas pu vérifier votre code PIN." in output
    assert output.rstrip().endswith("call completed")


def test_the_simulator_reports_a_refused_signature(
    served: tuple[Flask, str], make_app: AppFactory
) -> None:
    _, url = served
    other = make_app(public_base_url=None, twilio_auth_token="another-token-0123456789")
    result = other.test_cli_runner().invoke(args=["simulate", "call", "--url", url, "--to", GB])
    assert result.exit_code != 0
    assert "403: the instance refused the signature" in result.output


def test_digits_option() -> None:
    assert split_digits("482913#, 1,,2") == ["482913", "1", "", "2"]
    assert split_digits("") == []
