"""Small, pure checks shared by the CSV import, the API and the channels."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from router.core.calendar import as_utc

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


def instant_text(value: datetime | None) -> str | None:
    """Return an aware instant as ISO 8601 text in UTC (timelines, audit entries), or None."""
    return as_utc(value).isoformat() if value is not None else None


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


# -- JSON bodies -------------------------------------------------------------------------------

# Deeper JSON is refused before it is parsed: Python's parser recurses once per level (100,000
# levels raise RecursionError), and no request this service takes nests beyond about 20 (a
# routing rule's groups, at most 8 deep, inside a rule set).
JSON_MAX_DEPTH = 64

# A string token, or an unterminated one running to the end: every quote that starts a token is
# consumed by it, so no text is scanned twice (linear time, whatever the body holds).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
# A \uD800-\uDFFF escape that is really one: preceded by an even run of backslashes.
_SURROGATE_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u([dD][89a-fA-F][0-9a-fA-F]{2})")
_RAW_SURROGATE = re.compile(rb"\xed[\xa0-\xbf]")  # a surrogate encoded as UTF-8 (CESU-8)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_body_problem(
    body: bytes, max_depth: int = JSON_MAX_DEPTH, *, allow_lone_surrogates: bool = False
) -> str | None:
    """Say why a JSON body is refused before parsing (nesting, lone surrogates), or None."""
    if body.count(b"[") + body.count(b"{") > max_depth and _json_depth(body, max_depth) > max_depth:
        return f"the JSON body is nested more than {max_depth} levels deep"
    if allow_lone_surrogates:
        return None
    if _RAW_SURROGATE.search(body) or _has_lone_surrogate_escape(body):
        return (
            "the JSON body holds a lone UTF-16 surrogate (e.g. \\ud800 without its pair), "
            "which is not text"
        )
    return None


def _json_depth(body: bytes, limit: int) -> int:
    """Return how deep arrays and objects nest (strings skipped), stopping past ``limit``."""
    brackets = _JSON_STRING.sub(b'""', body).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for byte in brackets:
        if byte == 0x5B or byte == 0x7B:  # [ or {
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        else:
            depth -= 1
    return deepest


def _has_lone_surrogate_escape(body: bytes) -> bool:
    """Say whether a \\uD800-\\uDFFF escape is not half of a high-low pair."""
    pending_high: int | None = None  # where a high surrogate ended, awaiting its low half
    for match in _SURROGATE_ESCAPE.finditer(body):
        is_low = int(match.group(1), 16) >= 0xDC00
        if pending_high is not None:
            if not is_low or match.start(1) - 2 != pending_high:  # - 2: its backslash-u
                return True
            pending_high = None
        elif is_low:
            return True
        else:
            pending_high = match.end()
    return pending_high is not None


def trusted_forwarded(lines: list[str], trusted: int) -> str | None:
    """Return the X-Forwarded-* value our outermost of ``trusted`` proxies set, if it did.

    Each proxy appends to the right, so the n-th value from the right is our outermost proxy's
    and anything further left came from the client; with fewer values than trusted proxies the
    header did not come through them. Several header lines count as one comma-separated list.
    """
    if trusted <= 0:
        return None
    values = [value.strip() for line in lines for value in line.split(",")]
    if len(values) < trusted:
        return None
    return values[-trusted] or None
