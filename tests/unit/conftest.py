"""Fixtures for the pure tests: no app, no database (`make unit` runs this folder alone)."""

from __future__ import annotations

import pytest
from lxml import etree

from config.policy import Policy, load_policy
from config.settings import DEFAULT_POLICY_DIR
from tests.paths import TWIML_XSD


@pytest.fixture(scope="session")
def policy() -> Policy:
    """Return the shipped default policy, loaded once."""
    return load_policy(DEFAULT_POLICY_DIR)


@pytest.fixture(scope="session")
def twiml_schema() -> etree.XMLSchema:
    """Return the TwiML XSD, or skip with the reason when the conformance folder is absent."""
    if not TWIML_XSD.is_file():
        pytest.skip(f"TwiML XSD not found at {TWIML_XSD} (../shared/conformance is absent)")
    return etree.XMLSchema(etree.parse(str(TWIML_XSD)))
