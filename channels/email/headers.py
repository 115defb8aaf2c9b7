"""Read an email's header fields: by name, decoded and cleaned; Message-IDs; the date."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from channels.email.limits import MAX_HEADERS, MAX_KEY_CHARS, MAX_REFERENCES
from channels.email.text import clean_line, decode_words

HeaderMap = Mapping[str, tuple[str, ...]]

# Headers read to verify the sender: RFC 2047 allows no encoded word in them, and decoding one
# would let the sender's text (a MAIL FROM local part, an unknown DKIM tag) write new tags.
UNDECODED_HEADERS = frozenset(
    {
        "authentication-results",
        "arc-authentication-results",
        "dkim-signature",
        "received-spf",
        "return-path",
    }
)

_KEPT_HEADERS = (
    "message-id",
    "in-reply-to",
    "references",
    "date",
    "reply-to",
    "return-path",
    "auto-submitted",
    "precedence",
    "list-id",
    "x-auto-response-suppress",
    "authentication-results",
    "received-spf",
)
_MESSAGE_ID = re.compile(r"<([^<>\s]+)>")


def header_map(pairs: Iterable[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    """Return header values by lower-case name, cleaned, capped, decoded (not UNDECODED_HEADERS)."""
    collected: dict[str, list[str]] = {}
    for count, (name, value) in enumerate(pairs):
        if count >= MAX_HEADERS:
            break
        key = clean_line(str(name), 200).lower()
        if not key:
            continue
        text = str(value) if key in UNDECODED_HEADERS else decode_words(str(value))
        collected.setdefault(key, []).append(clean_line(text))
    return {key: tuple(values) for key, values in collected.items()}


def first(headers: HeaderMap, name: str) -> str | None:
    """Return the first value of header ``name``, if any."""
    values = headers.get(name.lower())
    return values[0] if values else None


def raw_values(pairs: Iterable[tuple[str, Any]], name: str) -> list[str]:
    """Return the values of header ``name`` as sent (unfolded, encoded words left alone)."""
    return [
        re.sub(r"\r?\n(?=[ \t])", "", str(value))
        for key, value in pairs
        if str(key).strip().lower() == name
    ]


def kept_headers(headers: HeaderMap) -> dict[str, str]:
    """Return the headers kept with the stored message."""
    return {name: value for name in _KEPT_HEADERS if (value := first(headers, name)) is not None}


def message_key(message_id: str) -> str:
    """Return the storage key of a Message-ID (digest form when too long to store)."""
    if len(message_id) <= MAX_KEY_CHARS:
        return message_id
    digest = hashlib.sha256(message_id.encode("utf-8", "replace")).hexdigest()
    return f"<sha256.{digest}@long-message-id.invalid>"


def message_ids(value: str | None) -> tuple[str, ...]:
    """Return the storage keys of the Message-IDs in a Message-ID/In-Reply-To/References value."""
    if not value:
        return ()
    text = clean_line(value, limit=200_000)
    found = _MESSAGE_ID.findall(text)
    if not found:
        found = [token.strip("<>") for token in text.split() if token.strip("<>")]
    keys: list[str] = []
    for token in found:
        key = message_key(f"<{token}>")
        if key not in keys:
            keys.append(key)
    return tuple(keys[-MAX_REFERENCES:])


def fingerprint(*values: str | None) -> bytes:
    """Return what a missing Message-ID is derived from: the message's own content."""
    return "\x1f".join(value or "" for value in values).encode("utf-8", "replace")


def parse_date(value: str | None) -> datetime | None:
    """Return the Date header as an aware UTC datetime, or None."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
