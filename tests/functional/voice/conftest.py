"""Voice fixtures: a demo-data app with a fixed clock, a Twilio-like signed phone, the TwiML XSD."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from sqlalchemy import delete, event, select, update
from werkzeug.test import TestResponse

from channels.voice.service import VoiceService
from channels.voice.signature import SIGNATURE_HEADER, sign
from channels.voice.simulate import CallSimulator, Verb, parse_twiml
from channels.voice.views import IDEMPOTENCY_HEADER, SERVICE_KEY
from config import Settings
from config.policy import Policy
from router.core.pins import pin_hash
from router.runtime import EXTENSION_KEY, Runtime
from router.services.demo import load_demo_data
from router.store import migrate
from router.store.db import Database
from router.store.models import (
    Admin,
    Contact,
    ContactEvent,
    OpsEvent,
    PinAttempt,
    PinLockout,
    RateLimitBucket,
    SupportPin,
)
from router.store.models.voice import IvrCall
from tests.conftest import (
    POSTGRES_SKIP_REASON,
    POSTGRES_URL,
    TEST_PEPPER,
    AppCache,
    make_settings,
)
from tests.postgres import scratch_schema

# The conformance material sits beside the repository (../shared/conformance).

# Friday 2026-11-27 15:00 UTC.
NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
PUBLIC = "https://router.example.com"

ACME_PIN = "482913"  # premium, us
HOOLI_PIN = "730561"  # premium, in
NORTHWIND_PIN = "615274"  # premium partner, au
GLOBEX_PIN = "284619"  # standard, il (created by the fixture: demo standard accounts have none)
WRONG_PIN = "905172"  # no account has it

US = "+18554819316"
GB = "+448000668529"
FR = "+33805988144"
BR = "+558008913820"
CA = "+18009319627"
IN_DOMESTIC = "0008000503382"


@dataclass
class Clock:
    """A clock the tests set and move; the voice service reads it on every webhook."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


AppFactory = Callable[..., Flask]

# Tables the voice tests write to, children first; emptied around every test so each test starts
# from the demo data alone (migrating and loading it once per database keeps the suite fast).
# The PIN-check bucket too: every test starts at the same fixed time, when nothing refills it.
_CALL_TABLES = (IvrCall, PinAttempt, PinLockout, OpsEvent, ContactEvent, Contact, RateLimitBucket)


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def voice_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, policy: Policy
) -> Iterator[str]:
    """Yield a database URL migrated once and loaded with the demo data (plus a Standard PIN)."""
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('voice') / 'voice.sqlite3'}"
        else:
            if not POSTGRES_URL:
                pytest.skip(POSTGRES_SKIP_REASON)
            url = stack.enter_context(scratch_schema(POSTGRES_URL, "voice"))
        migrate.upgrade(url)
        db = Database(url)
        load_demo_data(db, policy, TEST_PEPPER, NOW - timedelta(days=1))
        with db.transaction() as session:
            session.add(SupportPin(account_id="globex", pin_hash=pin_hash(TEST_PEPPER, GLOBEX_PIN)))
        db.dispose()
        yield url


def _reset(url: str) -> None:
    """Remove every call, attempt, lock-out, event and contact, and PINs tests added."""
    db = Database(url)
    try:
        with db.transaction() as session:
            for model in _CALL_TABLES:
                session.execute(delete(model))
            session.execute(
                delete(SupportPin).where(SupportPin.account_id.in_(("initech", "umbrella")))
            )
            session.execute(update(Admin).values(active=True))  # tests may deactivate one
    finally:
        db.dispose()


@pytest.fixture
def voice_settings(voice_database: str) -> Iterator[Settings]:
    """Return test settings on the shared voice database, emptied of calls before and after."""
    _reset(voice_database)
    yield make_settings(voice_database)
    _reset(voice_database)


@pytest.fixture
def make_app(voice_settings: Settings, clock: Clock, apps: AppCache) -> AppFactory:
    """Return a factory of apps on the voice database, with setting overrides (built once each)."""

    def factory(**overrides: Any) -> Flask:
        application = apps.get(voice_settings.with_overrides(**overrides))
        # Each test gets its own clock.
        service: VoiceService = application.extensions[SERVICE_KEY]
        service.clock = clock
        return application

    return factory


@pytest.fixture
def voice_app(make_app: AppFactory) -> Flask:
    return make_app()


@pytest.fixture
def vdb(voice_app: Flask) -> Database:
    rt: Runtime = voice_app.extensions[EXTENSION_KEY]
    return rt.db


