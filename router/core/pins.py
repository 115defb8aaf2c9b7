"""Support PIN rules and keyed hashing (pure: no I/O)."""

from __future__ import annotations

import hashlib
import hmac
import itertools

PIN_MIN_LENGTH = 6
PIN_MAX_LENGTH = 8


class PinError(ValueError):
    """A PIN that may not be issued; the message says why."""


def validate_pin(pin: str) -> str:
    """Return ``pin`` if it may be issued; raise PinError otherwise."""
    if not pin.isascii() or not pin.isdigit():
        raise PinError("a PIN is digits only")
    if not PIN_MIN_LENGTH <= len(pin) <= PIN_MAX_LENGTH:
        raise PinError(f"a PIN has {PIN_MIN_LENGTH} to {PIN_MAX_LENGTH} digits")
    if is_trivial(pin):
        raise PinError("that PIN is too easy to guess (repeated digits, a run or a short pattern)")
    return pin


def is_trivial(pin: str) -> bool:
    """Return True for PINs a caller would guess first: 000000, 123456, 987654, 121212, 123123."""
    digits = [int(ch) for ch in pin]
    steps = {(b - a) % 10 for a, b in itertools.pairwise(digits)}
    if len(steps) == 1 and steps <= {0, 1, 9}:
        return True  # one digit repeated, or a run up or down (wrapping 9 -> 0)
    # A short block repeated: 121212, 123123, 12341234.
    return any(
        len(pin) % size == 0 and pin == pin[:size] * (len(pin) // size) for size in (1, 2, 3, 4)
    )


def pin_hash(pepper: str, pin: str) -> str:
    """Return HMAC-SHA256(pepper, pin) as hex: a dump alone cannot be brute-forced."""
    return hmac.new(pepper.encode(), pin.encode(), hashlib.sha256).hexdigest()
