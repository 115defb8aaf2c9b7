"""The single-active-scheduler lock: a PostgreSQL advisory lock, or a file lock for SQLite.

Both are released by the operating system or the database when the holder dies, however it
dies (SIGKILL included), so a standby can take over without anyone cleaning up.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy import Connection, create_engine, make_url, pool, text
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)

# Server-side TCP keepalives on the lock's session: if the active scheduler's host vanishes
# without closing its connection, PostgreSQL ends the session (and frees the lock) in ~25 s.
_KEEPALIVE_SETTINGS = (
    "SET tcp_keepalives_idle = 10",
    "SET tcp_keepalives_interval = 5",
    "SET tcp_keepalives_count = 3",
)


class SchedulerLock(Protocol):
    """A lock at most one scheduler process holds."""

    description: str

    def try_acquire(self) -> bool:
        """Take the lock if it is free; return whether this process holds it now."""
        ...

    def still_held(self) -> bool:
        """Return whether the lock is still ours (False: stop scheduling at once)."""
        ...

    def release(self) -> None:
        """Give the lock up (safe to call when not held)."""
        ...


class AdvisoryLock:
    """A PostgreSQL session-level advisory lock held on a dedicated connection."""

    def __init__(self, url: str, key: int, *, holder: str) -> None:
        self.key = key
        self.description = f"PostgreSQL advisory lock {key}"
        self._engine = create_engine(
            url,
            poolclass=pool.NullPool,
            connect_args={
                "application_name": f"contact-router scheduler {holder}"[:63],
                "keepalives": 1,
                "keepalives_idle": 10,
                "keepalives_interval": 5,
                "keepalives_count": 3,
                "connect_timeout": 10,
            },
        )
        self._connection: Connection | None = None
        self._held = False

    def try_acquire(self) -> bool:
        """Try pg_try_advisory_lock on the lock's own session."""
        if self._held:
            return self.still_held()
        try:
            if self._connection is None:
                connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                for statement in _KEEPALIVE_SETTINGS:
                    connection.execute(text(statement))
                self._connection = connection
            got = self._connection.execute(
                text("SELECT pg_try_advisory_lock(CAST(:key AS BIGINT))"), {"key": self.key}
            ).scalar()
        except SQLAlchemyError as exc:
            log.warning("scheduler lock: database unavailable (%s)", type(exc).__name__)
            self._drop_connection()
            return False
        self._held = bool(got)
        return self._held

    def still_held(self) -> bool:
        """Check the lock's session is alive: a session-level lock lives exactly as long."""
        if not self._held or self._connection is None:
            return False
        try:
            self._connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            log.error("scheduler lock lost: its database session ended (%s)", type(exc).__name__)
            self._held = False
            self._drop_connection()
            return False
        return True

    def release(self) -> None:
        """Unlock and close the session."""
        if self._held and self._connection is not None:
            # Closing the session below frees it anyway, should the unlock fail.
            with contextlib.suppress(SQLAlchemyError):
                self._connection.execute(
                    text("SELECT pg_advisory_unlock(CAST(:key AS BIGINT))"), {"key": self.key}
                )
        self._held = False
        self._drop_connection()

    def _drop_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._connection.close()
            self._connection = None
        self._engine.dispose()


class FileLock:
    """An exclusive flock() on a file next to the SQLite database."""

    def __init__(self, path: Path, *, holder: str) -> None:
        self.path = path
        self.holder = holder
        self.description = f"file lock {path}"
        self._file: IO[str] | None = None

    def try_acquire(self) -> bool:
        """Take the flock without waiting."""
        if self._file is not None:
            return self.still_held()
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        # For operators: who holds it (the lock itself is the flock, not this text).
        handle.seek(0)
        handle.truncate()
        handle.write(self.holder + "\n")
        handle.flush()
        self._file = handle
        return True

    def still_held(self) -> bool:
        """Check the locked file is still the one at the path (not deleted or replaced)."""
        if self._file is None:
            return False
        try:
            same = os.fstat(self._file.fileno()).st_ino == os.stat(self.path).st_ino
        except OSError:
            same = False
        if not same:
            log.error("scheduler lock lost: %s was removed or replaced", self.path)
            self.release()
        return same

    def release(self) -> None:
        """Unlock and close the file (the file itself stays, for the next holder)."""
        if self._file is not None:
            try:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            finally:
                self._file.close()
                self._file = None


def lock_for(database_url: str, key: int, *, holder: str) -> SchedulerLock:
    """Return the lock suited to the database: advisory on PostgreSQL, a file beside SQLite."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        return AdvisoryLock(database_url, key, holder=holder)
    if url.get_backend_name() == "sqlite":
        database = url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            raise ValueError("the scheduler needs a SQLite database file, not an in-memory one")
        return FileLock(Path(database + ".scheduler.lock"), holder=holder)
    raise ValueError(f"no scheduler lock for {url.get_backend_name()} databases")
