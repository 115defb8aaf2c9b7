"""Run the Alembic migrations that ship inside the package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def metadata() -> MetaData:
    """Return the metadata of every model module: the core's and the channels' tables."""
    # Imported here, not at module top, so the core does not depend on the channel packages.
    import router.store.models.email
    import router.store.models.scheduler
    import router.store.models.voice  # noqa: F401
    from router.store.models import Base

    return Base.metadata


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Leave tables that other libraries own (APScheduler's job store) out of comparisons."""
    return not (
        type_ == "table"
        and reflected
        and compare_to is None
        and (name or "").startswith("apscheduler")
    )


def alembic_config(url: str) -> Config:
    """Return an Alembic configuration for ``url`` without needing an alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser treats '%' as interpolation; URLs may contain percent-encoded characters.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision``."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Revert migrations down to ``revision`` ('base' removes every table)."""
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    """Return the newest revision shipped with the code."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """Return the revision the database is at, or None for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
