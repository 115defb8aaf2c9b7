"""Console log-in abuse over HTTP: password guessing against one account and across accounts,
spoofed client addresses, and a forged ``next`` (issue 12, items 6 and 15).

Time is driven through the console's clock (``app.extensions[CLOCK_KEY]``), never by sleeping.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from app import create_app
from config.settings import Settings, SettingsError
from router.console.views import CLOCK_KEY
from router.runtime import EXTENSION_KEY, Runtime
from router.services import console_sessions, logins, staff
from router.services.logins import create_staff, issue_token
from router.store.models import AuditEntry, ConsoleSession, StaffUser
from tests.conftest import make_settings
from tests.functional.api.conftest import migrated_database

PASSWORD = "right-password-123"
WRONG = "wrong-password-123"


@dataclass
class Clock:
    """The console's "now", moved by the test."""

    at: datetime

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


def console_app(param: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """Yield an app on a migrated database of kind ``param``, with the default log-in limits.

    Passwords are hashed with the cheapest Argon2 parameters here: these tests check hundreds
    of passwords, and what they test is how many checks happen, not what one costs.
    """
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(logins, "_hasher", cheap)
        patch.setattr(staff, "_hasher", cheap)
        for url in migrated_database(param, tmp_path_factory):
            # Built fresh on purpose: the cheap hasher is patched in for this app's life, and
            # the tests install a clock and swap the runtime of it (not for the shared cache).
            application = create_app(make_settings(url))
            application.config["TESTING"] = True
            yield application
            application.extensions[EXTENSION_KEY].db.dispose()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def login_app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Flask]:
    yield from console_app(request.param, tmp_path_factory)


def install_clock(app: Flask) -> Iterator[Clock]:
    """Give the app a clock of the test's own (tests use their own addresses and users)."""
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    app.extensions[CLOCK_KEY] = clock
    yield clock
    app.extensions.pop(CLOCK_KEY, None)


@pytest.fixture
def clock(login_app: Flask) -> Iterator[Clock]:
    yield from install_clock(login_app)


@contextmanager
def configured(app: Flask, **changes: Any) -> Iterator[None]:
    """Run with some settings changed (the console reads them on every request)."""
    runtime: Runtime = app.extensions[EXTENSION_KEY]
    app.extensions[EXTENSION_KEY] = replace(
        runtime, settings=runtime.settings.with_overrides(**changes)
    )
    try:
        yield
    finally:
        app.extensions[EXTENSION_KEY] = runtime


def new_staff(app: Flask, role: str = "viewer") -> str:
    """Create a staff user with PASSWORD; return their email."""
    email = f"staff-{uuid.uuid4().hex[:10]}@support.example"
    create_staff(app.extensions[EXTENSION_KEY].db, email, role, password=PASSWORD)
    return email


def new_ip() -> str:
    """Return a client address no other test uses (from the documentation ranges)."""
    value = uuid.uuid4().int
    return f"198.{18 + value % 2}.{value // 2 % 256}.{value // 512 % 254 + 1}"


def client_from(app: Flask, ip: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return client


def csrf_of(client: FlaskClient, path: str = "/console/login") -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))
    assert found
    return found.group(1)


def log_in(
    client: FlaskClient,
    email: str,
    password: str,
    *,
    next_path: str | None = None,
    headers: dict[str, str] | None = None,
    query: str = "",
) -> TestResponse:
    data = {"email": email, "password": password, "csrf_token": csrf_of(client)}
    if next_path is not None:
        data["next"] = next_path
    return client.post(f"/console/login{query}", data=data, headers=headers or {})


def message(response: TestResponse) -> str:
    """Return the error the login page shows."""
    found = re.search(r'<li class="flash error"[^>]*>([^<]+)</li>', response.get_data(as_text=True))
    assert found, response.get_data(as_text=True)[:800]
    return found.group(1)


def logged_in(client: FlaskClient) -> bool:
    return client.get("/console/queues").status_code == 200


