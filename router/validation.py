"""Small, pure checks shared by the CSV import, the API and the channels."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ACCOUNT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def normalise_email(raw: str) -> str:
    """Return the address trimmed and lower-cased; raise ValueError if it is not one."""
    email = raw.strip().lower()
    if not _EMAIL.match(email) or len(email) > 320:
        raise ValueError(f"not an email address: {raw.strip()!r}")
    return email


def check_account_id(raw: str) -> str:
    """Return a valid account id (letters, digits, '_', '.', '-'; up to 64 characters)."""
    value = raw.strip()
    if not _ACCOUNT_ID.match(value):
        raise ValueError(
            f"account id {value!r} must be 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return value


def parse_instant(raw: str) -> datetime:
    """Read an ISO 8601 instant with an offset, or a date (midnight UTC); raise ValueError."""
    text = raw.strip()
    if not text:
        raise ValueError("is empty")
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 date or date-time") from None
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone offset (add Z or +hh:mm)")
    return value.astimezone(UTC)


def parse_bool(raw: str) -> bool:
    """Read yes/no, true/false, 1/0 (blank is False); raise ValueError otherwise."""
    text = raw.strip().lower()
    if text in ("", "0", "false", "no", "n"):
        return False
    if text in ("1", "true", "yes", "y"):
        return True
    raise ValueError(f"{raw!r} is not yes/no")
