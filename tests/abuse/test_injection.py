"""SQL and script injection in every text field: stored verbatim, as data; shown escaped.

Every free-text field a customer controls (chat subject and messages, every field of the Contact
Support form, an email's subject, body and sender name, a caller's number) receives strings that
would do damage if they were ever pasted into SQL or HTML. They must come back byte for byte
from the store and the staff API, leave the schema untouched, and appear in the console only
escaped.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import func, select

from router.runtime import EXTENSION_KEY
from router.services.logins import issue_token
from router.store.db import Database
from router.store.models import Account, Contact, ContactEvent
from router.store.models.email import EmailMessage
from router.store.models.voice import IvrCall
from tests.abuse.conftest import Guard
from tests.reliability.harness import (
    PUBLIC,
    email,
    mime_message,
    portal_token,
    voice,
    voice_params,
)

SQL = [
    "Robert'); DROP TABLE contacts;--",
    "' OR '1'='1",
    '" OR ""="',
    "1; UPDATE accounts SET tier='premium' --",
    "'; SELECT pg_sleep(10); --",
]
SCRIPT = [
    "<script>alert('xss')</script>",
    '"><img src=x onerror=alert(1)>',
    "<svg/onload=alert(1)>",
    "javascript:alert(1)",
    "{{ config.SECRET_KEY }}{% raw %}",
    "</textarea></code><b>bold</b>",
]
PAYLOADS = SQL + SCRIPT
# What must never reach a page unescaped.
DANGEROUS_MARKUP = ["<script>", "<img src=x", "<svg/onload", "</textarea>", "<b>bold</b>"]


@pytest.fixture
def console(abuse_app: Flask) -> Iterator[FlaskClient]:
    """A logged-in staff console session (the demo admin)."""
    client = abuse_app.test_client()
    page = client.get("/console/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    answer = client.post(
        "/console/login",
        data={
            "email": "ops@support.example",
            "password": "demo-password-change-me",
            "csrf_token": token.group(1),
        },
    )
    assert answer.status_code == 302
    yield client


def _contact(db: Database, contact_id: int) -> tuple[Contact, list[ContactEvent]]:
    with db.session() as session:
        contact = session.get(Contact, contact_id)
        assert contact is not None
        return contact, list(contact.events)


def _assert_escaped(html: str, payload: str, *, shown: bool = False) -> None:
    """No dangerous markup from ``payload`` on the page; when ``shown``, its escaped form is."""
    if shown:
        assert str(escape(payload)) in html, "the payload is not on the page at all"
    for markup in DANGEROUS_MARKUP:
        if markup in payload:
            assert markup not in html, f"{markup!r} reached the page unescaped"
    assert "{{ config" not in html or "{{ config.SECRET_KEY }}" in html  # shown, not evaluated
    assert "dev-only" not in html


@pytest.mark.parametrize("payload", PAYLOADS)
def test_chat_and_form_fields_are_stored_verbatim_and_shown_escaped(
    abuse_app: Flask, guard: Guard, console: FlaskClient, payload: str
) -> None:
    db: Database = abuse_app.extensions[EXTENSION_KEY].db
    client = abuse_app.test_client()
    headers = {"Authorization": f"Bearer {portal_token()}"}
    chat = client.post(
        "/chat/sessions",
        json={"topic": "windows", "subject": payload, "message": payload},
        headers=headers,
    )
    assert chat.status_code == 201, chat.data
    chat_id = chat.json["contact_id"]
    message = client.post(
        f"/chat/sessions/{chat_id}/messages", json={"text": payload}, headers=headers
    )
    assert message.status_code == 201
    form = client.post(
        "/portal/requests",
        json={
            "subject": payload,
            "description": payload,
            "severity": "S2",
            "topic": "windows",
            "troubleshooting": payload,
            "error_messages": [payload],
            "resources": [payload],
            "attachments": [payload],
        },
        headers=headers,
    )
    assert form.status_code == 201, form.data
    form_id = form.json["contact_id"]

    contact, events = _contact(db, chat_id)
    assert contact.subject == payload
    texts = [
        event.data.get("message", {}).get("text") or event.data.get("text") for event in events
    ]
    assert texts.count(payload) == 2  # the opening message and the one posted after it
    contact, events = _contact(db, form_id)
    assert contact.subject == payload
    received = next(event.data for event in events if event.kind == "received")
    for field in ("subject", "description", "troubleshooting"):
        assert received[field] == payload, field
    for field in ("error_messages", "resources", "attachments"):
        assert received[field] == [payload], field

    staff = issue_token(db, "ops@support.example").token
    for contact_id in (chat_id, form_id):
        api = client.get(
            f"/api/v1/contacts/{contact_id}", headers={"Authorization": f"Bearer {staff}"}
        )
        assert api.status_code == 200 and api.json["subject"] == payload
        page = console.get(f"/console/contacts/{contact_id}")
        assert page.status_code == 200
        _assert_escaped(page.get_data(as_text=True), payload, shown=True)
    for listing in ("/console/contacts", "/console/queues", "/console/queues/fragment"):
        page = console.get(listing)
        assert page.status_code == 200
        _assert_escaped(page.get_data(as_text=True), payload)
    _assert_schema_intact(db)
    guard.whole()


@pytest.mark.parametrize("payload", PAYLOADS)
def test_email_and_caller_fields_are_stored_verbatim_and_shown_escaped(
    abuse_app: Flask, console: FlaskClient, payload: str
) -> None:
    db: Database = abuse_app.extensions[EXTENSION_KEY].db
    client = abuse_app.test_client()
    message_id, raw = mime_message(
        sender=f'"{payload}" <alice@acme.example>'.replace("\\", ""),
        subject=payload,
        body=f"{payload}\n",
    )
    delivered = email(raw, message_id)
    answer = client.open(delivered.path, **delivered.client_kwargs())
    assert answer.status_code == 200, answer.data
    with db.session() as session:
        stored = session.scalar(select(EmailMessage).where(EmailMessage.message_id == message_id))
        assert stored is not None and stored.subject == payload
        contact = session.get(Contact, stored.contact_id)
        assert contact is not None and contact.subject == payload
        contact_id = contact.id
    page = console.get(f"/console/contacts/{contact_id}")
    assert page.status_code == 200
    _assert_escaped(page.get_data(as_text=True), payload, shown=True)

    # A caller ID is whatever the caller's network claims: stored as data, never interpreted.
    sid = f"CA{uuid.uuid4().hex}"
    call = voice("/voice/incoming", voice_params(sid, payload[:60]))
    assert client.open(call.path, **call.client_kwargs()).status_code == 200
    with db.session() as session:
        row = session.get(IvrCall, sid)
        assert row is not None and row.from_number == payload[:60].strip()
    for listing in ("/console/contacts", "/console/lockouts?state=all"):
        _assert_escaped(console.get(listing).get_data(as_text=True), payload)
    _assert_schema_intact(db)


def _assert_schema_intact(db: Database) -> None:
    """The demo accounts and every table are still there, unchanged in kind."""
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Account)) >= 7
        tiers = dict(session.execute(select(Account.id, Account.tier)).all())
        assert tiers["globex"] == "standard" and tiers["initech"] == "trial"
        assert session.scalar(select(func.count()).select_from(Contact)) > 0


def test_injection_in_the_staff_api_searches(abuse_app: Flask) -> None:
    """Filters and search terms reach SQL only as bound parameters."""
    db: Database = abuse_app.extensions[EXTENSION_KEY].db
    client = abuse_app.test_client()
    staff = issue_token(db, "ops@support.example").token
    headers = {"Authorization": f"Bearer {staff}"}
    for payload in SQL:
        for path in ("/api/v1/contacts", "/api/v1/accounts", "/api/v1/audit"):
            for name in ("q", "status", "queue", "account", "account_id", "actor", "tier"):
                answer = client.get(
                    path, query_string={name: payload}, headers=headers, base_url=PUBLIC
                )
                assert answer.status_code in (200, 400, 422), (path, name, answer.data[:200])
        _assert_schema_intact(db)
