"""Console sessions over HTTP: a copied cookie after log-out, idle and absolute expiry, and
sessions ended by deactivation or a password change (issue 12, item 14)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from router.runtime import EXTENSION_KEY
from router.services.logins import issue_token
from router.store.models import ConsoleSession, StaffUser
from tests.abuse.test_console_login import (
    PASSWORD,
    Clock,
    configured,
    console_app,
    csrf_of,
    install_clock,
    log_in,
    logged_in,
    new_ip,
    new_staff,
)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def session_app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Flask]:
    yield from console_app(request.param, tmp_path_factory)


@pytest.fixture
def clock(session_app: Flask) -> Iterator[Clock]:
    yield from install_clock(session_app)


def logged_in_client(app: Flask, email: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = new_ip()
    assert log_in(client, email, PASSWORD).status_code == 302
    return client


def copy_of(app: Flask, client: FlaskClient) -> FlaskClient:
    """Return another client holding the same session cookie (a stolen or copied cookie)."""
    cookie = client.get_cookie("session")
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie("session", cookie.value)
    return thief


def staff_id_of(app: Flask, email: str) -> int:
    with app.extensions[EXTENSION_KEY].db.session() as session:
        found = session.scalar(select(StaffUser.id).where(StaffUser.email == email))
    assert found is not None
    return found


def test_a_copied_cookie_opens_nothing_after_log_out(session_app: Flask, clock: Clock) -> None:
    email = new_staff(session_app)
    client = logged_in_client(session_app, email)
    thief = copy_of(session_app, client)
    assert logged_in(thief)
    answer = client.post("/console/logout", data={"csrf_token": csrf_of(client, "/console/queues")})
    assert answer.status_code == 302 and answer.headers["Location"] == "/console/login"
    assert not logged_in(client)
    refused = thief.get("/console/queues")
    assert refused.status_code == 302
    assert refused.headers["Location"].startswith("/console/login")
    assert "Your session has ended" in thief.get("/console/login").get_data(as_text=True)
    # A second session of the same user (another browser) is not ended by this log-out.
    other = logged_in_client(session_app, email)
    assert logged_in(other)


def test_idle_sessions_end(session_app: Flask, clock: Clock) -> None:
    client = logged_in_client(session_app, new_staff(session_app))
    with configured(session_app, console_session_idle_minutes=30):
        for _ in range(3):  # each visit within the idle time keeps it open
            clock.advance(minutes=29)
            assert logged_in(client)
        clock.advance(minutes=30)
        assert not logged_in(client)
        # The dead cookie was dropped: logging in again just works.
        assert client.get("/console/login").status_code == 200


def test_sessions_end_after_their_maximum_lifetime(session_app: Flask, clock: Clock) -> None:
    with configured(session_app, console_session_idle_minutes=60, console_session_max_hours=2):
        client = logged_in_client(session_app, new_staff(session_app))
        for minutes in (50, 50, 19):
            clock.advance(minutes=minutes)
            assert logged_in(client)
        clock.advance(minutes=1)  # two hours after logging in, however busy
        assert not logged_in(client)


def test_the_lifetimes_are_fixed_when_the_session_opens(session_app: Flask, clock: Clock) -> None:
    client = logged_in_client(session_app, new_staff(session_app))
    clock.advance(hours=11, minutes=59)
    with configured(session_app, console_session_max_hours=24, console_session_idle_minutes=720):
        assert logged_in(client)
        clock.advance(minutes=1)  # CONSOLE_SESSION_MAX_HOURS was 12 at log-in
        assert not logged_in(client)


def test_deactivation_and_a_password_change_end_sessions(session_app: Flask, clock: Clock) -> None:
    db = session_app.extensions[EXTENSION_KEY].db
    email = new_staff(session_app)
    staff_id = staff_id_of(session_app, email)
    admin = {"Authorization": f"Bearer {issue_token(db, new_staff(session_app, 'admin')).token}"}
    api = session_app.test_client()

    client = logged_in_client(session_app, email)
    changed = api.patch(
        f"/api/v1/staff/{staff_id}", json={"password": "another-password-1"}, headers=admin
    )
    assert changed.status_code == 200
    assert not logged_in(client)
    client = session_app.test_client()
    client.environ_base["REMOTE_ADDR"] = new_ip()
    assert log_in(client, email, "another-password-1").status_code == 302
    assert logged_in(client)

    off = api.patch(f"/api/v1/staff/{staff_id}", json={"active": False}, headers=admin)
    assert off.status_code == 200
    assert not logged_in(client)
    # Reactivated, the user logs in again; the session deactivation ended stays ended.
    assert api.patch(f"/api/v1/staff/{staff_id}", json={"active": True}, headers=admin).status_code
    assert not logged_in(client)


def test_a_session_is_touched_at_most_once_a_minute(session_app: Flask, clock: Clock) -> None:
    email = new_staff(session_app)
    client = logged_in_client(session_app, email)
    opened = clock.at
    db = session_app.extensions[EXTENSION_KEY].db

    def last_seen() -> object:
        with db.session() as session:
            return session.scalar(
                select(ConsoleSession.last_seen_at).where(
                    ConsoleSession.staff_user_id == staff_id_of(session_app, email)
                )
            )

    for seconds in (10, 30, 59):
        clock.advance(seconds=seconds - (clock.at - opened).total_seconds())
        assert logged_in(client)
        assert last_seen() == opened
    clock.advance(seconds=1)
    assert logged_in(client)
    assert last_seen() == clock.at


def test_the_cookie_holds_no_staff_id(session_app: Flask, clock: Clock) -> None:
    client = logged_in_client(session_app, new_staff(session_app))
    with session_app.test_request_context():
        interface = session_app.session_interface
        cookie = client.get_cookie("session")
        assert cookie is not None
        serializer = interface.get_signing_serializer(session_app)  # type: ignore[attr-defined]
        assert serializer is not None
        content = serializer.loads(cookie.value)
    assert set(content) <= {"console_session", "csrf_token", "_flashes", "_permanent"}
    assert "staff_id" not in content
