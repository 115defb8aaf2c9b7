"""One normalised form for every inbound email, whatever the provider, and its assembly.

Pure code. Each provider adapter (``mailgun``, ``postmark``, ``sendgrid``, ``rawmime``) fills in
``Parts`` -- a raw message through ``mime.parse_mime`` -- and ``assemble`` turns them into the
``InboundEmail`` the service reads: addresses (``addresses``), header fields and Message-IDs
(``headers``), clean text (``text``, ``html_text``), and whether it is automatic mail.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from channels.email.addresses import mailbox_hash, normalise_address, parse_addresses, read_from
from channels.email.authentication import MAX_RESULTS_HEADERS, Verdict, with_signature_domain
from channels.email.automatic import detect_automatic
from channels.email.headers import HeaderMap, first, kept_headers, message_ids, parse_date
from channels.email.html_text import html_to_text
from channels.email.limits import (
    ATTACHMENT_HEAD_BYTES,
    MAX_ATTACHMENTS,
    MAX_HEADERS,
    MAX_HTML_CHARS,
    MAX_REFERENCES,
    MAX_TEXT_CHARS,
)
from channels.email.text import clean_line, clean_text, decode_bytes, decode_words


class MalformedEmail(ValueError):
    """The payload is not an email we can read; the message says why (answered with 400)."""


@dataclass(frozen=True)
class Attachment:
    """An attachment's metadata; ``head`` is its first bytes as text, for classification only."""

    filename: str
    content_type: str
    size: int
    head: str = field(default="", repr=False)

    @property
    def basename(self) -> str:
        """Return the file name without any directory a client left in it."""
        return re.split(r"[\\/]", self.filename)[-1]

    def to_dict(self) -> dict[str, Any]:
        """Return the metadata that is stored (never the content)."""
        return {"name": self.filename, "type": self.content_type, "size": self.size}


@dataclass(frozen=True)
class AuthResults:
    """What the provider reported about SPF/DKIM/DMARC, and the Authentication-Results headers.

    Nothing here is believed yet: ``authentication.check_sender`` decides, with the trusted
    receiving hosts, whether any of it is an aligned pass for the From: address.
    """

    verdicts: tuple[Verdict, ...] = ()  # the provider's own verdict fields
    results_headers: tuple[str, ...] = ()  # Authentication-Results values, topmost first

    def best(self, method: str) -> str:
        """Return the provider's verdict for ``method`` (pass if any passed), or none."""
        found = [v.result for v in self.verdicts if v.method == method]
        return "pass" if "pass" in found else (found[0] if found else "none")

    def to_dict(self) -> dict[str, Any]:
        """Return the provider's verdicts for the record."""
        return {
            "spf": self.best("spf"),
            "dkim": self.best("dkim"),
            "dmarc": self.best("dmarc"),
            "verdicts": [verdict.to_dict() for verdict in self.verdicts],
        }


@dataclass(frozen=True)
class InboundEmail:
    """One inbound message, whatever the provider, normalised."""

    provider: str
    message_id: str  # storage key: <...>, or a digest form when over 255 characters
    message_id_generated: bool  # the message had none; the key is derived from its content
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    # Message-IDs in attached messages and returned headers: they name only mail we sent.
    embedded_message_ids: tuple[str, ...]
    from_address: str | None  # lower-case addr-spec, or None when missing or unreadable
    from_name: str | None
    from_problem: str | None  # why From: can never be a verified sender (two headers, ...)
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    text: str
    html: str
    attachments: tuple[Attachment, ...]
    date: datetime | None
    auth: AuthResults
    automatic: str | None  # why it is automatic mail (recorded, never answered); None: a person
    suppress_reply: bool  # the sender asked for no automatic replies
    envelope_from: str | None
    mailbox_hash: str | None  # the +tag of the address it was sent to (support+contoso@...)
    headers: Mapping[str, str]  # a few headers kept for the record
    size: int
    capped: tuple[str, ...] = ()  # what the limits cut from the message (channels/email/limits.py)
    # Automatic only by its subject ("Delivery failure: ..."): words a person may write too.
    automatic_by_subject: bool = False

    def summary(self) -> dict[str, Any]:
        """Return what the timeline shows about the message."""
        return {
            "provider": self.provider,
            "message_id": self.message_id,
            "from": self.from_address,
            "from_name": self.from_name,
            "from_problem": self.from_problem,
            "to": list(self.to),
            "cc": list(self.cc),
            "subject": self.subject,
            "excerpt": self.text[:2000],
            "attachments": [attachment.to_dict() for attachment in self.attachments],
            "auth": self.auth.to_dict(),
            "automatic": self.automatic,
            "size": self.size,
            "capped": list(self.capped),
        }


def posted_head(content_type: str, filename: str, data: bytes) -> str:
    """Return the first bytes of a provider's text or log attachment as text ('' for others)."""
    if content_type.startswith("text/") or filename.lower().endswith((".log", ".txt")):
        return clean_text(decode_bytes(data[:ATTACHMENT_HEAD_BYTES]))
    return ""


