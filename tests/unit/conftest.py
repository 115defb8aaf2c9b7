"""Fixtures for the pure tests: no app, no database (`make unit` runs this folder alone)."""

from __future__ import annotations

import pytest

from config.policy import Policy, load_policy
from config.settings import DEFAULT_POLICY_DIR


@pytest.fixture(scope="session")
def policy() -> Policy:
    """Return the shipped default policy, loaded once."""
    return load_policy(DEFAULT_POLICY_DIR)
