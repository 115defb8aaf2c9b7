"""Hostile JSON gets a 400 with a message on every JSON endpoint (issue 12, item 16).

100,000-deep JSON used to raise RecursionError inside the parser (a 500 on the portal endpoints
and the staff API), and a lone surrogate (``"\\ud800"``) in a chat subject a UnicodeEncodeError
when it was stored (a 500 after part of the work was done). The app's Request refuses both
before any JSON parser runs.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from router.core.validation import JSON_MAX_DEPTH, json_body_problem
from router.runtime import EXTENSION_KEY
from router.services.logins import issue_token
from router.store.models import AuditEntry, Queue
from tests.abuse.conftest import Guard
from tests.reliability.harness import portal_token

DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"subject": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_000 + b"}"
CHAT = {"topic": "windows", "subject": "Agent will not start"}
FORM = {"topic": "windows", "subject": "Agent down", "description": "It is offline."}
QUEUE = {"key": "t-bomb", "name": "Bomb", "tiers": ["premium"]}
EXPLAIN = {"attributes": {"channel": "email", "tier": "standard", "subject": "Agent down"}}


def lone_surrogate(body: dict[str, Any], field: str) -> bytes:
    """Return the body as JSON text with a lone high surrogate escaped into ``field``."""
    return json.dumps({**body, field: "before \ud800 after"}).encode()


def staff_headers(app: Flask) -> dict[str, str]:
    token = issue_token(app.extensions[EXTENSION_KEY].db, "ops@support.example").token
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def portal_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {portal_token()}", "Content-Type": "application/json"}


def staff_changes(app: Flask) -> tuple[int, int]:
    with app.extensions[EXTENSION_KEY].db.session() as session:
        return (
            session.scalar(select(func.count()).select_from(Queue)) or 0,
            session.scalar(select(func.count()).select_from(AuditEntry)) or 0,
        )


def refused(
    client: FlaskClient, guard: Guard, path: str, body: bytes, headers: dict[str, str], words: str
) -> None:
    before = guard.counts()
    response = client.post(path, data=body, headers=headers)
    guard.check(response, before)
    assert response.status_code == 400, (path, response.status_code, response.get_data()[:300])
    assert words in response.get_json()["message"], response.get_json()


PORTAL_PATHS = [("/chat/sessions", CHAT), ("/portal/requests", FORM)]
API_PATHS = [("/api/v1/queues", QUEUE), ("/api/v1/route/explain", EXPLAIN)]


@pytest.mark.parametrize("bomb", [DEEP, DEEP_OBJECT], ids=["arrays", "objects"])
def test_deep_json_gets_400_everywhere(abuse_app: Flask, guard: Guard, bomb: bytes) -> None:
    client = abuse_app.test_client()
    words = f"nested more than {JSON_MAX_DEPTH} levels deep"
    for path, _ in PORTAL_PATHS:
        refused(client, guard, path, bomb, portal_headers(), words)
        # The portal's endpoints read JSON whatever the Content-Type says.
        refused(
            client, guard, path, bomb, {**portal_headers(), "Content-Type": "text/plain"}, words
        )
    staff = staff_headers(abuse_app)
    before = staff_changes(abuse_app)
    for path, _ in API_PATHS:
        refused(client, guard, path, bomb, staff, words)
    refused(client, guard, "/api/v1/rule-set/validate", bomb, staff, words)
    assert staff_changes(abuse_app) == before


@pytest.mark.parametrize(("path", "body"), PORTAL_PATHS, ids=["chat", "portal form"])
def test_a_lone_surrogate_gets_400_on_the_portal(
    abuse_app: Flask, guard: Guard, path: str, body: dict[str, Any]
) -> None:
    client = abuse_app.test_client()
    for field in ("subject", "topic"):
        refused(client, guard, path, lone_surrogate(body, field), portal_headers(), "surrogate")
    low_first = json.dumps({**body, "subject": "\udc00\ud800"}).encode()
    refused(client, guard, path, low_first, portal_headers(), "surrogate")
    # A character outside the BMP, written as its surrogate pair, is ordinary text.
    paired = json.dumps({**body, "subject": "Agent crashed \U0001f600"}).encode()
    before = guard.counts()
    response = client.post(path, data=paired, headers=portal_headers())
    guard.check(response, before)
    assert response.status_code == 201, response.get_json()


def test_a_lone_surrogate_gets_400_from_the_api(abuse_app: Flask, guard: Guard) -> None:
    client = abuse_app.test_client()
    staff = staff_headers(abuse_app)
    before = staff_changes(abuse_app)
    refused(client, guard, "/api/v1/queues", lone_surrogate(QUEUE, "name"), staff, "surrogate")
    explain = json.dumps({"attributes": {**EXPLAIN["attributes"], "subject": "\ud800"}}).encode()
    refused(client, guard, "/api/v1/route/explain", explain, staff, "surrogate")
    assert staff_changes(abuse_app) == before


def test_a_chat_message_is_checked_too(abuse_app: Flask, guard: Guard) -> None:
    client = abuse_app.test_client()
    opened = client.post("/chat/sessions", json=CHAT, headers=portal_headers())
    assert opened.status_code == 201, opened.get_json()
    path = f"/chat/sessions/{opened.get_json()['contact_id']}/messages"
    refused(client, guard, path, DEEP, portal_headers(), "nested more than")
    refused(client, guard, path, lone_surrogate({}, "text"), portal_headers(), "surrogate")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"[" * 64 + b"]" * 64, None),
        (b"[" * 65 + b"]" * 65, "nested"),
        (json.dumps({"s": "[" * 10_000}).encode(), None),  # brackets inside strings are text
        (json.dumps({"s": '\\"[' * 1000, "t": [[[1]]]}).encode(), None),
        (b'{"s": "\\ud83d\\ude00"}', None),  # a pair
        (b'{"s": "\\uD83D\\uDE00"}', None),
        (b'{"s": "\\\\ud800"}', None),  # an escaped backslash, then plain text
        (b'{"s": "\\ud800"}', "surrogate"),
        (b'{"s": "\\udc00"}', "surrogate"),
        (b'{"s": "\\ud83dx\\ude00"}', "surrogate"),
        (b'{"s": "\\ud83d\\\\\\ude00"}', "surrogate"),  # an escaped backslash between the halves
        ('{"s": "\ud800"}'.encode("utf-8", "surrogatepass"), "surrogate"),  # raw, not escaped
    ],
)
def test_json_body_problem(body: bytes, problem: str | None) -> None:
    found = json_body_problem(body)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_json_body_problem_is_linear_on_unterminated_strings() -> None:
    # Each escaped quote could start a string token: a naive pattern rescans the rest from each.
    body = b"[" * 70 + b'"' + b'\\"' * 200_000
    started = time.thread_time()
    assert json_body_problem(body) is not None
    assert time.thread_time() - started < 2.0  # ~50 ms; the quadratic scan took minutes


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16", "utf-32"])
def test_json_in_other_encodings_gets_400(abuse_app: Flask, guard: Guard, encoding: str) -> None:
    # Flask's parser reads UTF-16/32 too, where the byte checks saw neither the lone surrogate
    # nor brackets hidden behind a character holding a quote byte (U+2200): both were a 500.
    client = abuse_app.test_client()
    bodies = [
        json.dumps({"topic": "windows", "subject": "x \ud800 y"}),
        '["\u2200", ' + "[" * 100_000 + "]" * 100_000 + ', "\u2200"]',
    ]
    for text in bodies:
        before = guard.counts()
        response = client.post(
            "/chat/sessions",
            data=text.encode(encoding, "surrogatepass"),
            headers={**portal_headers(), "Content-Type": "application/json"},
        )
        guard.check(response, before)
        assert response.status_code == 400
        assert "UTF-8" in response.get_json()["message"]
