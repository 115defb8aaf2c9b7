"""Parse a raw RFC 5322 message: its MIME tree walked into text, HTML and attachments.

The standard library's ``email`` package parses the message once ``mime_caps`` has capped its
headers and structure: the MIME tree with policy ``compat32`` (linear in its size), the
top-level headers with policy ``default``.
"""

from __future__ import annotations

import re
from email import policy
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser
from typing import Any

from channels.email.automatic import REPORT_TYPES
from channels.email.headers import HeaderMap, first, header_map, message_ids, raw_values
from channels.email.limits import ATTACHMENT_HEAD_BYTES, MAX_ATTACHMENTS, MAX_MIME_DEPTH
from channels.email.mime_caps import bound_message
from channels.email.normalise import (
    Attachment,
    AuthResults,
    InboundEmail,
    MalformedEmail,
    Parts,
    assemble,
)
from channels.email.text import clean_line, clean_text, decode_bytes, decode_words, has_surrogates

_TEXTUAL_NAME = re.compile(r"\.(log|txt|csv|json|xml|conf|cfg|ini|out|err)(\.\d+)?$", re.I)


def parse_mime(
    raw: bytes,
    *,
    provider: str,
    own_addresses: frozenset[str],
    auth: AuthResults | None = None,
    envelope_from: str | None = None,
    mailbox_hash: str | None = None,
    read_results: bool = False,
) -> InboundEmail:
    """Parse a raw RFC 5322 message; raise MalformedEmail when it is not one."""
    if not raw.strip():
        raise MalformedEmail("the message is empty")
    bounded = bound_message(raw)
    try:
        # The tree with compat32: no structured header parsing per part (linear, and cheap).
        tree = BytesParser(policy=policy.compat32).parsebytes(bounded.raw)
        # The top-level headers, capped, are what policy default reads (From, Subject, ...).
        message = BytesHeaderParser(policy=policy.default).parsebytes(bounded.head)
    except RecursionError:
        raise MalformedEmail("the message's MIME structure is nested too deeply") from None
    except Exception as exc:  # the parser is meant not to raise; anything here is malformed
        raise MalformedEmail(f"the message could not be parsed ({type(exc).__name__})") from None
    headers = header_map(message.raw_items())
    if not headers:
        raise MalformedEmail("the message has no header fields (not an RFC 5322 message)")
    body = _Body()
    try:
        body.collect(tree)
    except RecursionError:
        raise MalformedEmail("the message's MIME structure is nested too deeply") from None
    structured_subject = _structured(message, headers, "subject")
    parts = Parts(
        provider=provider,
        headers=headers,
        from_values=raw_values(message.raw_items(), "from"),
        # To and Cc as header_map decoded them: policy default's address parser costs about
        # 5 microseconds a character, for lists the router only reads addr-specs from.
        subject=structured_subject,
        text="\n\n".join(body.text),
        html="\n".join(body.html),
        attachments=body.attachments,
        auth=auth,
        envelope_from=envelope_from,
        mailbox_hash=mailbox_hash,
        content_type=_safe(message.get_content_type, "text/plain"),
        report_part=body.report_part,
        capped=bounded.notes,
        embedded_message_ids=body.embedded_ids,
        read_results=read_results,
        size=len(raw),
        fingerprint=raw,
    )
    return assemble(parts, own_addresses)


def _has_raw_8bit(message: Message, name: str) -> bool:
    """Return True when header ``name`` holds undeclared 8-bit bytes (kept as surrogates)."""
    return any(
        str(key).lower() == name and has_surrogates(str(value))
        for key, value in message.raw_items()
    )


def _structured(message: Message, headers: HeaderMap, name: str) -> str | None:
    """Return a header decoded by policy default, or by us where policy default cannot."""
    # Policy default turns undeclared 8-bit bytes into U+FFFD; our decoding sniffs their charset.
    if _has_raw_8bit(message, name):
        return first(headers, name)
    try:
        value = message.get(name)
        return None if value is None else str(value)
    except Exception:  # policy default's header parser can fail on hostile input
        return first(headers, name)


def _safe(function: Any, default: Any) -> Any:
    try:
        return function()
    except Exception:
        return default


class _Body:
    """Walk a message's parts (iteratively, depth-limited) into text, HTML and attachments."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.html: list[str] = []
        self.attachments: list[Attachment] = []
        self.embedded_ids: list[str] = []
        self.report_part = False

    def collect(self, root: Message) -> None:
        stack: list[tuple[Message, int]] = [(root, 0)]
        while stack:
            part, depth = stack.pop()
            content_type = _safe(part.get_content_type, "application/octet-stream")
            if content_type in REPORT_TYPES:
                self.report_part = True
            if content_type in ("message/rfc822", "message/global") and part is not root:
                self._attached_message(part)
                continue
            if part.is_multipart():
                payload = part.get_payload()
                if depth < MAX_MIME_DEPTH and isinstance(payload, list):
                    stack.extend(
                        (child, depth + 1)
                        for child in reversed(payload)
                        if isinstance(child, Message)
                    )
                continue
            self._leaf(part, content_type)

    def _leaf(self, part: Message, content_type: str) -> None:
        disposition = _safe(part.get_content_disposition, None)
        filename = _filename(part)
        data = payload_bytes(part)
        charset = _safe(part.get_content_charset, None)
        if content_type == "text/rfc822-headers":
            self._embedded_ids(decode_bytes(data, charset))
        inline = disposition != "attachment" and not filename
        if inline and content_type == "text/plain":
            self.text.append(decode_bytes(data, charset))
            return
        if inline and content_type == "text/html":
            self.html.append(decode_bytes(data, charset))
            return
        if len(self.attachments) >= MAX_ATTACHMENTS:
            return
        name = clean_line(filename or "", 255) or _default_name(content_type)
        head = ""
        if content_type.startswith("text/") or _TEXTUAL_NAME.search(name):
            head = clean_text(decode_bytes(data[:ATTACHMENT_HEAD_BYTES], charset))
        self.attachments.append(Attachment(name, content_type, len(data), head))

    def _attached_message(self, part: Message) -> None:
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        if isinstance(inner, Message):
            for name, value in inner.raw_items():
                if str(name).lower() == "message-id":
                    self.embedded_ids.extend(message_ids(str(value)))
        if len(self.attachments) < MAX_ATTACHMENTS:
            filename = _filename(part)
            size = len(_safe(part.as_bytes, b""))
            name = clean_line(filename or "", 255) or "attached-message.eml"
            self.attachments.append(Attachment(name, "message/rfc822", size))

    def _embedded_ids(self, text: str) -> None:
        for match in re.finditer(r"^message-id:\s*(.+)$", text, re.I | re.M):
            self.embedded_ids.extend(message_ids(match.group(1)))


def _filename(part: Message) -> str | None:
    """Return a part's file name, RFC 2047 encoded words decoded (compat32 leaves them)."""
    filename = _safe(part.get_filename, None)
    return decode_words(str(filename)) if filename is not None else None


def payload_bytes(part: Message) -> bytes:
    """Return a leaf part's content, its transfer encoding undone where it can be."""
    try:
        data = part.get_payload(decode=True)
    except Exception:  # a broken transfer encoding: keep what the part literally holds
        raw = part.get_payload()
        data = raw.encode("utf-8", "replace") if isinstance(raw, str) else b""
    return data if isinstance(data, bytes) else b""


def _default_name(content_type: str) -> str:
    return "attachment." + (content_type.split("/")[-1] or "bin")[:20]
