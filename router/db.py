"""Database engine and transactions: the one place sessions are made."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker

# Seconds to wait for a PostgreSQL connection (a URL's own ?connect_timeout= wins).
CONNECT_TIMEOUT_SECONDS = 3


class Database:
    """An engine plus a session factory; services open transactions through it."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        options: dict[str, Any] = {"echo": echo, "future": True}
        if url.startswith("sqlite"):
            options["connect_args"] = {"timeout": 15}
        else:
            options.update(pool_pre_ping=True, pool_size=5, max_overflow=10)
            if "connect_timeout" not in make_url(url).query:
                # A database host that stops answering would otherwise hold each request, and
                # so every worker, until the OS gives up on the connection minutes later; Twilio
                # waits 15 s for TwiML, so the fallback answer must come well before that.
                options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
        self.engine: Engine = create_engine(url, **options)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _configure_sqlite)
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

    def dispose(self) -> None:
        """Close pooled connections (tests, and forked workers)."""
        self.engine.dispose()


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # Foreign keys are off by default in SQLite; WAL lets readers work while one process writes.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.close()
