"""Chat and Contact Support form bodies: parsed into one normalised, validated form each.

Pure: no Flask, no database. Text is kept as plain text: it is never interpreted as HTML,
only normalised (NFC, newlines) and stripped of control characters, which PostgreSQL cannot
store (NUL) or which could disguise what staff read.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from router.core.domain import Category, Severity, Topic
from router.core.validation import parse_instant

# contacts.subject is VARCHAR(500).
SUBJECT_MAX_CHARS = 500
MAX_ATTACHMENTS = 20
ATTACHMENT_NAME_MAX_CHARS = 255
MAX_LIST_ITEMS = 50
IDEMPOTENCY_KEY_MAX_CHARS = 200

_SEVERITY = re.compile(r"^\s*(?:s|sev|severity)?[\s-]*([123])\s*$", re.IGNORECASE)
_KEY = re.compile(r"^[\x21-\x7e]+$")
# Control characters except tab and newline; plus the bidirectional overrides and isolates
# that can make text read differently from what it says.
_STRIP = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


class FormError(ValueError):
    """A request body field is missing or wrong; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class TooLong(FormError):
    """A text field is longer than allowed."""


@dataclass(frozen=True)
class ChatOpen:
    """A request to open a chat: the topic and subject the admin chose, and a first message."""

    topic: Topic
    subject: str
    severity: Severity | None
    message: str | None


@dataclass(frozen=True)
class ChatMessage:
    """One message the admin typed into a chat."""

    text: str


@dataclass(frozen=True)
class PortalRequest:
    """The portal's Contact Support form."""

    subject: str
    description: str
    severity: Severity | None
    category: Category | None
    topic: Topic | None
    troubleshooting: str | None
    recognised_at: datetime | None
    error_messages: tuple[str, ...]
    resources: tuple[str, ...]
    attachments: tuple[str, ...]


def clean_text(
    raw: Any, *, field: str, max_chars: int, required: bool, single_line: bool = False
) -> str | None:
    """Return ``raw`` as normalised plain text (None when absent and optional)."""
    if raw is None:
        if required:
            raise FormError(field, "is required")
        return None
    if not isinstance(raw, str):
        raise FormError(field, "must be a string")
    text = unicodedata.normalize("NFC", raw).replace("\r\n", "\n").replace("\r", "\n")
    text = _STRIP.sub("", text)
    if single_line:
        text = " ".join(text.split())
    text = text.strip()
    if not text:
        if required:
            raise FormError(field, "must not be empty")
        return None
    if len(text) > max_chars:
        raise TooLong(field, f"is {len(text)} characters long; the limit is {max_chars}")
    return text


def parse_severity(raw: Any, field: str = "severity") -> Severity | None:
    """Read S1/S2/S3 (also 1, "sev 2", "Severity 3"); absent is None; anything else is refused."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise FormError(field, "must be S1, S2 or S3")
    match = _SEVERITY.match(str(raw))
    if match is None:
        raise FormError(field, "must be S1, S2 or S3")
    return Severity(f"S{match.group(1)}")


def parse_topic(raw: Any, *, required: bool, field: str = "topic") -> Topic | None:
    """Read a break-fix topic (windows, mac, linux, identity, devices, directory, other)."""
    if raw is None or raw == "":
        if required:
            raise FormError(field, f"is required; one of {_choices(Topic)}")
        return None
    try:
        return Topic(str(raw).strip().lower())
    except ValueError:
        raise FormError(field, f"must be one of {_choices(Topic)}") from None


def parse_category(raw: Any, field: str = "category") -> Category | None:
    """Read a category (break-fix, feature-request, …); absent is None."""
    if raw is None or raw == "":
        return None
    try:
        return Category(str(raw).strip().lower())
    except ValueError:
        raise FormError(field, f"must be one of {_choices(Category)}") from None


def parse_idempotency_key(raw: str | None) -> str | None:
    """Check a client's Idempotency-Key header: 1-200 visible ASCII characters."""
    if raw is None:
        return None
    key = raw.strip()
    if not key:
        return None
    if len(key) > IDEMPOTENCY_KEY_MAX_CHARS or not _KEY.match(key):
        raise FormError(
            "Idempotency-Key",
            f"must be 1-{IDEMPOTENCY_KEY_MAX_CHARS} visible ASCII characters",
        )
    return key


