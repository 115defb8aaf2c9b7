"""Form bodies (multipart/form-data and urlencoded) read from the raw request bytes.

Providers post form fields in the message's own charsets (SendGrid says which in its
``charsets`` field), so fields are kept as bytes and decoded by the adapter, not guessed as
UTF-8 by the web framework. A multipart body is split at its own boundary's delimiter lines
(linear in the body's size; at most ``MAX_PARTS`` parts, refused otherwise: a Mailgun post is
parsed before its signature is checked), and only each part's header block, capped by
``posted_caps``, is parsed with the standard ``email`` package (policy compat32). A part's body is
never walked into: an attached email (``message/rfc822``) or a field that claims to be a
multipart is bytes here, parsed later under the message caps if at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.parser import BytesParser
from itertools import chain
from urllib.parse import parse_qsl

from channels.email.header_caps import blank_line
from channels.email.mime import payload_bytes
from channels.email.posted_caps import cap_header_block, cap_value
from channels.email.text import clean_line, decode_bytes, decode_words

MAX_PARTS = 1000


class FormError(ValueError):
    """The body is not a readable form; the message says why."""


@dataclass(frozen=True)
class FormFile:
    """An uploaded file: the form field it came in, its name, type and bytes."""

    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class FormData:
    """A form's fields (raw bytes, first value of each name) and its files."""

    fields: dict[str, bytes]
    files: tuple[FormFile, ...]

    def text(self, name: str, charset: str | None = None) -> str | None:
        """Return field ``name`` decoded (in ``charset`` when given), or None when absent."""
        value = self.fields.get(name)
        return None if value is None else decode_bytes(value, charset)

    @property
    def size(self) -> int:
        """Return the bytes of every field and file, as the provider posted them."""
        return sum(len(value) for value in self.fields.values()) + sum(
            len(upload.data) for upload in self.files
        )

    def has(self, name: str) -> bool:
        """Return True when the form has field ``name``."""
        return name in self.fields


def parse_form(content_type: str | None, body: bytes) -> FormData:
    """Parse a multipart/form-data or urlencoded body; raise FormError when it is neither."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        return _urlencoded(body)
    if media == "multipart/form-data":
        return _multipart(content_type or "", body)
    raise FormError(
        "expected a multipart/form-data or application/x-www-form-urlencoded body, "
        f"not {media or 'no content type'}"
    )


def _urlencoded(body: bytes) -> FormData:
    try:
        pairs = parse_qsl(
            body.decode("latin-1"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="replace",
            max_num_fields=MAX_PARTS,
        )
    except ValueError as exc:
        raise FormError(f"form body is not readable: {exc}") from None
    fields: dict[str, bytes] = {}
    for name, value in pairs:
        fields.setdefault(name, value.encode("utf-8", "surrogatepass"))
    return FormData(fields=fields, files=())


def _multipart(content_type: str, body: bytes) -> FormData:
    capped_type, _ = cap_value("content-type", content_type)
    holder = Message()
    holder["Content-Type"] = capped_type
    try:
        boundary = holder.get_boundary()
    except Exception:  # the compat32 reader is lenient; this is a last resort
        boundary = None
    if not boundary:
        raise FormError("multipart/form-data without a boundary parameter")
    parts = _split(body, boundary.encode("latin-1", "replace"))
    if not parts:
        raise FormError("multipart body has no parts (wrong boundary, or truncated)")
    fields: dict[str, bytes] = {}
    files: list[FormFile] = []
    for part in parts:
        name = _param(part, "name")
        if not name:
            continue
        data = payload_bytes(part)
        filename = _filename(part)
        if filename is not None:
            files.append(
                FormFile(
                    field=name,
                    filename=filename,
                    content_type=_content_type(part),
                    data=data,
                )
            )
        else:
            fields.setdefault(name, data)
    return FormData(fields=fields, files=tuple(files))


def _split(body: bytes, boundary: bytes) -> list[Message]:
    """Return the parts between the boundary's delimiter lines, each a header-only Message."""
    # A delimiter line: "--boundary" at the start of a line, "--" after it on the last one.
    # Looking for it after a line ending lets the search skip to line endings at C speed.
    # (Its line ending is only looked at: it may start the next delimiter line.)
    tail = b"--" + re.escape(boundary) + rb"(--)?[ \t]*(?=[\r\n]|\Z)"
    parts: list[Message] = []
    start: int | None = None  # where the current part begins (None: still in the preamble)
    first = re.compile(tail).match(body)
    matches = chain((first,) if first else (), re.compile(rb"[\r\n]" + tail).finditer(body))
    for match in matches:
        at = match.start() if match is first else match.start() + 1
        if start is not None:
            # The line ending before a delimiter belongs to the delimiter.
            end = at - 2 if body[at - 2 : at] == b"\r\n" else at - 1
            parts.append(_part(body[start : max(end, start)]))
            if len(parts) > MAX_PARTS:
                raise FormError(f"multipart body has more than {MAX_PARTS} parts")
        if match.group(1):
            return parts
        start = match.end()
        start += 2 if body[start : start + 2] == b"\r\n" else 1 if start < len(body) else 0
    if start is not None and start < len(body):  # no closing delimiter: the rest is a part
        parts.append(_part(body[start:]))
    if len(parts) > MAX_PARTS:
        raise FormError(f"multipart body has more than {MAX_PARTS} parts")
    return parts


def _part(raw: bytes) -> Message:
    """Return one form part: its header block (within the caps) parsed, its body as it is."""
    if raw.startswith((b"\r\n", b"\n", b"\r")):  # no header block at all
        head, content = b"", raw[2 if raw.startswith(b"\r\n") else 1 :]
    else:
        # The first empty line ends the header block (whatever the line endings).
        head_end, body = blank_line(raw, 0, len(raw))
        head, content = raw[:head_end], raw[body:]
    capped, _ = cap_header_block(head)
    part = BytesParser(policy=policy.compat32).parsebytes(capped + b"\r\n", headersonly=True)
    # As the parser keeps a body: its bytes as ASCII with surrogate escapes.
    part.set_payload(content.decode("ascii", "surrogateescape"))
    return part


def _disposition(part: Message) -> Message:
    """Return the part's Content-Disposition alone, its raw 8-bit bytes decoded (UTF-8, else
    Windows-1252): compat32 would read them as U+FFFD."""
    disposition = Message()
    for key, value in part.raw_items():
        if str(key).strip().lower() == "content-disposition":
            raw = str(value).encode("ascii", "surrogateescape")
            disposition["Content-Disposition"] = decode_bytes(raw)
            break
    return disposition


def _param(part: Message, name: str) -> str | None:
    try:
        value = _disposition(part).get_param(name, header="content-disposition")
    except Exception:
        return None
    if isinstance(value, tuple):  # RFC 2231 (charset, language, value)
        value = value[2]
    return clean_line(str(value), 255) if value is not None else None


def _filename(part: Message) -> str | None:
    try:
        filename = _disposition(part).get_filename()
    except Exception:
        filename = None
    if filename is None:
        return None
    # RFC 2047 encoded words (which compat32 leaves) within the limits' caps.
    return clean_line(decode_words(str(filename)), 255) or "attachment"


def _content_type(part: Message) -> str:
    try:
        return str(part.get_content_type())
    except Exception:
        return "application/octet-stream"
