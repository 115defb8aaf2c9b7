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
def twiml_schema_if_present() -> etree.XMLSchema | None:
    """Return the TwiML XSD (parsed once), or None when ../shared/conformance is absent."""
    return etree.XMLSchema(etree.parse(str(TWIML_XSD))) if TWIML_XSD.is_file() else None


# Two fixtures on purpose: the IVR and voice tests are about the TwiML, so without the XSD they
# skip; the abuse guard checks far more than an answer's shape, so it runs on and checks the
# TwiML by the XSD only when it is present (`twiml_schema_if_present`).
@pytest.fixture(scope="session")
def twiml_schema(twiml_schema_if_present: etree.XMLSchema | None) -> etree.XMLSchema:
    """Return the TwiML XSD, or skip with the reason when the conformance folder is absent."""
    if twiml_schema_if_present is None:
        pytest.skip(f"TwiML XSD not found at {TWIML_XSD} (../shared/conformance is absent)")
    return twiml_schema_if_present
