"""PIN guessing across many calls, as SPEC 2.6 specifies it (default settings).

A call gets 3 tries; a calling number with 10 failures in an hour is locked for an hour (even
the right PIN is then refused from it); a failure rate across all numbers (spoofed caller IDs)
raises an alert and tightens the global PIN-check rate; staff can unlock; no PIN or keyed digits
are logged.
Each test has a store of its own, since the failure counts are global.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from app import create_app
from channels.voice.simulate import parse_twiml
from config.policy import Policy
from router.runtime import EXTENSION_KEY
from router.services.logins import issue_token
from router.store.models import OpsEvent, PinAttempt, PinLockout
from tests.reliability.harness import (
    ACME_PIN,
    app_settings,
    gather_action,
    postgres_schema,
    prepare_store,
    voice,
    voice_params,
)

WRONG_PINS = ["905172", "111111", "123456", "654321", "000000", "999999", "135791", "246802"]
LOCKED = "temporarily locked"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def pin_app(request: pytest.FixtureRequest, tmp_path: Path, policy: Policy) -> Iterator[Flask]:
    """An app on a store of its own (PIN failure counts and the PIN-check bucket are global)."""

    def build(url: str) -> Iterator[Flask]:
        prepare_store(url, policy)
        # Generous outside the alert, so only the alert's rate is seen here. Built fresh: the
        # store is this test's own, so a cached app would never be asked for again.
        app = create_app(
            app_settings(
                url,
                pin_global_rate_per_minute=6000,
                pin_global_burst=100,
                pin_alert_rate_per_minute=6,
            )
        )
        yield app
        app.extensions[EXTENSION_KEY].db.dispose()

    if request.param == "sqlite":
        yield from build(f"sqlite:///{tmp_path / 'router.sqlite3'}")
        return
    with postgres_schema("abuse_pins") as url:
        yield from build(url)


class Caller:
    """Someone calling the us number from one calling number, one call after another."""

    def __init__(self, client: FlaskClient, number: str) -> None:
        self.client = client
        self.number = number
        self.params: dict[str, str] = {}
        self.last: TestResponse | None = None

    def call(self) -> TestResponse:
        self.params = voice_params(f"CA{uuid.uuid4().hex}", self.number)
        return self._post(voice("/voice/incoming", self.params))

    def key(self, digits: str) -> TestResponse:
        assert self.last is not None
        return self._post(voice(gather_action(self.last.data), {**self.params, "Digits": digits}))

    def _post(self, delivery: object) -> TestResponse:
        self.last = self.client.open(delivery.path, **delivery.client_kwargs())  # type: ignore[attr-defined]
        assert self.last.status_code == 200
        return self.last

    def said(self) -> str:
        assert self.last is not None
        verbs = parse_twiml(self.last.data)
        return " ".join(
            node.text for verb in verbs for node in (verb, *verb.children) if node.name == "Say"
        )

    def hung_up(self) -> bool:
        assert self.last is not None
        return any(verb.name == "Hangup" for verb in parse_twiml(self.last.data))

    def prompted_for(self, step: str) -> bool:
        assert self.last is not None
        return any(
            verb.name == "Gather" and f"/voice/{step}" in verb.attrs["action"]
            for verb in parse_twiml(self.last.data)
        )


def test_guessing_from_one_number_locks_it_and_staff_can_unlock(
    pin_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = pin_app.test_client()
    guesser = Caller(client, "+13035558000")
    guesses = iter(WRONG_PINS * 3)
    # Three calls of three wrong PINs each: every call ends after its third try.
    for _ in range(3):
        guesser.call()
        for _try in range(3):
            assert guesser.prompted_for("pin")
            guesser.key(next(guesses))
            assert "not recognised" in guesser.said()
        assert guesser.hung_up() and "could not verify" in guesser.said()
    # A fourth call opens normally (9 failures); a call already in progress waits at its prompt.
    waiting = Caller(client, guesser.number)
    waiting.call()
    guesser.call()
    assert guesser.prompted_for("pin")
    guesser.key(next(guesses))  # the tenth failure within the hour
    assert LOCKED in guesser.said() and guesser.hung_up()
    # Locked: even the right PIN is refused from this number, on a call begun before the lock...
    waiting.key(ACME_PIN)
    assert LOCKED in waiting.said() and waiting.hung_up()
    # ...and a new call hears the lock at once, with nothing to key.
    guesser.call()
    assert LOCKED in guesser.said() and guesser.hung_up() and not guesser.prompted_for("pin")
    # Other numbers are not affected.
    other = Caller(client, "+13035558001")
    other.call()
    other.key(ACME_PIN)
    assert other.prompted_for("severity")

    db = pin_app.extensions[EXTENSION_KEY].db
    with db.session() as session:
        lockout = session.get(PinLockout, guesser.number)
        assert lockout is not None and lockout.failures >= 10
        kinds = session.scalars(select(OpsEvent.kind)).all()
    assert "voice.pin_lockout" in kinds

    # Staff lift the lock; the right PIN then works from that number.
    token = issue_token(db, "ops@support.example").token
    unlocked = client.delete(
        f"/api/v1/pin-lockouts/{quote(guesser.number)}",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert unlocked.status_code in (200, 204), unlocked.data
    guesser.call()
    guesser.key(ACME_PIN)
    assert guesser.prompted_for("severity")

    # Neither the PINs tried nor the right one appear in any log line.
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for pin in [*WRONG_PINS, ACME_PIN]:
        assert pin not in logged


def test_guessing_across_spoofed_numbers_raises_an_alert_and_tightens_the_global_limit(
    pin_app: Flask,
) -> None:
    client = pin_app.test_client()
    failures = 0
    number = 0
    # 50 failures within ten minutes, spread so no single number reaches its own lock-out.
    while failures < 50:
        number += 1
        caller = Caller(client, f"+1720555{number:04d}")
        caller.call()
        for pin in WRONG_PINS[:3]:
            caller.key(pin)
            assert "not recognised" in caller.said()
            failures += 1
            if failures == 50:
                break
        assert LOCKED not in caller.said()
    db = pin_app.extensions[EXTENSION_KEY].db
    with db.session() as session:
        assert session.scalars(select(PinLockout)).all() == []
        alerts = session.scalars(
            select(OpsEvent).where(OpsEvent.kind == "voice.pin_failure_rate")
        ).all()
    assert alerts, "no alert was raised"
    # From now on, while the alert holds, every PIN check draws on the alert rate (6 a minute,
    # at most 6 at once): the right PIN from a new number passes, as do the next few guesses...
    honest = Caller(client, "+17205559999")
    honest.call()
    honest.key(ACME_PIN)
    assert honest.prompted_for("severity")
    guesser = Caller(client, "+17205559998")
    held = 0
    for guess in (WRONG_PINS * 2)[:12]:
        if guesser.last is None or guesser.hung_up():
            guesser.call()
        guesser.key(guess)
        if "checking many PINs" in guesser.said():
            held += 1
    attempts = _attempts(pin_app)
    assert attempts == 50 + 6, attempts  # ...and the rest are held, not checked
    assert held == 12 - 5
    # A held guess is answered at once: a pause at Twilio, then the PIN prompt again (never
    # the fallback queue); the pause is how long the next check is away (10 s at this rate).
    verbs = parse_twiml(guesser.last.data)  # type: ignore[union-attr]
    assert [verb.name for verb in verbs][:2] == ["Say", "Pause"]
    assert 3 <= int(verbs[1].attrs["length"]) <= 10
    assert guesser.prompted_for("pin") and not any(verb.name == "Enqueue" for verb in verbs)


def _attempts(app: Flask) -> int:
    with app.extensions[EXTENSION_KEY].db.session() as session:
        return len(session.scalars(select(PinAttempt)).all())
