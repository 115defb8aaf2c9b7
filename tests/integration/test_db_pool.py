"""PostgreSQL connection pool: idle connections are checked before use, busy ones are not."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, event, text

from router.store import db as db_module
from router.store.db import Database
from tests.conftest import POSTGRES_SKIP_REASON, POSTGRES_URL

pytestmark = pytest.mark.postgres


@pytest.fixture
def database() -> Iterator[Database]:
    if not POSTGRES_URL:
        pytest.skip(POSTGRES_SKIP_REASON)
    database = Database(POSTGRES_URL)
    yield database
    database.dispose()


def backend_pid(database: Database) -> int:
    with database.session() as session:
        return int(session.scalar(text("SELECT pg_backend_pid()")) or 0)


def statements(database: Database) -> list[str]:
    seen: list[str] = []
    event.listen(database.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    return seen


def test_a_busy_connection_is_reused_without_a_ping(database: Database) -> None:
    first = backend_pid(database)
    seen = statements(database)
    assert backend_pid(database) == first
    assert seen == ["SELECT pg_backend_pid()"]  # no ping round trip on a recently used one


def test_an_idle_connection_killed_by_the_server_is_replaced(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert POSTGRES_URL is not None
    first = backend_pid(database)
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:  # as a restart or fail-over would
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    admin.dispose()
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)
    second = backend_pid(database)  # no error: the dead connection was pinged and replaced
    assert second != first


def test_one_failed_ping_replaces_every_connection_the_restart_killed(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert POSTGRES_URL is not None
    with database.session() as first, database.session() as second:  # two pooled connections
        pids = {
            int(first.scalar(text("SELECT pg_backend_pid()")) or 0),
            int(second.scalar(text("SELECT pg_backend_pid()")) or 0),
        }
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for pid in pids:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    admin.dispose()
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)
    assert backend_pid(database) not in pids  # this ping fails and drops the whole pool
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 1e9)  # no more pings
    with database.session() as first, database.session() as second:
        fresh = {
            int(first.scalar(text("SELECT pg_backend_pid()")) or 0),
            int(second.scalar(text("SELECT pg_backend_pid()")) or 0),
        }
    assert not fresh & pids  # the other killed connection was not handed out either