@dataclass
class Parts:
    """What a provider delivered, before normalisation (adapters fill it in)."""

    provider: str
    headers: HeaderMap
    from_values: Sequence[str] = ()  # every From: value as sent (encoded words not decoded)
    from_name: str | None = None  # a display name the provider parsed out (Postmark)
    to_values: Sequence[str] = ()
    cc_values: Sequence[str] = ()
    subject: str | None = None
    text: str = ""
    html: str = ""
    attachments: Sequence[Attachment] = ()
    auth: AuthResults | None = None
    envelope_from: str | None = None  # "" means the null sender <> (bounces)
    mailbox_hash: str | None = None
    provider_message_id: str | None = None  # the provider's own id, when there is no header
    content_type: str | None = None  # None: from the headers' Content-Type
    report_part: bool = False  # a delivery-status (or other report) part was found
    capped: Sequence[str] = ()  # notes of what the limits cut
    embedded_message_ids: Sequence[str] = ()  # from a bounce's returned message
    # Authentication-Results count only where our own MTA removed the sender's copies (raw MIME).
    read_results: bool = False
    size: int = 0
    fingerprint: bytes = b""  # what a missing Message-ID is derived from


def assemble(parts: Parts, own_addresses: frozenset[str]) -> InboundEmail:
    """Turn a provider's parts into the normalised message."""
    headers = parts.headers
    sender = read_from(parts.from_values)
    from_address = sender.address
    from_name = sender.name or (clean_line(parts.from_name, 200) if parts.from_name else None)
    to = tuple(a for _, a in parse_addresses(list(parts.to_values) or headers.get("to", ())))
    cc = tuple(a for _, a in parse_addresses(list(parts.cc_values) or headers.get("cc", ())))
    subject = clean_line(
        decode_words(parts.subject)
        if parts.subject is not None
        else first(headers, "subject") or ""
    )
    text = clean_text(parts.text, MAX_TEXT_CHARS)
    html = clean_text(parts.html, MAX_HTML_CHARS)
    if not text.strip() and html.strip():
        text = html_to_text(html)[:MAX_TEXT_CHARS]

    ids = message_ids(first(headers, "message-id"))
    generated = not ids
    if ids:
        key = ids[0]
    elif parts.provider_message_id and clean_line(parts.provider_message_id, 200):
        token = re.sub(r"[^A-Za-z0-9._-]", "", clean_line(parts.provider_message_id, 200))
        key = f"<{token or 'x'}@{parts.provider}.message-id.invalid>"
    else:
        digest = hashlib.sha256(parts.fingerprint).hexdigest()
        key = f"<sha256.{digest}@missing-message-id.invalid>"
    in_reply_to = message_ids(" ".join(headers.get("in-reply-to", ())))
    references = message_ids(" ".join(headers.get("references", ())))

    envelope_from = parts.envelope_from
    if envelope_from is None:
        return_path = first(headers, "return-path")
        if return_path is not None:
            envelope_from = "" if return_path.strip() in ("<>", "") else return_path.strip("<> ")
    automatic, suppress = detect_automatic(
        headers,
        from_address=from_address,
        subject=subject,
        content_type=parts.content_type,
        envelope_from=envelope_from,
        own_addresses=own_addresses,
        report_part=parts.report_part,
    )
    by_subject = False
    if automatic is not None:
        structural, asked = detect_automatic(
            headers,
            from_address=from_address,
            subject="",
            content_type=parts.content_type,
            envelope_from=envelope_from,
            own_addresses=own_addresses,
            report_part=parts.report_part,
        )
        if structural is None:
            # Only the subject says so: whether the sender asked for no replies is the
            # headers' word (the service may yet treat it as a person's mail).
            by_subject, suppress = True, asked
    return InboundEmail(
        provider=parts.provider,
        message_id=key,
        message_id_generated=generated,
        in_reply_to=in_reply_to,
        references=references,
        embedded_message_ids=tuple(dict.fromkeys(parts.embedded_message_ids))[:MAX_REFERENCES],
        from_address=from_address,
        from_name=from_name or None,
        from_problem=sender.problem,
        to=to,
        cc=cc,
        subject=subject,
        text=text,
        html=html,
        attachments=tuple(parts.attachments)[:MAX_ATTACHMENTS],
        date=parse_date(first(headers, "date")),
        auth=AuthResults(
            verdicts=tuple(
                with_signature_domain(
                    parts.auth.verdicts if parts.auth else (),
                    # Headers the limits (or header_map) cut may have held another signature.
                    ()
                    if parts.capped or sum(map(len, headers.values())) >= MAX_HEADERS
                    else headers.get("dkim-signature", ()),
                )
            ),
            results_headers=headers.get("authentication-results", ())[:MAX_RESULTS_HEADERS]
            if parts.read_results
            else (),
        ),
        automatic=automatic,
        automatic_by_subject=by_subject,
        suppress_reply=suppress,
        envelope_from=normalise_address(envelope_from) if envelope_from else envelope_from,
        mailbox_hash=parts.mailbox_hash or mailbox_hash((*to, *cc)),
        headers=kept_headers(headers),
        size=parts.size,
        capped=tuple(parts.capped),
    )
