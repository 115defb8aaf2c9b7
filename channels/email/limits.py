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
  Subject, Message-ID, Content-Type, ...); nothing is read past twice the block's cap;
- a message/delivery-status report's header blocks count as MIME entities (the parser makes a
  message of each);
- a provider's list of header pairs is read no further than ``MAX_MESSAGE_FIELDS`` (plus
  ``MAX_ESSENTIAL_EXTRA``), and not past the point where nothing more can be kept;
- a message keeps its first ``MAX_PARTS`` MIME entities and ``MAX_DEPTH`` levels of nesting; what
  comes after is dropped and the open multiparts are closed (a cut inside an attached message
  leaves it empty: one entity, one level more).

The message is kept, never refused for these: each cut adds a note (``InboundEmail.capped``,
on the contact's timeline), so staff see what was left out. The caps are constants, not
settings: they bound the cost of one message (see ``bench/bench_email.py``), and no real mail
comes near them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message
from typing import Any

MAX_FIELD_BYTES = 8 * 1024
MAX_ENCODED_WORDS = 100
MAX_HEADER_BLOCK_BYTES = 64 * 1024
MAX_HEADER_FIELDS = 300
MAX_MESSAGE_FIELDS = 3000  # header fields of all the entities of one message
MAX_PARAMETER_FIELD_BYTES = 2 * 1024  # Content-Type and Content-Disposition of a part
MAX_PARAMETERS = 24  # semicolons in those (legacy parameter parsing is quadratic in them)
MAX_PARTS = 500
MAX_DEPTH = 20
MAX_NOTES = 20
# Beyond the budgets only these fields are kept, and at most this many in one message.
MAX_ESSENTIAL_EXTRA = 100
# Header lines looked at one by one; past this, a block is not read at all.
_SCAN_BYTES = 2 * MAX_HEADER_BLOCK_BYTES

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
_HEADER_START = re.compile(rb"From |[\x21-\x39\x3b-\x7e]*:|[ \t]")
_LINE_END = re.compile(rb"\r\n|\r|\n")
_FIELD_END = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?![ \t])")  # a line ending not folded
# Stands for "an empty line" among the boundaries that end an entity (no boundary holds one).
BLANK = b"\n"
_CONTENT_TYPE = re.compile(rb"content-type:", re.IGNORECASE)
_JSON_SPACE = re.compile(r"[ \t\n\r]*")


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
    """The next delimiter line of one boundary in a window (searches move forward)."""

    raw: bytes
    boundary: bytes
    lone_cr: bool  # the message has lines ending in a bare CR (rare; a second search)
    patterns: tuple[re.Pattern[bytes], ...] = ()
    found: _Delimiter | None = None
    none_in: tuple[int, int] = (0, 0)  # a window known to hold no delimiter

    def __post_init__(self) -> None:
        # email.feedparser's boundaryre at the start of a line. Beginning with a literal (the
        # line ending before it) lets the regex engine skip ahead as fast as bytes.find.
        if self.boundary == BLANK:
            # An empty line (what ends a block of a delivery-status report).
            blank = (rb"\n(?:\r\n|\r(?!\n)|\n)", rb"\r(?:\r\n|\r(?!\n))")
            self.patterns = tuple(re.compile(p) for p in blank[: 2 if self.lone_cr else 1])
            return
        tail = b"--" + re.escape(self.boundary) + rb"(?P<close>--)?[ \t]*(?:\r\n|\r|\n|\Z)"
        ends = (b"\n", b"\r") if self.lone_cr else (b"\n",)
        self.patterns = tuple(re.compile(re.escape(end) + tail) for end in ends)

    def next(self, pos: int, until: int) -> _Delimiter | None:
        if self.found is not None and self.found.start >= pos:
            return self.found if self.found.start < until else None
        if self.none_in[0] <= pos and until <= self.none_in[1]:
            return None
        best: re.Match[bytes] | None = None
        for pattern in self.patterns:
            match = pattern.search(self.raw, max(pos - 1, 0), until)
            if match is not None and (best is None or match.start() < best.start()):
                best = match
        if best is None:
            self.found, self.none_in = None, (pos, until)
            return None
        start = best.start() + 1  # the delimiter line starts after the line ending
        close = bool(best.groupdict().get("close"))
        self.found = _Delimiter(start, best.end(), close, self.boundary)
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
        self.lone_cr = raw.count(b"\r") != raw.count(b"\r\n")
        self.extra_left = MAX_ESSENTIAL_EXTRA

    def run(self) -> None:
        try:
            end = self.entity(0, (), 0, "text/plain")
            self.copy(end, len(self.raw))
        except _Stop:
            self.changed = self.cut = True
            for boundary in reversed(self.open):
                # A line ending of our own only where the cut left a line open: an extra empty
                # line would be one more block of a delivery-status report.
                ending = b"" if self.last_byte() in (b"\r", b"\n") else b"\r\n"
                self.pieces.append(ending + b"--" + boundary + b"--\r\n")

    def last_byte(self) -> bytes:
        for piece in reversed(self.pieces):
            if isinstance(piece, bytes):
                if piece:
                    return piece[-1:]
            elif piece[1] > piece[0]:
                return self.raw[piece[1] - 1 : piece[1]]
        return b""

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
        """Return the first delimiter line of any open multipart at or after ``pos``."""
        # Outermost first: an inner boundary is only looked for before the next outer
        # delimiter, so no byte is searched more than once per level of nesting.
        found: _Delimiter | None = None
        until = len(self.raw)
        for boundary in active:
            finder = self.finders.get(boundary)
            if finder is None:
                finder = self.finders[boundary] = _Finder(self.raw, boundary, self.lone_cr)
            candidate = finder.next(pos, until)
            if candidate is not None:
                found, until = candidate, candidate.start
        return found

    # An entity: its header block, then a body that is a leaf, a multipart or a message.
    def entity(self, pos: int, active: tuple[bytes, ...], depth: int, default_type: str) -> int:
        self.entities += 1
        ahead = self.next_delimiter(pos, active)
        limit = ahead.start if ahead is not None else len(self.raw)
        window = min(limit, pos + _SCAN_BYTES)
        if window < limit:  # whole lines only: a line the window cuts is not a header line
            window = max(self.raw.rfind(b"\n", pos, window) + 1, pos)
        head_end = _HEADER_BLOCK.match(self.raw, pos, window)
        assert head_end is not None  # the pattern matches the empty string
        block_end = body = head_end.end()
        if block_end == window < limit and _HEADER_START.match(self.raw, window, limit):
            # A block longer than anything real: it is cut at the window (below), and its body
            # starts after the first empty line (the rewritten block ends with one).
            block_end, body = _after_blank_line(self.raw, window, limit)
        else:
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
                return self.report(body, active, depth)
            # Cut here, the parser still makes an (empty) attached message: one entity more.
            if depth + 1 > self.max_depth:
                self.note(f"MIME: nesting deeper than {self.max_depth} levels was dropped")
                self.entities += 1
                raise _Stop(body)
            if self.entities >= self.max_parts:
                self.note(f"MIME: more than {self.max_parts} parts; the rest was dropped")
                self.entities += 1
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
            # An enclosing multipart's delimiter ends this one (the parser checks those first,
            # so a boundary reused from an enclosing multipart never opens a part here).
            if delimiter.boundary != boundary or boundary in active:
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
                # (close delimiters too: the feed parser does not tell them apart here)
                if following is None or following.start != delimiter.end:
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

    def report(self, pos: int, active: tuple[bytes, ...], depth: int) -> int:
        """Walk a message/delivery-status body: blocks of headers, each an entity of its own."""
        # As the feed parser reads it: each block is a whole entity that an empty line ends
        # (whatever it holds); after that line, anything but the end starts another block.
        mine = (*active, BLANK)
        first = True
        while True:
            if self.entities >= self.max_parts:
                self.note(f"MIME: more than {self.max_parts} parts; the rest was dropped")
                self.entities += first  # an empty report still holds one (empty) block
                raise _Stop(pos)
            first = False
            end = self.entity(pos, mine, depth + 1, "text/plain")
            delimiter = self.next_delimiter(end, mine)
            if delimiter is None or delimiter.boundary != BLANK:
                return delimiter.start if delimiter is not None else len(self.raw)
            self.copy(delimiter.start, delimiter.end)
            after = self.next_delimiter(delimiter.end, active)
            if delimiter.end >= len(self.raw) or (
                after is not None and after.start == delimiter.end
            ):
                return delimiter.end
            pos = delimiter.end

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
            room = len(kept) < MAX_HEADER_FIELDS and self.fields_left > 0 and budget > 0
            if not room and (name not in ESSENTIAL_FIELDS or self.extra_left <= 0):
                dropped += 1
                changed = True
                continue
            capped, why = _cap_field(name, one)
            if why:
                self.note(f"{where} {_display(name)}: {why}")
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


def _after_blank_line(raw: bytes, start: int, limit: int) -> tuple[int, int]:
    """Return (where the first empty line at or after ``start`` begins, where it ends)."""
    best: tuple[int, int] | None = None
    # A line ending followed by a line ending (bytes.find is far faster than a regex here).
    for pair, skip in ((b"\n\r\n", 1), (b"\n\n", 1), (b"\r\r", 1)):
        at = raw.find(pair, start, limit)
        if at >= 0 and (best is None or at + skip < best[0]):
            best = (at + skip, at + len(pair))
    return best if best is not None else (limit, limit)


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
        rest = _FIELD_END.split(block[match.end() :], maxsplit=1)[0]
        lines = rest.decode("ascii", "surrogateescape").splitlines(keepends=True)
        value = (lines[0].lstrip(" \t") + "".join(lines[1:])).rstrip("\r\n") if lines else ""
        message["Content-Type"] = value
    try:
        return message.get_content_type(), message.get_boundary()
    except Exception:  # the compat32 reader is lenient; this mirrors a parse that failed too
        return default_type, None
