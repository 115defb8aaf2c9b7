"""The app refuses to start, with one clear line, on a broken policy file."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import StartupError, create_app
from config.settings import Settings
from tests.unit.test_policy import broken


def test_app_refuses_to_start_on_a_bad_policy(tmp_path: Path) -> None:
    directory = broken(
        tmp_path, "regions", 'timezone = "Europe/Paris"', 'timezone = "Europe/Pariss"'
    )
    settings = Settings(env="test", policy_dir=directory, database_url="sqlite://")
    with pytest.raises(StartupError) as caught:
        create_app(settings)  # the refusal itself is what is tested
    assert "regions.toml: regions.fr.timezone: unknown time zone 'Europe/Pariss'" in str(
        caught.value
    )