class Phone:
    """Posts signed webhooks like Twilio; every TwiML answer is validated against the XSD."""

    def __init__(self, app: Flask, schema: etree.XMLSchema) -> None:
        self.app = app
        self.client: FlaskClient = app.test_client()
        self.schema = schema
        self.token = app.extensions[EXTENSION_KEY].settings.twilio_auth_token
        self.responses: list[TestResponse] = []

    def post(
        self,
        path: str,
        params: dict[str, str],
        *,
        token: str | None = None,
        signature: str | None = None,
        headers: dict[str, str] | None = None,
        sign_url: str | None = None,
    ) -> TestResponse:
        """Post a form to ``path`` signed over the public URL (or as told)."""
        url = PUBLIC + path
        all_headers = dict(headers or {})
        all_headers[SIGNATURE_HEADER] = (
            signature if signature is not None else sign(self.token, sign_url or url, params)
        )
        if token is not None:
            all_headers[IDEMPOTENCY_HEADER] = token
        response = self.client.post(url, data=params, headers=all_headers)
        self.check(response)
        self.responses.append(response)
        return response

    def check(self, response: TestResponse) -> None:
        """Validate a TwiML answer against the XSD."""
        if response.mimetype == "text/xml":
            self.schema.assertValid(etree.fromstring(response.data))

    def transport(
        self, url: str, params: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, bytes]:
        """A CallSimulator transport through the test client (answers XSD-validated)."""
        response = self.client.post(url, data=params, headers=headers)
        self.check(response)
        self.responses.append(response)
        return response.status_code, response.data

    def simulate(
        self, to: str, digits: str, *, caller: str = "+447700900123", **options: Any
    ) -> CallSimulator:
        """Play a whole call through the app; return the simulator (what was heard, steps)."""
        simulator = CallSimulator(
            transport=self.transport,
            base_url=PUBLIC,
            auth_token=self.token,
            to_number=to,
            from_number=caller,
            digits=[entry for entry in digits.split(",")] if digits else [],
            echo=lambda _line: None,
            **options,
        )
        simulator.run()
        return simulator


@pytest.fixture
def phone(voice_app: Flask, twiml_schema: etree.XMLSchema) -> Phone:
    return Phone(voice_app, twiml_schema)


class Call:
    """One call driven step by step: each method posts the step the last answer asked for."""

    def __init__(
        self, phone: Phone, to: str = US, caller: str = "+447700900123", sid: str | None = None
    ) -> None:
        self.phone = phone
        self.to = to
        self.caller = caller
        self.sid = sid or "CA" + uuid.uuid4().hex
        self.last: TestResponse | None = None

    def params(self, **extra: str) -> dict[str, str]:
        return {
            "CallSid": self.sid,
            "AccountSid": "AC" + "0" * 32,
            "From": self.caller,
            "To": self.to,
            "Called": self.to,
            "CallStatus": "in-progress",
            "Direction": "inbound",
            **extra,
        }

    def start(self, **kw: Any) -> TestResponse:
        self.last = self.phone.post("/voice/incoming", self.params(), **kw)
        return self.last

    @property
    def verbs(self) -> list[Verb]:
        assert self.last is not None
        return parse_twiml(self.last.data)

    @property
    def action(self) -> str:
        """Return the path the current Gather posts to."""
        gathers = [verb for verb in self.verbs if verb.name == "Gather"]
        assert gathers, f"no Gather in {self.last.data if self.last else None!r}"
        return gathers[0].attrs["action"]

    def press(self, digits: str, **kw: Any) -> TestResponse:
        self.last = self.phone.post(self.action, self.params(Digits=digits), **kw)
        return self.last

    def post(self, path: str, **extra: Any) -> TestResponse:
        token = extra.pop("token", None)
        self.last = self.phone.post(path, self.params(**extra), token=token)
        return self.last

    def said(self) -> str:
        """Return everything the last answer says, joined."""
        texts: list[str] = []
        for verb in self.verbs:
            if verb.name == "Say":
                texts.append(verb.text)
            texts.extend(child.text for child in verb.children if child.name == "Say")
        return " ".join(texts)

    def languages(self) -> set[str]:
        found: set[str] = set()
        for verb in self.verbs:
            for node in (verb, *verb.children):
                if node.name == "Say":
                    found.add(node.attrs["language"])
        return found

    def enqueued(self) -> Verb | None:
        return next((verb for verb in self.verbs if verb.name == "Enqueue"), None)

    def hung_up(self) -> bool:
        return any(verb.name == "Hangup" for verb in self.verbs)


@pytest.fixture
def new_call(phone: Phone) -> Callable[..., Call]:
    return lambda to=US, caller="+447700900123", sid=None: Call(phone, to, caller, sid)


def contact_for(db: Database, call_sid: str) -> Contact | None:
    """Return the contact a call opened, with its timeline loaded."""
    with db.session() as session:
        contact = session.scalar(select(Contact).where(Contact.external_id == call_sid))
        if contact is not None:
            _ = contact.events
        return contact


def timeline(db: Database, call_sid: str) -> list[ContactEvent]:
    contact = contact_for(db, call_sid)
    assert contact is not None
    return list(contact.events)


@dataclass
class StatementCounter:
    """Counts SQL statements sent to an engine."""

    count: int = 0
    statements: list[str] = field(default_factory=list)

    def __call__(self, *args: Any) -> None:
        self.count += 1
        self.statements.append(str(args[2]).split("\n")[0][:120])

    def reset(self) -> None:
        self.count = 0
        self.statements.clear()


@pytest.fixture
def statements(vdb: Database) -> Iterator[StatementCounter]:
    counter = StatementCounter()
    event.listen(vdb.engine, "before_cursor_execute", counter)
    yield counter
    event.remove(vdb.engine, "before_cursor_execute", counter)
