"""Caps on an email's headers and MIME structure, applied to its bytes before anything parses it.

Python's ``email`` package is slow exactly where hostile mail is cheap to write: the structured
header parser of policy ``default`` grows faster than linearly with a header's length and its
encoded words (6,000 ``=?utf-8?q?=41?=`` words in an 88 KB Subject cost about 250 MB), legacy
parameter parsing is quadratic in quoted semicolons, and every MIME part (or header line) is an
object. So before any of that runs, this module walks the raw message the way the standard
library's feed parser will (the same header-block rule, the same compat32 reading of
Content-Type and boundary, the same delimiter lines) and rewrites what is over a cap:

- a header field longer than ``MAX_FIELD_BYTES`` is cut (References keeps its newest ids);
- a header field with more than ``MAX_ENCODED_WORDS`` encoded words is cut before the next one;
- Content-Type and Content-Disposition keep ``MAX_PARAMETER_FIELD_BYTES`` and ``MAX_PARAMETERS``;
- a header block keeps at most ``MAX_HEADER_BLOCK_BYTES`` and ``MAX_HEADER_FIELDS`` fields, a
  message ``MAX_MESSAGE_FIELDS``, and beyond that only the fields the router reads (From,
  Subject, Message-ID, Content-Type, ...);
- a message keeps its first ``MAX_PARTS`` MIME entities and ``MAX_DEPTH`` levels of nesting; what
  comes after is dropped and the open multiparts are closed.

The message is kept, never refused for these: each cut adds a note (stored with the message),
so staff see what was left out. The caps are constants, not settings: they bound the cost of
one message (see ``bench/bench_email.py``), and no real mail comes near them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import Message

MAX_FIELD_BYTES = 8 * 1024
MAX_ENCODED_WORDS = 100
MAX_HEADER_BLOCK_BYTES = 64 * 1024
MAX_HEADER_FIELDS = 300
MAX_MESSAGE_FIELDS = 3000  # header fields of all the entities of one message
MAX_PARAMETER_FIELD_BYTES = 2 * 1024  # Content-Type and Content-Disposition of a part
MAX_PARAMETERS = 64  # semicolons in those (legacy parameter parsing is quadratic in them)
MAX_PARTS = 500
MAX_DEPTH = 20
MAX_REPORT_BYTES = 64 * 1024  # a message/delivery-status body: a few short header blocks
MAX_NOTES = 20
# Beyond the budgets only these fields are kept, and at most this many in one message.
MAX_ESSENTIAL_EXTRA = 100
# Header lines looked at one by one; a longer block is searched for essential fields only.
_SCAN_BYTES = 4 * MAX_HEADER_BLOCK_BYTES

ESSENTIAL_FIELDS = frozenset(
    {
        "from",
        "sender",
        "reply-to",
        "to",
        "cc",
        "subject",
        "date",
        "message-id",
        "in-reply-to",
        "references",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
        "return-path",
        "auto-submitted",
        "precedence",
        "list-id",
        "list-unsubscribe",
        "x-autoreply",
        "x-autorespond",
        "x-auto-response-suppress",
        "x-failed-recipients",
        "x-ms-exchange-message-is-ndr",
        "authentication-results",
        "received-spf",
        "x-contact-router",
    }
)

# The feed parser's rule for a header line (email.feedparser.headerRE), and the block they form.
_HEADER_BLOCK = re.compile(rb"(?:(?:From |[\x21-\x39\x3b-\x7e]*:|[ \t])[^\r\n]*(?:\r\n|\r|\n|\Z))*")
_LINE_END = re.compile(rb"\r\n|\r|\n")
_ESSENTIAL = re.compile(
    rb"(?:^|(?<=[\r\n]))(?:"
    + b"|".join(re.escape(name.encode()) for name in sorted(ESSENTIAL_FIELDS))
    + rb")[ \t]*:[^\r\n]*(?:\r\n|\r|\n|\Z)(?:[ \t][^\r\n]*(?:\r\n|\r|\n|\Z))*",
    re.IGNORECASE,
)
_CONTENT_TYPE = re.compile(rb"content-type:", re.IGNORECASE)


@dataclass(frozen=True)
class Bounded:
    """A message within the caps: its bytes, its top header block, and what was cut."""

    raw: bytes
    head: bytes  # the top-level header block as ``raw`` holds it
    notes: tuple[str, ...]
    entities: int  # MIME entities (the message itself, its parts, nested messages)
    cut: bool  # parts or nesting were dropped


def bound_message(raw: bytes, *, max_parts: int = MAX_PARTS, max_depth: int = MAX_DEPTH) -> Bounded:
    """Return ``raw`` with every header and the MIME structure within the caps."""
    walk = _Walk(raw, max_parts=max_parts, max_depth=max_depth)
    walk.run()
    out = raw if not walk.changed else b"".join(walk.chunks())
    return Bounded(
        raw=out,
        head=walk.head,
        notes=tuple(walk.notes[:MAX_NOTES]),
        entities=walk.entities,
        cut=walk.cut,
    )


def cap_value(name: str, value: str) -> tuple[str, str | None]:
    """Return a header value within the caps (for providers' parsed fields), and a note if cut."""
    data = value.encode("utf-8", "surrogatepass")
    capped, why = _cap_value(name.strip().lower(), data)
    if not why:
        return value, None
    return capped.decode("utf-8", "ignore"), f"{_display(name.strip().lower())}: {why}"


def cap_pairs(
    pairs: Sequence[tuple[str, str]],
) -> tuple[list[tuple[str, str]], list[str]]:
    """Return (name, value) header pairs within the field and block caps, and the notes."""
    kept: list[tuple[str, str]] = []
    notes: list[str] = []
    budget = MAX_HEADER_BLOCK_BYTES
    dropped = extra = 0
    for name, value in pairs:
        lowered = name.strip().lower()
        capped, note = cap_value(name[:200], value)
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
    if dropped:
        notes.append(f"{dropped} header fields dropped beyond the header limits")
    return kept, notes[:MAX_NOTES]


def cap_header_block(block: bytes) -> tuple[bytes, list[str]]:
    """Return a header block (as a provider posts it) within the caps, and the notes."""
    walk = _Walk(block, max_parts=1, max_depth=0)
    capped, _ = walk.header_block(block, 0, len(block), "header")
    return capped, walk.notes[:MAX_NOTES]


# --- the walk --------------------------------------------------------------------------------


@dataclass
class _Delimiter:
    start: int
    end: int
    close: bool
    boundary: bytes


@dataclass
class _Finder:
    """The next delimiter line of one boundary at or after a position (searches move forward)."""

    raw: bytes
    boundary: bytes
    pattern: re.Pattern[bytes] = field(init=False)
    found: _Delimiter | None = None
    none_after: int | None = None

    def __post_init__(self) -> None:
        # email.feedparser's boundaryre, matched at the start of a line.
        self.pattern = re.compile(
            rb"(?:\A|(?<=[\r\n]))--" + re.escape(self.boundary) + rb"(--)?[ \t]*(?:\r\n|\r|\n|\Z)"
        )

    def next(self, pos: int) -> _Delimiter | None:
        if self.found is not None and self.found.start >= pos:
            return self.found
        if self.none_after is not None and pos >= self.none_after:
            return None
        match = self.pattern.search(self.raw, pos)
        if match is None:
            self.found, self.none_after = None, pos
            return None
        self.found = _Delimiter(match.start(), match.end(), bool(match.group(1)), self.boundary)
        return self.found


class _Stop(Exception):
    """A structural cap was reached: nothing after ``at`` is kept."""

    def __init__(self, at: int) -> None:
        super().__init__(at)
        self.at = at


class _Walk:
    def __init__(self, raw: bytes, *, max_parts: int, max_depth: int) -> None:
        self.raw = raw
        self.max_parts = max_parts
        self.max_depth = max_depth
        self.pieces: list[bytes | tuple[int, int]] = []
        self.notes: list[str] = []
        self.entities = 0
        self.changed = False
        self.cut = False
        self.head = b""
        self.finders: dict[bytes, _Finder] = {}
        self.open: list[bytes] = []  # boundaries of the multiparts being walked
        self.fields_left = MAX_MESSAGE_FIELDS
        self.extra_left = MAX_ESSENTIAL_EXTRA

    def run(self) -> None:
        try:
            end = self.entity(0, (), 0, "text/plain")
            self.copy(end, len(self.raw))
        except _Stop:
            self.changed = self.cut = True
            for boundary in reversed(self.open):
                self.pieces.append(b"\r\n--" + boundary + b"--\r\n")

    def chunks(self) -> list[bytes]:
        return [
            piece if isinstance(piece, bytes) else self.raw[piece[0] : piece[1]]
            for piece in self.pieces
        ]

    def copy(self, start: int, end: int) -> None:
        if end > start:
            self.pieces.append((start, end))

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def next_delimiter(self, pos: int, active: tuple[bytes, ...]) -> _Delimiter | None:
        found: _Delimiter | None = None
        for boundary in active:
            finder = self.finders.get(boundary)
            if finder is None:
                finder = self.finders[boundary] = _Finder(self.raw, boundary)
            candidate = finder.next(pos)
            if candidate is not None and (found is None or candidate.start < found.start):
                found = candidate
        return found

    # An entity: its header block, then a body that is a leaf, a multipart or a message.
    def entity(self, pos: int, active: tuple[bytes, ...], depth: int, default_type: str) -> int:
        self.entities += 1
        ahead = self.next_delimiter(pos, active)
        limit = ahead.start if ahead is not None else len(self.raw)
        head_end = _HEADER_BLOCK.match(self.raw, pos, limit)
        assert head_end is not None  # the pattern matches the empty string
        block_end = head_end.end()
        body = block_end
        separator = _LINE_END.match(self.raw, block_end, limit)
        if separator is not None:
            body = separator.end()
        where = "header" if depth == 0 else "MIME part header"
        capped, changed = self.header_block(self.raw, pos, block_end, where)
        if depth == 0:
            self.head = capped
        if changed:
            self.changed = True
            self.pieces.append(capped)
        else:
            self.copy(pos, block_end)
        self.copy(block_end, body)
        content_type, boundary = _content_type(capped, default_type)
        maintype = content_type.split("/")[0]
        if maintype == "message":
            if content_type == "message/delivery-status":
                return self.report(body, limit)
            if depth + 1 > self.max_depth:
                self.note(f"MIME: nesting deeper than {self.max_depth} levels was dropped")
                raise _Stop(body)
            return self.entity(body, active, depth + 1, "text/plain")
        if maintype == "multipart" and boundary is not None:
            inner = "message/rfc822" if content_type == "multipart/digest" else "text/plain"
            try:
                marker = boundary.encode("ascii", "surrogateescape")
            except UnicodeEncodeError:  # never on a line of the (ASCII-decoded) message
                marker = None
            if marker is not None:
                return self.multipart(body, active, depth, marker, inner)
        self.copy(body, limit)
        return limit

    def multipart(
        self, pos: int, active: tuple[bytes, ...], depth: int, boundary: bytes, inner: str
    ) -> int:
        mine = (*active, boundary)
        self.open.append(boundary)
        delimiter = self.next_delimiter(pos, mine)
        while True:
            if delimiter is None:
                self.copy(pos, len(self.raw))
                self.open.pop()
                return len(self.raw)
            if delimiter.boundary != boundary:  # an enclosing multipart's delimiter ends this one
                self.copy(pos, delimiter.start)
                self.open.pop()
                return delimiter.start
            self.copy(pos, delimiter.start)
            if delimiter.close:
                self.copy(delimiter.start, delimiter.end)
                self.open.pop()
                # The epilogue, up to an enclosing delimiter.
                after = self.next_delimiter(delimiter.end, active)
                end = after.start if after is not None else len(self.raw)
                self.copy(delimiter.end, end)
                return end
            # Consecutive delimiter lines open one part (as the feed parser reads them).
            start = delimiter.start
            while True:
                following = self.next_delimiter(delimiter.end, mine)
                if following is None or following.start != delimiter.end or following.close:
                    break
                if following.boundary != boundary:
                    break
                delimiter = following
            if depth + 1 > self.max_depth:
                self.note(f"MIME: nesting deeper than {self.max_depth} levels was dropped")
                raise _Stop(start)
            if self.entities >= self.max_parts:
                self.note(f"MIME: more than {self.max_parts} parts; the rest was dropped")
                raise _Stop(start)
            self.copy(start, delimiter.end)
            pos = self.entity(delimiter.end, mine, depth + 1, inner)
            delimiter = self.next_delimiter(pos, mine)

    def report(self, pos: int, limit: int) -> int:
        """Copy a message/delivery-status body: its header blocks are entities too."""
        region_end = min(limit, pos + MAX_REPORT_BYTES)
        blocks = 0
        cut: int | None = region_end if region_end < limit else None
        for blank in re.finditer(rb"(?:\r\n|\r|\n)(?:\r\n|\r|\n)", self.raw[pos:region_end]):
            blocks += 1
            if self.entities + blocks >= self.max_parts:
                cut = pos + blank.end()
                break
        self.entities += blocks + 1
        if cut is not None:
            self.note("MIME: a delivery-status report over the limits was cut")
            self.copy(pos, cut)
            raise _Stop(cut)
        self.copy(pos, limit)
        return limit

    # --- header blocks -----------------------------------------------------------------------

    def header_block(self, raw: bytes, start: int, end: int, where: str) -> tuple[bytes, bool]:
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
        scanned_end = min(end, start + _SCAN_BYTES)
        kept: list[bytes] = []
        budget = MAX_HEADER_BLOCK_BYTES
        changed = scanned_end < end
        dropped = 0
        for one in _fields(raw[start:scanned_end]):
            name = _field_name(one)
            capped, why = _cap_field(name, one)
            if why:
                self.note(f"{where} {_display(name)}: {why}")
                changed = True
            within = len(capped) <= budget and len(kept) < MAX_HEADER_FIELDS
            if within and self.fields_left > 0:
                self.fields_left -= 1
            elif name in ESSENTIAL_FIELDS and self.extra_left > 0:
                self.extra_left -= 1
            else:
                dropped += 1
                changed = True
                continue
            budget -= len(capped)
            kept.append(capped)
        if scanned_end < end:
            # Too long to look at line by line: keep only what the router reads from the rest.
            for match in _ESSENTIAL.finditer(raw, scanned_end, end):
                if self.extra_left <= 0:
                    break
                self.extra_left -= 1
                kept.append(_cap_field(_field_name(match.group()), match.group())[0])
            dropped += 1
        if dropped:
            self.note(f"{where} block: fields dropped beyond the header limits")
        return b"".join(kept), changed


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


def _display(name: str) -> str:
    return "-".join(word.capitalize() for word in name.split("-")) or "(unnamed)"


def _cap_field(name: str, one: bytes) -> tuple[bytes, str]:
    """Return one field (name and folded value) within the caps, and why it was cut ('')."""
    head, colon, value = one.partition(b":")
    if not colon:
        head, value = b"", one
    capped, why = _cap_value(name, value)
    if not why:
        return one, ""
    ending = b"\r\n" if b"\r\n" in one else b"\n"
    return head + colon + capped.rstrip(b"\r\n") + ending, why


def _cap_value(name: str, value: bytes) -> tuple[bytes, str]:
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


def _nth(data: bytes, needle: bytes, count: int) -> int:
    """Return where the count-th ``needle`` starts in ``data`` (it occurs at least that often)."""
    at = -1
    for _ in range(count):
        at = data.find(needle, at + 1)
    return at


def _content_type(block: bytes, default_type: str) -> tuple[str, str | None]:
    """Return the content type and boundary the compat32 parser will read from a header block."""
    match = None
    for candidate in _CONTENT_TYPE.finditer(block):
        if candidate.start() == 0 or block[candidate.start() - 1 : candidate.start()] in (
            b"\r",
            b"\n",
        ):
            match = candidate
            break
    message = Message()
    message.set_default_type(default_type)
    if match is not None:
        fold = re.compile(rb"(?:\r\n|\r|\n)(?![ \t])")
        rest = fold.split(block[match.end() :], maxsplit=1)[0]
        lines = rest.decode("ascii", "surrogateescape").splitlines(keepends=True)
        value = (lines[0].lstrip(" \t") + "".join(lines[1:])).rstrip("\r\n") if lines else ""
        message["Content-Type"] = value
    try:
        return message.get_content_type(), message.get_boundary()
    except Exception:  # the compat32 reader is lenient; this mirrors a parse that failed too
        return default_type, None
