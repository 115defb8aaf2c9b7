"""Decode and clean the text of inbound mail: charsets, encoded words, control characters.

Everything here tolerates what real mail contains -- undeclared or wrong charsets, encoded words
in any charset, control characters, undecodable bytes -- and hands back clean text that every
database (PostgreSQL refuses NUL characters and lone surrogates) and JSON can store.
"""

from __future__ import annotations

import codecs
import re
from email.header import decode_header

from channels.email.limits import MAX_HEADER_CHARS

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_WHITESPACE = re.compile(r"\s+")


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Decode ``data`` in its declared charset, else UTF-8, else Windows-1252; never fail."""
    if charset:
        name = charset.strip().strip("\"'").lower()
        try:
            codec = codecs.lookup(name)
        except LookupError:
            codec = None
        if codec is not None and getattr(codec, "_is_text_encoding", True):
            try:
                return data.decode(codec.name)
            except (UnicodeError, LookupError, ValueError, TypeError):
                pass  # declared wrongly: fall back to sniffing
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def has_surrogates(value: str) -> bool:
    """Return True when ``value`` holds undecodable bytes the parser kept as surrogates."""
    return _SURROGATE.search(value) is not None


def clean_text(value: str, limit: int | None = None) -> str:
    """Return ``value`` without NULs, control characters or surrogates, newlines as \\n."""
    if _SURROGATE.search(value):
        try:
            # Undecodable bytes the parser kept as surrogate escapes: decode them properly.
            value = decode_bytes(value.encode("utf-8", "surrogateescape"))
        except UnicodeEncodeError:
            value = _SURROGATE.sub("\ufffd", value)
    value = _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))
    return value[:limit] if limit is not None else value


def clean_line(value: str, limit: int = MAX_HEADER_CHARS) -> str:
    """Return ``value`` cleaned and folded onto one line."""
    return fold_spaces(clean_text(value))[:limit]


def fold_spaces(value: str) -> str:
    """Return ``value`` with every run of whitespace one space, trimmed."""
    return _WHITESPACE.sub(" ", value).strip()


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words, whatever their charset; never fail."""
    if "=?" not in value:
        return value
    try:
        chunks = decode_header(value)
    except Exception:  # the legacy decoder raises on odd input; keep the raw text then
        return value
    out: list[str] = []
    for chunk, charset in chunks:
        out.append(decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk)
    return "".join(out)
