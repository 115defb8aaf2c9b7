"""Turn an HTML body into readable text (for a message that has no plain-text part)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from channels.email.limits import MAX_HTML_CHARS
from channels.email.text import fold_spaces

# html.parser rescans from every "<" that opens something it never closes: quadratic (a 24 KB
# body of "<a " took 6 s on Python 3.11; later CPython releases fix it). Such a "<" -- one not
# closed by a ">" before the next "<", or a "<![" after the last "]]>" -- is text, so it is
# escaped first, in linear time, and the parser never meets an unclosed construct of that kind.
# The constructs that need more than a ">" (a comment's "-->", a quoted attribute value) are
# cut short in _TextExtractor instead.
_UNCLOSED_TAG = re.compile(r"<(?=[^<>]*(?:<|\Z))")


def _escape_unclosed(html: str) -> str:
    html = _UNCLOSED_TAG.sub("&lt;", html)
    last_section_end = html.rfind("]]>")
    head, tail = html[: last_section_end + 1], html[last_section_end + 1 :]
    return head + tail.replace("<![", "&lt;![")


def html_to_text(html: str) -> str:
    """Return the readable text of an HTML body (scripts and styles dropped)."""
    parser = _TextExtractor()
    try:
        parser.feed(_escape_unclosed(html[:MAX_HTML_CHARS]))
        parser.close()
    except Exception:  # html.parser is lenient; this is a last resort on hostile input
        return ""
    lines = (fold_spaces(line) for line in "".join(parser.parts).split("\n"))
    return "\n".join(line for line in lines if line)


class _TextExtractor(HTMLParser):
    _BLOCKS = frozenset(
        [
            "p",
            "div",
            "br",
            "li",
            "tr",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "table",
            "ul",
            "ol",
            "blockquote",
            "pre",
            "section",
            "article",
        ]
    )
    _SKIP = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0
        # At close(), each construct html.parser cannot finish (a comment without "-->", a
        # start tag whose quoted value runs to the end, ...) is searched to the end of the
        # input again from its own "<": quadratic. Once one of a kind failed, no later one of
        # that kind in the same buffer can finish (the closer it needs is absent, or the quote
        # runs on), so it fails at once and is read as text up to its ">", as the parser does.
        self._failed: dict[str, int] = {}
        self._failed_in: str | None = None

    def _unfinished(self, kind: str, i: int) -> bool:
        if self._failed_in is not self.rawdata:
            self._failed, self._failed_in = {}, self.rawdata
        return i >= self._failed.get(kind, len(self.rawdata) + 1)

    def _note(self, kind: str, i: int, end: int) -> int:
        if end < 0:
            self._failed.setdefault(kind, i)
        return end

    def parse_starttag(self, i: int) -> int:
        """Parse a start tag, failing at once after one that ran to the end."""
        if self._unfinished("tag", i):
            return -1
        return self._note("tag", i, super().parse_starttag(i))

    def parse_comment(self, i: int, report: bool = True) -> int:
        """Parse a comment, failing at once after one that found no "-->"."""
        if self._unfinished("comment", i):
            return -1
        return self._note("comment", i, super().parse_comment(i, report))

    def parse_endtag(self, i: int) -> int:
        """Parse an end tag, failing at once after one that found no ">"."""
        if self._unfinished("end", i):
            return -1
        return self._note("end", i, super().parse_endtag(i))

    def parse_pi(self, i: int) -> int:
        """Parse a processing instruction, failing at once after one that found no ">"."""
        if self._unfinished("pi", i):
            return -1
        return self._note("pi", i, super().parse_pi(i))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)
