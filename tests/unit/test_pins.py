"""Support PIN rules and hashing."""

from __future__ import annotations

import pytest

from router.core.pins import PinError, is_trivial, pin_hash, validate_pin


@pytest.mark.parametrize(
    "pin",
    [
        "000000",
        "111111",
        "123456",
        "234567",
        "654321",
        "987654",
        "890123",
        "121212",
        "123123",
        "12341234",
        "99999999",
        "1234567",
        "7654321",
    ],
)
def test_trivial_pins_are_refused(pin: str) -> None:
    assert is_trivial(pin)
    with pytest.raises(PinError, match="too easy"):
        validate_pin(pin)


@pytest.mark.parametrize("pin", ["482913", "730561", "6152740", "93017462"])
def test_ordinary_pins_are_accepted(pin: str) -> None:
    assert validate_pin(pin) == pin


@pytest.mark.parametrize(
    ("pin", "message"),
    [
        ("48291", "6 to 8 digits"),
        ("482913701", "6 to 8 digits"),
        ("48 2913", "digits only"),
        ("４８２９１３", "digits only"),
        ("", "digits only"),
    ],
)
def test_malformed_pins(pin: str, message: str) -> None:
    with pytest.raises(PinError, match=message):
        validate_pin(pin)


def test_pin_hash_is_keyed() -> None:
    digest = pin_hash("pepper-one", "482913")
    assert len(digest) == 64 and "482913" not in digest
    assert digest == pin_hash("pepper-one", "482913")
    assert digest != pin_hash("pepper-two", "482913")
