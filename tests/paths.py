"""Where the tests find the project and the conformance material beside it (../shared)."""

from __future__ import annotations

from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
CONFORMANCE = PROJECT.parent / "shared" / "conformance"
TWIML_XSD = CONFORMANCE / "twiml" / "twiml_v20100401_twilioRealtimeCallSchema.xsd"
CONFORMANCE_EMAIL = CONFORMANCE / "email"
