"""Cut header fields and header blocks, as bytes, to the caps of ``limits``."""

from __future__ import annotations

from channels.email.limits import (
    ESSENTIAL_FIELDS,
    MAX_ENCODED_WORDS,
    MAX_ESSENTIAL_EXTRA,
    MAX_FIELD_BYTES,
    MAX_HEADER_BLOCK_BYTES,
    MAX_HEADER_FIELDS,
    MAX_MESSAGE_FIELDS,
    MAX_PARAMETER_FIELD_BYTES,
    MAX_PARAMETERS,
    SCAN_BYTES,
)


class HeaderBudget:
    """The header fields one message may still keep, and the notes on what was cut from it."""

    def __init__(self) -> None:
        self.fields_left = MAX_MESSAGE_FIELDS
        self.extra_left = MAX_ESSENTIAL_EXTRA
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        """Add a note on a cut, once."""
        if text not in self.notes:
            self.notes.append(text)

    def cap_block(self, raw: bytes, start: int, end: int, where: str) -> tuple[bytes, bool]:
        """Return the block within the caps, and whether anything was cut."""
        if end <= start:
            return b"", False
        lines = raw.count(b"\n", start, end) + 1
        # Fast path: a small block of ordinary fields is left as it is.
        if (
            end - start <= MAX_PARAMETER_FIELD_BYTES
            and lines <= min(MAX_PARAMETERS, self.fields_left)
            and raw.count(b"=?", start, end) <= MAX_ENCODED_WORDS
            and raw.count(b";", start, end) <= MAX_PARAMETERS
            and raw.count(b"\r", start, end) <= lines
        ):
            self.fields_left -= lines
            return raw[start:end], False
        scanned_end = min(end, start + SCAN_BYTES)
        kept: list[bytes] = []
        budget = MAX_HEADER_BLOCK_BYTES
        changed = scanned_end < end
        dropped = 0
        for one in _fields(raw[start:scanned_end]):
            name = _field_name(one)
            room = len(kept) < MAX_HEADER_FIELDS and self.fields_left > 0 and budget > 0
            if not room and (name not in ESSENTIAL_FIELDS or self.extra_left <= 0):
                dropped += 1
                changed = True
                continue
            capped, why = _cap_field(name, one)
            if why:
                self.note(f"{where} {display_name(name)}: {why}")
                changed = True
            if room and len(capped) <= budget:
                self.fields_left -= 1
            elif name in ESSENTIAL_FIELDS and self.extra_left > 0:
                self.extra_left -= 1
            else:
                dropped += 1
                changed = True
                continue
            if not capped.endswith((b"\n", b"\r")):  # cut at the window: end its line
                capped += b"\r\n"
            budget -= len(capped)
            kept.append(capped)
        if scanned_end < end:
            dropped += 1  # past the window nothing is read: no real header block is that long
        if dropped:
            self.note(f"{where} block: fields dropped beyond the header limits")
        return b"".join(kept), changed


def blank_line(raw: bytes, start: int, limit: int) -> tuple[int, int]:
    """Return (where the first empty line at or after ``start`` begins, where it ends)."""
    best: tuple[int, int] | None = None
    # A line ending followed by a line ending (bytes.find is far faster than a regex here).
    for pair, skip in ((b"\n\r\n", 1), (b"\n\n", 1), (b"\r\r", 1)):
        at = raw.find(pair, start, limit)
        if at >= 0 and (best is None or at + skip < best[0]):
            best = (at + skip, at + len(pair))
    return best if best is not None else (limit, limit)


def display_name(name: str) -> str:
    """Return a lower-case field name as notes show it (Content-Type)."""
    return "-".join(word.capitalize() for word in name.split("-")) or "(unnamed)"


def cap_field_value(name: str, value: bytes) -> tuple[bytes, str]:
    """Return the value of field ``name`` (lower case) within the caps, and why it was cut ('')."""
    why: list[str] = []
    limit = MAX_FIELD_BYTES
    if name in ("content-type", "content-disposition"):
        limit = MAX_PARAMETER_FIELD_BYTES
        semicolons = value.count(b";")
        if semicolons > MAX_PARAMETERS:
            value = value[: _nth(value, b";", MAX_PARAMETERS + 1)]
            why.append(f"{semicolons} parameters, the first {MAX_PARAMETERS} kept")
    words = value.count(b"=?")
    if words > MAX_ENCODED_WORDS:
        value = value[: _nth(value, b"=?", MAX_ENCODED_WORDS + 1)].rstrip()
        why.append(f"{words} encoded words, the first {MAX_ENCODED_WORDS} kept")
    if len(value) > limit:
        why.append(f"{len(value)} bytes, {limit} kept")
        if name == "references":
            # The newest ids (at the end) thread a reply; RFC 5322 trims from the front too.
            tail = value[-limit:]
            space = tail.find(b" ")
            value = b" " + (tail[space + 1 :] if 0 <= space < 200 else tail).lstrip()
        else:
            head = value[:limit]
            space = max(head.rfind(b" "), head.rfind(b"\t"))
            value = head[:space] if space > limit - 200 else head
    return value, "; ".join(why)


def _fields(block: bytes) -> list[bytes]:
    """Split a header block into fields (a field's continuation lines stay with it)."""
    fields: list[bytes] = []
    current: list[bytes] = []
    for line in block.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and current:
            current.append(line)
            continue
        if current:
            fields.append(b"".join(current))
        current = [line]
    if current:
        fields.append(b"".join(current))
    return fields


def _field_name(one: bytes) -> str:
    name, colon, _ = one.partition(b":")
    return name.strip().decode("ascii", "replace").lower()[:100] if colon else ""


def _cap_field(name: str, one: bytes) -> tuple[bytes, str]:
    """Return one field (name and folded value) within the caps, and why it was cut ('')."""
    head, colon, value = one.partition(b":")
    if not colon:
        head, value = b"", one
    capped, why = cap_field_value(name, value)
    if not why:
        return one, ""
    ending = b"\r\n" if b"\r\n" in one else b"\n"
    return head + colon + capped.rstrip(b"\r\n") + ending, why


def _nth(data: bytes, needle: bytes, count: int) -> int:
    """Return where the count-th ``needle`` starts in ``data`` (it occurs at least that often)."""
    at = -1
    for _ in range(count):
        at = data.find(needle, at + 1)
    return at