def audit_actions(app: Flask, email: str) -> list[str]:
    with app.extensions[EXTENSION_KEY].db.session() as session:
        return list(
            session.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.entity_id == email, AuditEntry.action.like("login.%"))
                .order_by(AuditEntry.id)
            )
        )


def test_25_wrong_passwords_lock_the_account_until_the_lockout_ends(
    login_app: Flask, clock: Clock
) -> None:
    email, client = new_staff(login_app), client_from(login_app, new_ip())
    statuses = [log_in(client, email, WRONG).status_code for _ in range(25)]
    # Five failures lock the address for 300 s; the attempts after it are refused unchecked.
    assert statuses == [401] * 4 + [429] * 21
    right = log_in(client, email, PASSWORD)
    assert right.status_code == 429 and "Try again after" in message(right)
    assert int(right.headers["Retry-After"]) > 0
    assert not logged_in(client)
    clock.advance(seconds=299)
    still = log_in(client, email, PASSWORD)
    assert still.status_code == 429 and still.headers["Retry-After"] == "1"
    assert "for this email address" in message(still)
    assert not logged_in(client)
    clock.advance(seconds=1)
    answer = log_in(client, email, PASSWORD)
    assert answer.status_code == 302 and answer.headers["Location"] == "/console/queues"
    assert logged_in(client)
    assert audit_actions(login_app, email) == ["login.failed"] * 5 + [
        "login.locked",
        "login.succeeded",
    ]


def test_each_further_lockout_doubles_up_to_the_maximum(login_app: Flask, clock: Clock) -> None:
    email = new_staff(login_app)
    lengths = []
    for _ in range(6):
        client = client_from(login_app, new_ip())
        answers = [log_in(client, email, WRONG) for _ in range(5)]
        assert [a.status_code for a in answers] == [401] * 4 + [429]
        lengths.append(int(answers[-1].headers["Retry-After"]))
        clock.advance(seconds=lengths[-1])
    assert lengths == [300, 600, 1200, 2400, 3600, 3600]
    # A successful log-in starts the back-off again.
    assert log_in(client_from(login_app, new_ip()), email, PASSWORD).status_code == 302
    client = client_from(login_app, new_ip())
    answers = [log_in(client, email, WRONG) for _ in range(5)]
    assert answers[-1].headers["Retry-After"] == "300"


def test_an_unknown_address_is_answered_like_a_staff_users(login_app: Flask, clock: Clock) -> None:
    known = new_staff(login_app)
    unknown = f"nobody-{uuid.uuid4().hex[:8]}@support.example"
    seen = {}
    for email in (known, unknown):
        client = client_from(login_app, new_ip())
        seen[email] = [
            (answer.status_code, answer.headers.get("Retry-After"), message(answer))
            for answer in (log_in(client, email, WRONG) for _ in range(6))
        ]
    assert seen[known] == seen[unknown]
    assert seen[known][0] == (401, None, "Wrong email or password.")
    assert audit_actions(login_app, unknown) == ["login.failed"] * 5 + ["login.locked"]


def test_one_address_is_throttled_across_accounts(login_app: Flask, clock: Clock) -> None:
    ip = new_ip()
    client = client_from(login_app, ip)
    with configured(login_app, console_login_ip_failures=4, console_login_ip_window_seconds=60):
        # Successful log-ins from the address do not count (an office behind one NAT).
        for _ in range(6):
            assert (
                log_in(client_from(login_app, ip), new_staff(login_app), PASSWORD).status_code
                == 302
            )
        # One wrong password for each of four accounts: none is locked, the address is spent.
        for _ in range(4):
            assert log_in(client, new_staff(login_app), WRONG).status_code == 401
        target = new_staff(login_app)
        refused = log_in(client, target, PASSWORD)
        assert refused.status_code == 429 and "from your network" in message(refused)
        assert refused.headers["Retry-After"] == "15"
        assert not logged_in(client)
        # Another client is not held back by it.
        assert log_in(client_from(login_app, new_ip()), target, PASSWORD).status_code == 302
        clock.advance(seconds=15)
        assert log_in(client, target, PASSWORD).status_code == 302


