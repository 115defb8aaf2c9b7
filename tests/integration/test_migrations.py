"""Migrations go up and down on both databases and agree with the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from router.store import migrate
from router.store.migrate import include_object, metadata


def model_differences(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={"compare_type": True, "include_object": include_object},
            )
            return list(compare_metadata(context, metadata()))
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_models_and_migrations_agree(migrated_url: str) -> None:
    assert model_differences(migrated_url) == [], (
        "models and migrations disagree: add a revision with `flask --app app db revision -m '...'`"
    )


def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    migrate.upgrade(database_url)
    assert set(metadata().tables) <= table_names(database_url)
    engine = create_engine(database_url)
    assert migrate.current_revision(engine) == migrate.head_revision()
    engine.dispose()
    migrate.downgrade(database_url, "base")
    assert table_names(database_url) - {"alembic_version"} == set()
    migrate.upgrade(database_url)
    assert model_differences(database_url) == []
