"""Reliability fixtures: a store with the demo data on SQLite and PostgreSQL, a server log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from config.policy import Policy
from tests.reliability.harness import postgres_schema, prepare_store


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path, policy: Policy) -> Iterator[str]:
    """Yield the URL of a migrated store holding the demo data (a SQLite file or a schema)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store' / 'router.sqlite3'}"
        (tmp_path / "store").mkdir()
        prepare_store(url, policy)
        yield url
        return
    with postgres_schema("reliability") as url:
        prepare_store(url, policy)
        yield url


@pytest.fixture
def server_log(tmp_path: Path) -> Iterator[IO[str]]:
    """Yield the file the servers under test log to (shown when a test fails)."""
    path = tmp_path / "server.log"
    with path.open("w") as log:
        yield log
    # Shown by pytest on failure through the captured output.
    print(f"--- server log ({path}):\n{path.read_text()[-6000:]}")