def test_forwarded_for_counts_only_from_trusted_proxies(login_app: Flask, clock: Clock) -> None:
    target = new_staff(login_app)
    with configured(login_app, console_login_ip_failures=2):
        direct = client_from(login_app, new_ip())
        # No trusted proxy: X-Forwarded-For is the client's own text and changes nothing.
        for n in range(2):
            spoofed = {"X-Forwarded-For": f"203.0.113.{n + 1}"}
            assert log_in(direct, new_staff(login_app), WRONG, headers=spoofed).status_code == 401
        spoofed = {"X-Forwarded-For": "203.0.113.99"}
        assert log_in(direct, target, PASSWORD, headers=spoofed).status_code == 429
    with configured(login_app, console_login_ip_failures=2, trusted_proxy_count=1):
        proxy = client_from(login_app, "10.0.0.1")
        client_ip = new_ip()
        # Our proxy appends the address it saw; what the client wrote before it is ignored.
        for n in range(2):
            headers = {"X-Forwarded-For": f"203.0.113.{n + 1}, {client_ip}"}
            assert log_in(proxy, new_staff(login_app), WRONG, headers=headers).status_code == 401
        headers = {"X-Forwarded-For": f"203.0.113.77, {client_ip}"}
        assert log_in(proxy, target, PASSWORD, headers=headers).status_code == 429
        # Another client behind the same proxy is not.
        other = {"X-Forwarded-For": f"{client_ip}, {new_ip()}"}
        assert log_in(proxy, target, PASSWORD, headers=other).status_code == 302


@pytest.mark.parametrize("written", ["{ip}:51234", "[{ip6}]:443"])
def test_a_forwarded_address_with_a_port_is_the_clients(
    login_app: Flask, clock: Clock, written: str
) -> None:
    # Read as unparsable before, so every client behind such a load balancer shared the
    # proxy's own allowance: one client's failures locked out everyone.
    ip = new_ip()
    ip6 = f"2001:db8:{uuid.uuid4().int % 65536:x}::7"
    hop = written.format(ip=ip, ip6=ip6)
    with configured(login_app, console_login_ip_failures=2, trusted_proxy_count=1):
        proxy = client_from(login_app, "10.0.0.2")
        for _ in range(2):
            headers = {"X-Forwarded-For": hop}
            assert log_in(proxy, new_staff(login_app), WRONG, headers=headers).status_code == 401
        blocked = log_in(proxy, new_staff(login_app), PASSWORD, headers={"X-Forwarded-For": hop})
        assert blocked.status_code == 429
        other = {"X-Forwarded-For": f"{new_ip()}:4000"}
        assert log_in(proxy, new_staff(login_app), PASSWORD, headers=other).status_code == 302


def test_ipv6_clients_are_throttled_by_their_64(login_app: Flask, clock: Clock) -> None:
    prefix = f"2001:db8:{uuid.uuid4().int % 65536:x}:1"
    with configured(login_app, console_login_ip_failures=2):
        for n in range(2):
            client = client_from(login_app, f"{prefix}::{n + 1}")
            assert log_in(client, new_staff(login_app), WRONG).status_code == 401
        client = client_from(login_app, f"{prefix}::ffff")
        assert log_in(client, new_staff(login_app), PASSWORD).status_code == 429


