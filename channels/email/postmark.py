"""Postmark inbound webhook: a JSON document (HTTP Basic credentials in the URL)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from channels.email.addresses import from_values
from channels.email.authentication import received_spf
from channels.email.headers import fingerprint, header_map, raw_values
from channels.email.limits import ATTACHMENT_HEAD_BYTES, MAX_MESSAGE_FIELDS
from channels.email.mime import parse_mime
from channels.email.normalise import (
    Attachment,
    AuthResults,
    InboundEmail,
    MalformedEmail,
    Parts,
    assemble,
    posted_head,
)
from channels.email.posted_caps import cap_pairs, capped_value
from channels.email.text import clean_line

PROVIDER = "postmark"


def load(body: bytes) -> dict[str, Any]:
    """Return the JSON object in ``body``; raise MalformedEmail when it is not one."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise MalformedEmail("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise MalformedEmail("the body must be a JSON object (Postmark's inbound format)")
    return data


def parse(data: dict[str, Any], own_addresses: frozenset[str]) -> InboundEmail:
    """Normalise a Postmark inbound document (its RawEmail, when included, is preferred)."""
    mailbox_hash = _string(data, "MailboxHash") or None
    listed = data.get("Headers") or []
    if not isinstance(listed, list):
        raise MalformedEmail("Postmark field 'Headers' must be a list")
    pairs = [
        (item["Name"], item["Value"])
        # No more than the limits read (a list of millions fits in 25 MiB).
        for item in listed[:MAX_MESSAGE_FIELDS]
        if isinstance(item, dict)
        and isinstance(item.get("Name"), str)
        and isinstance(item.get("Value"), str)
    ]
    # The same caps as a raw message's headers, before anything decodes them.
    pairs, capped = cap_pairs(pairs)
    if len(listed) > MAX_MESSAGE_FIELDS:
        capped.append(f"Headers: fields after the first {MAX_MESSAGE_FIELDS} unread")
    # Postmark's own SPF check is the topmost Received-SPF (its receiving server adds it above
    # the message's headers); any lower one came with the message.
    spf = received_spf(next(iter(raw_values(pairs, "received-spf")), None), PROVIDER)
    auth = AuthResults(verdicts=(spf,) if spf else ())
    raw = _string(data, "RawEmail")
    if raw:
        return parse_mime(
            raw.encode("utf-8", "surrogateescape"),
            provider=PROVIDER,
            own_addresses=own_addresses,
            auth=auth,
            mailbox_hash=mailbox_hash,
        )
    headers = header_map(pairs)
    from_full = data.get("FromFull")
    from_value = _string(data, "From")
    if isinstance(from_full, dict) and isinstance(from_full.get("Email"), str):
        # Postmark parsed the address already: it is the addr-spec, never a display name.
        from_value = f"<{from_full['Email']}>"
    if from_value:
        from_value = capped_value("From", from_value, capped)
    if not from_value and "from" not in headers:
        raise MalformedEmail("Postmark payload has no 'From'")
    display = from_full.get("Name") if isinstance(from_full, dict) else None
    subject = _string(data, "Subject")
    if subject is not None:
        subject = capped_value("Subject", subject, capped)
    text = _string(data, "TextBody") or ""
    parts = Parts(
        provider=PROVIDER,
        headers=headers,
        from_values=from_values(pairs, from_value),
        from_name=display if isinstance(display, str) else None,
        to_values=[capped_value("To", _string(data, "To") or "", capped)] if "To" in data else (),
        cc_values=[capped_value("Cc", _string(data, "Cc") or "", capped)] if "Cc" in data else (),
        subject=subject,
        text=text,
        html=_string(data, "HtmlBody") or "",
        attachments=_attachments(data.get("Attachments")),
        auth=auth,
        mailbox_hash=mailbox_hash,
        provider_message_id=_string(data, "MessageID"),
        capped=capped,
        size=0,
        fingerprint=fingerprint(from_value, _string(data, "To"), subject, text),
    )
    return assemble(parts, own_addresses)


def _string(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedEmail(f"Postmark field {name!r} must be a string")
    return value


def _attachments(listed: Any) -> list[Attachment]:
    if listed is None:
        return []
    if not isinstance(listed, list):
        raise MalformedEmail("Postmark field 'Attachments' must be a list")
    found = []
    for item in listed:
        if not isinstance(item, dict):
            raise MalformedEmail("each Postmark attachment must be a JSON object")
        name = _text(item.get("Name"), "attachment")
        content_type = _text(item.get("ContentType"), "application/octet-stream")
        content = _text(item.get("Content"), "")
        # Base64 of the first ATTACHMENT_HEAD_BYTES: 4 characters per 3 bytes.
        try:
            head_bytes = base64.b64decode(content[: (ATTACHMENT_HEAD_BYTES // 3 + 1) * 4])
        except (binascii.Error, ValueError):
            head_bytes = b""
        length = item.get("ContentLength")
        size = length if isinstance(length, int) and length >= 0 else len(content) * 3 // 4
        head = posted_head(content_type, name, head_bytes)
        found.append(Attachment(clean_line(name, 255), clean_line(content_type, 100), size, head))
    return found


def _text(value: Any, default: str) -> str:
    return value if isinstance(value, str) else default
