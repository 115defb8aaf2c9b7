"""The caps of ``limits`` on what providers post already split up: fields, header lists, blocks."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from channels.email.header_caps import HeaderBudget, cap_field_value, display_name
from channels.email.limits import (
    ESSENTIAL_FIELDS,
    MAX_ESSENTIAL_EXTRA,
    MAX_HEADER_BLOCK_BYTES,
    MAX_HEADER_FIELDS,
    MAX_MESSAGE_FIELDS,
    MAX_NOTES,
)

_JSON_SPACE = re.compile(r"[ \t\n\r]*")


def cap_value(name: str, value: str) -> tuple[str, str | None]:
    """Return a header value within the caps (for providers' parsed fields), and a note if cut."""
    data = value.encode("utf-8", "surrogatepass")
    capped, why = cap_field_value(name.strip().lower(), data)
    if not why:
        return value, None
    return capped.decode("utf-8", "ignore"), f"{display_name(name.strip().lower())}: {why}"


def capped_value(name: str, value: str, notes: list[str]) -> str:
    """Return a header value within the caps, adding to ``notes`` what was cut."""
    value, note = cap_value(name, value)
    if note:
        notes.append(note)
    return value


def cap_pairs(
    pairs: Sequence[tuple[str, str]],
) -> tuple[list[tuple[str, str]], list[str]]:
    """Return (name, value) header pairs within the field and block caps, and the notes."""
    kept: list[tuple[str, str]] = []
    notes: list[str] = []
    budget = MAX_HEADER_BLOCK_BYTES
    dropped = extra = 0
    # As on the raw path, a bounded number of fields is looked at, however many were posted.
    window = MAX_MESSAGE_FIELDS + MAX_ESSENTIAL_EXTRA
    for index, (name, value) in enumerate(pairs[:window]):
        lowered = name[:200].strip().lower()
        room = len(kept) < MAX_HEADER_FIELDS and budget > 0
        if not room and (lowered not in ESSENTIAL_FIELDS or extra >= MAX_ESSENTIAL_EXTRA):
            if extra >= MAX_ESSENTIAL_EXTRA:  # nothing after this can be kept: stop reading
                dropped += min(len(pairs), window) - index
                break
            dropped += 1
            continue
        capped, note = cap_value(name[:200], value)  # only for a field that may be kept
        size = len(name) + len(capped) + 2
        within = size <= budget and len(kept) < MAX_HEADER_FIELDS
        if not within and (lowered not in ESSENTIAL_FIELDS or extra >= MAX_ESSENTIAL_EXTRA):
            dropped += 1
            continue
        if not within:
            extra += 1
        budget -= size
        kept.append((name, capped))
        if note:
            notes.append(note)
    dropped += max(len(pairs) - window, 0)
    if dropped:
        notes.append(f"{dropped} header fields dropped beyond the header limits")
    return kept, notes[:MAX_NOTES]


def cap_header_block(block: bytes) -> tuple[bytes, list[str]]:
    """Return a header block (as a provider posts it) within the caps, and the notes."""
    budget = HeaderBudget()
    capped, _ = budget.cap_block(block, 0, len(block), "header")
    return capped, budget.notes[:MAX_NOTES]


def read_json_list(text: str, limit: int = MAX_MESSAGE_FIELDS) -> tuple[list[Any], bool]:
    """Return the first ``limit`` items of a JSON list, and whether more were left unread.

    Raise ValueError when the text is not valid JSON (as far as it is read), TypeError when it
    is JSON but not a list. A provider's list of header pairs can hold millions of them in its
    25 MiB: past the limit nothing is decoded.
    """
    decoder = json.JSONDecoder()
    pos = _skip_space(text, 0)
    if not text.startswith("[", pos):
        json.loads(text)  # ValueError when it is not JSON at all
        raise TypeError("not a JSON list")
    pos = _skip_space(text, pos + 1)
    items: list[Any] = []
    if not text.startswith("]", pos):
        while True:
            if len(items) >= limit:
                return items, True
            item, pos = decoder.raw_decode(text, pos)
            items.append(item)
            pos = _skip_space(text, pos)
            if not text.startswith(",", pos):
                break
            pos = _skip_space(text, pos + 1)
    if not text.startswith("]", pos) or _skip_space(text, pos + 1) != len(text):
        raise ValueError("not a JSON list")
    return items, False


def _skip_space(text: str, pos: int) -> int:
    match = _JSON_SPACE.match(text, pos)
    return match.end() if match else pos