def test_staff_unlock_through_the_api_and_the_console(login_app: Flask, clock: Clock) -> None:
    db = login_app.extensions[EXTENSION_KEY].db
    email, admin_email = new_staff(login_app), new_staff(login_app, "admin")
    admin_token = issue_token(db, admin_email).token
    viewer_token = issue_token(db, new_staff(login_app)).token
    with db.session() as session:
        staff_id = session.scalar(select(StaffUser.id).where(StaffUser.email == email))
    api = login_app.test_client()

    def unlock(token: str, user: int | None = staff_id) -> TestResponse:
        return api.post(
            f"/api/v1/staff/{user}/unlock", headers={"Authorization": f"Bearer {token}"}
        )

    client = client_from(login_app, new_ip())
    for _ in range(5):
        log_in(client, email, WRONG)
    detail = api.get(
        f"/api/v1/staff/{staff_id}", headers={"Authorization": f"Bearer {admin_token}"}
    )
    assert detail.get_json()["login_locked_until"] is not None
    assert unlock(viewer_token).status_code == 403
    assert unlock(admin_token, 2_000_000_000).status_code == 404
    answer = unlock(admin_token)
    assert answer.status_code == 200 and answer.get_json()["login_locked_until"] is None
    assert log_in(client, email, PASSWORD).status_code == 302
    assert audit_actions(login_app, email)[-2:] == ["login.unlocked", "login.succeeded"]
    assert unlock(admin_token).status_code == 200  # nothing to lift: harmless, not audited
    assert audit_actions(login_app, email).count("login.unlocked") == 1

    # The console's Staff page shows the lock-out with an Unlock button.
    locked = new_staff(login_app)
    guesser = client_from(login_app, new_ip())
    for _ in range(5):
        log_in(guesser, locked, WRONG)
    admin = client_from(login_app, new_ip())
    assert log_in(admin, admin_email, PASSWORD).status_code == 302
    page = admin.get("/console/staff?per_page=200").get_data(as_text=True)
    assert f'aria-label="unlock {locked}"' in page
    with db.session() as session:
        locked_id = session.scalar(select(StaffUser.id).where(StaffUser.email == locked))
    posted = admin.post(
        f"/console/staff/{locked_id}/unlock", data={"csrf_token": csrf_of(admin, "/console/staff")}
    )
    assert posted.status_code == 302
    assert f'aria-label="unlock {locked}"' not in admin.get("/console/staff?per_page=200").get_data(
        as_text=True
    )
    assert log_in(guesser, locked, PASSWORD).status_code == 302


@pytest.mark.parametrize("in_query", [False, True])
def test_next_with_control_characters_opens_no_session(
    login_app: Flask, clock: Clock, in_query: bool
) -> None:
    email, client = new_staff(login_app), client_from(login_app, new_ip())
    target = "/console\r\nX:1"
    if in_query:
        answer = log_in(client, email, PASSWORD, query="?next=/console%0d%0aX:1")
    else:
        answer = log_in(client, email, PASSWORD, next_path=target)
    assert answer.status_code == 400
    assert answer.mimetype == "text/html" and "not a console address" in message(answer)
    assert not logged_in(client)
    with login_app.extensions[EXTENSION_KEY].db.session() as session:
        opened = session.scalars(
            select(ConsoleSession.id)
            .join(StaffUser, ConsoleSession.staff_user_id == StaffUser.id)
            .where(StaffUser.email == email)
        ).all()
    assert opened == []
    assert audit_actions(login_app, email) == []
    # The login page and an already logged-in user ignore such a next; nothing answers 500.
    page = client.get("/console/login?next=/console%0d%0aX:1")
    assert page.status_code == 200 and 'name="next" value=""' in page.get_data(as_text=True)
    assert log_in(client, email, PASSWORD).status_code == 302
    again = client.get("/console/login?next=/console%0d%0aX:1")
    assert again.status_code == 302 and again.headers["Location"] == "/console/queues"
    missing = client.get("/console/contacts%0d%0a")
    assert missing.status_code == 404