def parse_chat_open(body: Any, *, message_max_chars: int) -> ChatOpen:
    """Read ``{"topic", "subject", "severity"?, "message"?}``."""
    data = _object(body)
    subject = _subject(data)
    return ChatOpen(
        topic=_required(parse_topic(data.get("topic"), required=True)),
        subject=subject,
        severity=parse_severity(data.get("severity")),
        message=clean_text(
            data.get("message"), field="message", max_chars=message_max_chars, required=False
        ),
    )


def _subject(data: dict[str, Any]) -> str:
    """Return the required one-line subject."""
    subject = clean_text(
        data.get("subject"),
        field="subject",
        max_chars=SUBJECT_MAX_CHARS,
        required=True,
        single_line=True,
    )
    assert subject is not None  # required
    return subject


def parse_chat_message(body: Any, *, max_chars: int) -> ChatMessage:
    """Read ``{"text"}`` (``"message"`` is accepted as its synonym)."""
    data = _object(body)
    field = "text" if "text" in data else "message"
    text = clean_text(data.get(field), field=field, max_chars=max_chars, required=True)
    assert text is not None
    return ChatMessage(text=text)


def parse_handoff(body: Any, *, max_chars: int) -> str | None:
    """Read a hand-off request: an empty body, or ``{"message"?}`` saying why."""
    if body is None or body == {}:
        return None
    data = _object(body)
    return clean_text(data.get("message"), field="message", max_chars=max_chars, required=False)


def parse_portal_request(body: Any, *, text_max_chars: int) -> PortalRequest:
    """Read the Contact Support form (SPEC 4.3); text fields hold at most ``text_max_chars``."""
    data = _object(body)
    subject = _subject(data)
    description = clean_text(
        data.get("description"), field="description", max_chars=text_max_chars, required=True
    )
    assert description is not None  # required
    recognised_raw = data.get("recognised_at")
    recognised_at = None
    if recognised_raw not in (None, ""):
        if not isinstance(recognised_raw, str):
            raise FormError("recognised_at", "must be an ISO 8601 date or date-time")
        try:
            recognised_at = parse_instant(recognised_raw)
        except ValueError as exc:
            raise FormError("recognised_at", str(exc)) from None
    return PortalRequest(
        subject=subject,
        description=description,
        severity=parse_severity(data.get("severity")),
        category=parse_category(data.get("category")),
        topic=parse_topic(data.get("topic"), required=False),
        troubleshooting=clean_text(
            data.get("troubleshooting"),
            field="troubleshooting",
            max_chars=text_max_chars,
            required=False,
        ),
        recognised_at=recognised_at,
        error_messages=_texts(data.get("error_messages"), "error_messages", text_max_chars),
        resources=_texts(data.get("resources"), "resources", text_max_chars),
        attachments=_attachments(data.get("attachments")),
    )


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise FormError("body", "must be a JSON object")
    return body


def _required(value: Topic | None) -> Topic:
    assert value is not None
    return value


def _choices(enum: type[Topic] | type[Category]) -> str:
    return ", ".join(member.value for member in enum)


def _texts(raw: Any, field: str, max_chars: int) -> tuple[str, ...]:
    """Read a string or a list of strings into cleaned, non-empty texts."""
    if raw is None:
        return ()
    values = [raw] if isinstance(raw, str) else raw
    if not isinstance(values, list) or len(values) > MAX_LIST_ITEMS:
        raise FormError(field, f"must be a string or a list of at most {MAX_LIST_ITEMS} strings")
    cleaned = []
    for index, value in enumerate(values):
        text = clean_text(value, field=f"{field}[{index}]", max_chars=max_chars, required=False)
        if text is not None:
            cleaned.append(text)
    return tuple(cleaned)


def _attachments(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_ATTACHMENTS:
        raise FormError("attachments", f"must be a list of at most {MAX_ATTACHMENTS} file names")
    names = []
    for index, value in enumerate(raw):
        name = clean_text(
            value,
            field=f"attachments[{index}]",
            max_chars=ATTACHMENT_NAME_MAX_CHARS,
            required=True,
            single_line=True,
        )
        assert name is not None
        names.append(name)
    return tuple(names)
