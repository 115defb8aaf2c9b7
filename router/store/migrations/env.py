"""Alembic environment: runs migrations on the URL or connection the caller gives."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from router.store.migrate import include_object, metadata

config = context.config
# Batch mode lets SQLite alter tables by copying them; PostgreSQL alters in place.
OPTIONS = {
    "target_metadata": metadata(),
    "render_as_batch": True,
    "compare_type": True,
    "include_object": include_object,
}


def run_migrations_offline() -> None:
    """Emit SQL for the configured URL without connecting."""
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True, **OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run migrations on a live connection (given by the caller, or opened here)."""
    given: Connection | None = config.attributes.get("connection")
    if given is not None:
        _run(given)
        return
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    with create_engine(url, poolclass=pool.NullPool).connect() as connection:
        _run(connection)


def _run(connection: Connection) -> None:
    context.configure(connection=connection, **OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
