"""SendGrid Inbound Parse: parsed and raw modes, and the optional signed-webhook check."""

from __future__ import annotations

import json
from datetime import datetime
from email import policy
from email.parser import BytesHeaderParser
from typing import Any

from channels.email import ecdsa
from channels.email.addresses import envelope_sender, from_values
from channels.email.authentication import Verdict, domain_of, sendgrid_dkim, verdict_word
from channels.email.formdata import FormData
from channels.email.headers import fingerprint, header_map
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
from channels.email.posted_caps import cap_header_block, capped_value
from channels.email.text import clean_line
from channels.email.webhook_auth import WebhookAuthError

PROVIDER = "sendgrid"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


def verify_signature(
    key: ecdsa.PublicKey,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    *,
    now: datetime,
    max_age_seconds: int,
) -> None:
    """Raise WebhookAuthError unless the ECDSA signature of timestamp + body is valid and fresh."""
    if not signature or not timestamp:
        raise WebhookAuthError(f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER}")
    if not ecdsa.verify_b64(key, timestamp.encode("utf-8") + body, signature):
        raise WebhookAuthError("SendGrid signature does not match")
    try:
        signed_at = int(timestamp.strip())
    except ValueError:
        raise WebhookAuthError("SendGrid signature timestamp is not a number") from None
    if abs(now.timestamp() - signed_at) > max_age_seconds:
        raise WebhookAuthError("SendGrid signature timestamp is outside the freshness window")


def parse(form: FormData, own_addresses: frozenset[str]) -> InboundEmail:
    """Normalise an Inbound Parse post (raw mode has an 'email' field; parsed mode does not)."""
    charsets = _json_object(form, "charsets")
    envelope = _json_object(form, "envelope")
    envelope_from = envelope.get("from") if isinstance(envelope.get("from"), str) else None
    # SendGrid's SPF verdict is about the envelope sender; its dkim field names each domain.
    auth = AuthResults(
        verdicts=(
            Verdict("spf", verdict_word(form.text("SPF")), domain_of(envelope_from), PROVIDER),
            *sendgrid_dkim(form.text("dkim")),
        )
    )
    if form.has("email"):
        return parse_mime(
            form.fields["email"],
            provider=PROVIDER,
            own_addresses=own_addresses,
            auth=auth,
            envelope_from=envelope_from,
        )
    if not form.has("from") and not form.has("headers"):
        raise MalformedEmail(
            "SendGrid payload has neither 'email' (raw mode) nor 'from'/'headers' (parsed mode)"
        )

    def field(name: str) -> str:
        charset = charsets.get(name)
        return form.text(name, charset if isinstance(charset, str) else None) or ""

    # The headers field feeds the same header decoding as a raw message: the same caps first.
    block, capped = cap_header_block(form.fields.get("headers", b""))
    try:
        header_block = BytesHeaderParser(policy=policy.default).parsebytes(block)
        raw_headers = list(header_block.raw_items())
    except Exception:  # defensive: the header parser is lenient
        raw_headers = []
    headers = header_map(raw_headers)
    info = _json_object(form, "attachment-info")
    attachments = []
    for upload in form.files:
        details = info.get(upload.field)
        details = details if isinstance(details, dict) else {}
        name = details.get("filename") or details.get("name") or upload.filename
        content_type = details.get("type") or upload.content_type
        attachments.append(
            Attachment(
                clean_line(str(name), 255),
                clean_line(str(content_type), 100),
                len(upload.data),
                posted_head(str(content_type), str(name), upload.data),
            )
        )
    text = field("text")
    subject, sender, to, cc = (
        capped_value(name, field(name.lower()), capped) for name in ("Subject", "From", "To", "Cc")
    )
    parts = Parts(
        provider=PROVIDER,
        headers=headers,
        # The headers block holds every From: the sender wrote; 'from' is SendGrid's copy.
        from_values=from_values(raw_headers, sender),
        to_values=[to] if form.has("to") else (),
        cc_values=[cc] if form.has("cc") else (),
        subject=subject if form.has("subject") else None,
        text=text,
        html=field("html"),
        attachments=attachments,
        auth=auth,
        envelope_from=envelope_sender(envelope_from),  # "" (a report's <>) is kept
        capped=capped,
        size=form.size,
        fingerprint=fingerprint(sender, field("to"), subject, text, headers.get("date", [""])[0]),
    )
    return assemble(parts, own_addresses)


def _json_object(form: FormData, name: str) -> dict[str, Any]:
    raw = form.text(name)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise MalformedEmail(f"SendGrid field {name!r} is not valid JSON") from None
    if not isinstance(value, dict):
        raise MalformedEmail(f"SendGrid field {name!r} must be a JSON object")
    return value