def test_concurrent_guesses_lock_the_address_once(login_app: Flask, clock: Clock) -> None:
    email = new_staff(login_app)
    clients = [client_from(login_app, new_ip()) for _ in range(4)]
    tokens = [csrf_of(client) for client in clients]
    start = threading.Barrier(len(clients))

    def guess(index: int) -> list[int]:
        start.wait()
        data = {"email": email, "password": WRONG, "csrf_token": tokens[index]}
        return [clients[index].post("/console/login", data=data).status_code for _ in range(5)]

    with ThreadPoolExecutor(len(clients)) as pool:
        statuses = [status for batch in pool.map(guess, range(len(clients))) for status in batch]
    actions = audit_actions(login_app, email)
    # Guesses already past the check when the lock-out began are still counted, never lost.
    assert actions.count("login.locked") == 1
    assert actions.count("login.failed") == statuses.count(401) + 1
    assert 4 <= statuses.count(401) < len(statuses)


@pytest.mark.parametrize(
    ("variable", "value", "error"),
    [
        ("CONSOLE_LOGIN_LOCKOUT_FAILURES", "0", "between 1 and 100"),
        ("CONSOLE_LOGIN_LOCKOUT_SECONDS", "soon", "whole number"),
        ("CONSOLE_LOGIN_LOCKOUT_MAX_SECONDS", "60", "at least CONSOLE_LOGIN_LOCKOUT_SECONDS"),
        ("CONSOLE_LOGIN_IP_FAILURES", "-1", "between 1 and 100000"),
        ("CONSOLE_LOGIN_IP_WINDOW_SECONDS", "0", "between 1 and 86400"),
        ("CONSOLE_SESSION_IDLE_MINUTES", "800", "must not exceed CONSOLE_SESSION_MAX_HOURS"),
        ("CONSOLE_SESSION_MAX_HOURS", "721", "between 1 and 720"),
    ],
)
def test_login_settings_are_checked(variable: str, value: str, error: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({variable: value})
    assert variable in str(raised.value) and error in str(raised.value)


@pytest.mark.parametrize(
    "email", ["a\x00@b.example", "x" * 300 + "@b.example", "tab\t@b.example"], ids=repr
)
def test_addresses_no_one_can_have_get_401_not_500(login_app: Flask, email: str) -> None:
    # PostgreSQL's text refuses NUL, and the audit log names at most 255 characters: both
    # were a 500 there after the password was checked.
    response = log_in(client_from(login_app, new_ip()), email, WRONG)
    assert response.status_code == 401, response.get_data(as_text=True)[:300]


def test_a_failure_is_counted_while_a_concurrent_log_in_clears_the_row(login_app: Flask) -> None:
    """A failure locks its address's row before reading it: a concurrent delete waits."""
    db = login_app.extensions[EXTENSION_KEY].db
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: no delete can come in between")
    email = new_staff(login_app)
    now = datetime.now(UTC)
    limits = console_sessions.LoginLimits()
    console_sessions.record_login_failure(db, email, "203.0.113.5", limits, now)
    from sqlalchemy import create_engine, event, text
    from sqlalchemy.exc import OperationalError

    other = create_engine(db.engine.url)
    outcome: list[str] = []

    def concurrent_delete(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        # Right after this process's write of the row, another process (a successful log-in's
        # clean-up) deletes it: it must wait for this transaction, not pull the row away.
        if outcome or "console_login_locks" not in statement or "INSERT" not in statement:
            return
        with other.begin() as connection:
            connection.execute(text("SET LOCAL lock_timeout = '300ms'"))
            try:
                connection.execute(
                    text("DELETE FROM console_login_locks WHERE email = :e"), {"e": email}
                )
                outcome.append("deleted")
            except OperationalError:
                outcome.append("waited")

    event.listen(db.engine, "after_cursor_execute", concurrent_delete)
    try:
        console_sessions.record_login_failure(db, email, "203.0.113.5", limits, now)
    finally:
        event.remove(db.engine, "after_cursor_execute", concurrent_delete)
        other.dispose()
    assert outcome == ["waited"]
    with db.session() as session:
        lock = session.get(console_sessions.ConsoleLoginLock, email)
        assert lock is not None and lock.failures == 2
