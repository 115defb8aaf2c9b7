"""Abuse fixtures: one app per database with every public endpoint configured, and a guard that
checks every answer (never a 5xx, a refused request stores nothing, nothing is half-written)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from lxml import etree
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from config.policy import Policy
from router.runtime import EXTENSION_KEY
from router.store.db import Database
from router.store.models import Contact, ContactEvent, PinAttempt
from router.store.models.email import EmailMessage, EmailOutbox
from router.store.models.voice import IvrCall
from tests.conftest import AppCache
from tests.reliability.harness import (
    app_settings,
    census,
    postgres_schema,
    prepare_store,
)

MAILGUN_KEY = "abuse-mailgun-signing-key-0123456789"
SENDGRID = ("abuse-sendgrid", "abuse-sendgrid-password-0123456789")
POSTMARK = ("abuse-postmark", "abuse-postmark-password-0123456789")
EMAIL_LIMIT = 256 * 1024  # EMAIL_MAX_MESSAGE_BYTES here, so oversize mail is cheap to send

_COUNTED = (Contact, ContactEvent, EmailMessage, EmailOutbox, IvrCall, PinAttempt)


def abuse_settings(url: str, **overrides: Any) -> Any:
    return app_settings(
        url,
        mailgun_signing_key=MAILGUN_KEY,
        sendgrid_basic_user=SENDGRID[0],
        sendgrid_basic_password=SENDGRID[1],
        postmark_basic_user=POSTMARK[0],
        postmark_basic_password=POSTMARK[1],
        email_max_message_bytes=EMAIL_LIMIT,
        **overrides,
    )


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def abuse_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, policy: Policy
) -> Iterator[str]:
    """Yield a store with the demo data, shared by the abuse tests of one database kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('abuse') / 'router.sqlite3'}"
        prepare_store(url, policy)
        yield url
        return
    with postgres_schema("abuse") as url:
        prepare_store(url, policy)
        yield url


@pytest.fixture(scope="session")
def abuse_app(apps: AppCache, abuse_store: str) -> Iterator[Flask]:
    """Yield the app the abuse tests hit (every provider configured)."""
    application = apps.get(abuse_settings(abuse_store))
    yield application
    application.extensions[EXTENSION_KEY].db.dispose()


class Guard:
    """Checks what an endpoint answered to abuse, and what it left in the store."""

    def __init__(self, app: Flask, schema: etree.XMLSchema | None) -> None:
        self.app = app
        self.db: Database = app.extensions[EXTENSION_KEY].db
        self.url = self.db.url
        self.schema = schema

    def counts(self) -> tuple[int, ...]:
        with self.db.session() as session:
            return tuple(
                session.scalar(select(func.count()).select_from(model)) or 0 for model in _COUNTED
            )

    def check(self, response: TestResponse, before: tuple[int, ...], method: str = "POST") -> None:
        """Never a 5xx; a refused request (4xx) stores nothing; every answer is well formed."""
        body = response.get_data()
        assert response.status_code < 500, (response.status_code, body[:500])
        if 400 <= response.status_code < 500:
            assert self.counts() == before, (response.status_code, body[:300])
        if method == "HEAD":
            assert not body
        elif response.mimetype == "text/xml":
            root = etree.fromstring(body)
            assert root.tag == "Response"
            if self.schema is not None:
                self.schema.assertValid(root)
        elif response.mimetype == "application/json":
            assert response.get_json() is not None

    def whole(self) -> None:
        """Nothing is half-written: every contact has its 'received' event and its channel's
        record (an email contact its message; a call's contact its call)."""
        stored = census(self.url)
        assert not stored.orphans, stored.orphans[:5]
        assert not stored.duplicates, stored.duplicates[:5]
        with self.db.session() as session:
            bare_email = session.scalars(
                select(Contact.id).where(
                    Contact.channel == "email",
                    ~select(EmailMessage.id).where(EmailMessage.contact_id == Contact.id).exists(),
                )
            ).all()
            unanswered = session.scalars(
                select(IvrCall.call_sid).where(IvrCall.step >= 1, IvrCall.response.is_(None))
            ).all()
        assert not bare_email, f"email contacts without their message: {bare_email[:5]}"
        assert not unanswered, f"calls without the TwiML they were answered: {unanswered[:5]}"


@pytest.fixture
def guard(abuse_app: Flask, twiml_schema_if_present: etree.XMLSchema | None) -> Iterator[Guard]:
    """Yield the guard; after the test, check the store is whole (TwiML by the XSD if present)."""
    checker = Guard(abuse_app, twiml_schema_if_present)
    yield checker
    checker.whole()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def mailgun_signature(timestamp: str | None = None, token: str | None = None) -> dict[str, str]:
    """Return fresh Mailgun signature fields (a new token each time, as Mailgun sends)."""
    timestamp = timestamp or str(int(time.time()))
    token = token or uuid.uuid4().hex
    signature = hmac.new(
        MAILGUN_KEY.encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    return {"timestamp": timestamp, "token": token, "signature": signature}
