"""Bound a raw message's headers and MIME structure, on its bytes, before anything parses it.

The walk reads the message the way the standard library's feed parser will (the same
header-block rule, the same compat32 reading of Content-Type and boundary, the same delimiter
lines), cuts each header block with ``header_caps``, and drops the parts and nesting beyond
``limits.MAX_PARTS`` and ``limits.MAX_DEPTH``, closing the multiparts left open.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

from channels.email.header_caps import HeaderBudget, blank_line
from channels.email.limits import MAX_DEPTH, MAX_NOTES, MAX_PARTS, SCAN_BYTES

# The feed parser's rule for a header line (email.feedparser.headerRE), and the block they form.
_HEADER_BLOCK = re.compile(rb"(?:(?:From |[\x21-\x39\x3b-\x7e]*:|[ \t])[^\r\n]*(?:\r\n|\r|\n|\Z))*")
_HEADER_START = re.compile(rb"From |[\x21-\x39\x3b-\x7e]*:|[ \t]")
_LINE_END = re.compile(rb"\r\n|\r|\n")
_FIELD_END = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?![ \t])")  # a line ending not folded
# Stands for "an empty line" among the boundaries that end an entity (no boundary holds one).
BLANK = b"\n"
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
        notes=tuple(walk.headers.notes[:MAX_NOTES]),
        entities=walk.entities,
        cut=walk.cut,
    )


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
    """One pass over a raw message: the pieces of it that are kept, and the notes on the cuts."""

    def __init__(self, raw: bytes, *, max_parts: int, max_depth: int) -> None:
        self.raw = raw
        self.max_parts = max_parts
        self.max_depth = max_depth
        self.pieces: list[bytes | tuple[int, int]] = []
        self.headers = HeaderBudget()  # its notes are the message's notes
        self.entities = 0
        self.changed = False
        self.cut = False
        self.head = b""
        self.finders: dict[bytes, _Finder] = {}
        self.open: list[bytes] = []  # boundaries of the multiparts being walked
        self.lone_cr = raw.count(b"\r") != raw.count(b"\r\n")

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
        self.headers.note(text)

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
        window = min(limit, pos + SCAN_BYTES)
        if window < limit:  # whole lines only: a line the window cuts is not a header line
            window = max(self.raw.rfind(b"\n", pos, window) + 1, pos)
        head_end = _HEADER_BLOCK.match(self.raw, pos, window)
        assert head_end is not None  # the pattern matches the empty string
        block_end = body = head_end.end()
        if block_end == window < limit and _HEADER_START.match(self.raw, window, limit):
            # A block longer than anything real: it is cut at the window (below), and its body
            # starts after the first empty line (the rewritten block ends with one).
            block_end, body = blank_line(self.raw, window, limit)
        else:
            separator = _LINE_END.match(self.raw, block_end, limit)
            if separator is not None:
                body = separator.end()
        where = "header" if depth == 0 else "MIME part header"
        capped, changed = self.headers.cap_block(self.raw, pos, block_end, where)
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
