"""Form bodies (multipart/form-data and urlencoded) read from the raw request bytes.

Providers post form fields in the message's own charsets (SendGrid says which in its
``charsets`` field), so fields are kept as bytes and decoded by the adapter, not guessed as
UTF-8 by the web framework. Multipart bodies are parsed with the standard ``email`` package
(policy compat32, linear in the body's size) once ``limits`` has capped the parts' header fields
and checked that there are at most ``MAX_PARTS`` parts and none nested (refused otherwise: a
provider's form never nests, and a Mailgun post is parsed before its signature is checked).
"""

from __future__ import annotations

from dataclasses import dataclass
from email import policy
from email.message import Message
from email.parser import BytesParser
from urllib.parse import parse_qsl

from channels.email import limits
from channels.email.normalise import clean_line, decode_bytes, decode_words

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
    header = b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n"
    bounded = limits.bound_message(header + body, max_parts=MAX_PARTS + 1, max_depth=1)
    if bounded.cut:
        raise FormError(f"multipart body has more than {MAX_PARTS} parts, or nested parts")
    try:
        message = BytesParser(policy=policy.compat32).parsebytes(bounded.raw)
        boundary = message.get_boundary()
    except Exception as exc:  # the parser is lenient; this is a last resort
        raise FormError(f"multipart body is not readable ({type(exc).__name__})") from None
    if not boundary:
        raise FormError("multipart/form-data without a boundary parameter")
    parts = message.get_payload() if message.is_multipart() else None
    if not isinstance(parts, list) or not parts:
        raise FormError("multipart body has no parts (wrong boundary, or truncated)")
    if len(parts) > MAX_PARTS:
        raise FormError(f"multipart body has more than {MAX_PARTS} parts")
    fields: dict[str, bytes] = {}
    files: list[FormFile] = []
    for part in parts:
        if not isinstance(part, Message):
            continue
        name = _param(part, "name")
        if not name:
            continue
        data = _bytes(part)
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


def _bytes(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    return raw.encode("utf-8", "replace") if isinstance(raw, str) else b""


def text_or_empty(form: FormData, name: str, charset: str | None = None) -> str:
    """Return field ``name`` decoded, or an empty string."""
    return form.text(name, charset) or ""
