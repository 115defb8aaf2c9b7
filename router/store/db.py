"""Database engine and transactions: the one place sessions are made."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc, make_url, text
from sqlalchemy.orm import Session, sessionmaker

# Seconds to wait for a PostgreSQL connection (a URL's own ?connect_timeout= wins).
CONNECT_TIMEOUT_SECONDS = 3
# Seconds an SQLite statement waits for another process's write to finish. Twilio gives up on a
# webhook after 15 s, so a caller queued behind a long write must get the fallback answer
# (raised as "database is locked") well before then; email and chat answer 503 to be retried.
SQLITE_LOCK_WAIT_SECONDS = 5
# A pooled PostgreSQL connection unused for this long is pinged before it is handed out.
PING_AFTER_IDLE_SECONDS = 5.0


class Database:
    """An engine plus a session factory; services open transactions through it."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        options: dict[str, Any] = {"echo": echo, "future": True}
        if url.startswith("sqlite"):
            options["connect_args"] = {"timeout": SQLITE_LOCK_WAIT_SECONDS}
        else:
            # Not ``pool_pre_ping``: it costs a round trip on every checkout, and a request takes
            # one to three. ``_ping_if_idle`` pings only connections unused for 5 s, which at the
            # traffic of most sites is every checkout after a quiet spell, when a restart or
            # failover goes unnoticed. Under steady load (connections used within 5 s) the first
            # request after a restart fails on its dead connection (callers hear the fallback
            # queue, email and chat answer 503 to be retried) and SQLAlchemy drops the pool.
            options.update(pool_size=5, max_overflow=10)
            if "connect_timeout" not in make_url(url).query:
                # A database host that stops answering would otherwise hold each request, and
                # so every worker, until the OS gives up on the connection minutes later; Twilio
                # waits 15 s for TwiML, so the fallback answer must come well before that.
                options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
        self.engine: Engine = create_engine(url, **options)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _configure_sqlite)
        else:
            event.listen(self.engine, "checkout", self._ping_if_idle)
            event.listen(self.engine, "checkin", _mark_used)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Yield a session whose work commits on success and rolls back on any error."""
        with self._sessions.begin() as session:
            yield session

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """Yield a Core connection whose work commits on success and rolls back on any error.

        For the hottest paths (a call's first webhook): no ORM unit of work, same transaction.
        """
        with self.engine.begin() as connection:
            yield connection

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Yield a session for reads; nothing is committed."""
        with self._sessions() as session:
            yield session

    def ping(self) -> None:
        """Run a trivial query; raise if the database cannot be reached."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def _ping_if_idle(self, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        """Check a connection that sat in the pool; a dead one is replaced, not handed out."""
        last_used = record.info.get(_LAST_USED)
        if last_used is None or time.monotonic() - last_used < PING_AFTER_IDLE_SECONDS:
            return
        try:
            self.engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            # As pool_pre_ping does: every pooled connection at least this old is discarded
            # (a restart killed them all), and a fresh one is opened for this checkout.
            raise exc.InvalidatePoolError(str(error)) from error

    def dispose(self) -> None:
        """Close pooled connections (tests, and forked workers)."""
        self.engine.dispose()


def is_postgresql(session: Session) -> bool:
    """Return whether ``session`` talks to PostgreSQL (row locks with SKIP LOCKED)."""
    return session.get_bind().dialect.name == "postgresql"


_LAST_USED = "router.last_used"


def _mark_used(_dbapi_connection: Any, record: Any) -> None:
    record.info[_LAST_USED] = time.monotonic()


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # Foreign keys are off by default in SQLite; WAL lets readers work while one process writes.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_LOCK_WAIT_SECONDS * 1000}")
    cursor.close()
