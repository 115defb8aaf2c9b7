"""Mailgun routes (forward): HMAC-SHA256 signature, freshness window, parsed or MIME posts."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from channels.email import limits
from channels.email.authentication import Verdict, domain_of
from channels.email.formdata import FormData
from channels.email.normalise import (
    ATTACHMENT_HEAD_BYTES,
    Attachment,
    AuthResults,
    InboundEmail,
    MalformedEmail,
    Parts,
    assemble,
    clean_line,
    clean_text,
    decode_bytes,
    envelope_sender,
    fingerprint,
    header_map,
    parse_mime,
    raw_values,
    verdict,
)
from channels.email.webhook_auth import WebhookAuthError

PROVIDER = "mailgun"
# Headers Mailgun also posts as top-level fields; used when message-headers lacks them.
_HEADER_FIELDS = (
    "Message-Id",
    "In-Reply-To",
    "References",
    "Date",
    "To",
    "Cc",
    "Auto-Submitted",
    "Content-Type",  # multipart/report: a delivery report
    "Return-Path",
    "Precedence",
    "X-Failed-Recipients",
    "X-Autoreply",
    "X-Auto-Response-Suppress",
)


def signature_fields(form: FormData) -> tuple[str, str, str]:
    """Return (timestamp, token, signature); raise WebhookAuthError when one is missing."""
    timestamp, token, signature = (form.text(name) for name in ("timestamp", "token", "signature"))
    if not timestamp or not token or not signature:
        raise WebhookAuthError("missing Mailgun signature fields (timestamp, token, signature)")
    return timestamp.strip(), token.strip(), signature.strip()


def verify(
    signing_key: str,
    timestamp: str,
    token: str,
    signature: str,
    *,
    now: datetime,
    max_age_seconds: int,
) -> None:
    """Raise WebhookAuthError unless HMAC-SHA256(key, timestamp + token) matches and is fresh."""
    expected = hmac.new(
        signing_key.encode("utf-8"), (timestamp + token).encode("utf-8"), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()):
        raise WebhookAuthError("Mailgun signature does not match")
    try:
        signed_at = int(timestamp)
    except ValueError:
        raise WebhookAuthError("Mailgun timestamp is not a number") from None
    age = now.timestamp() - signed_at
    if age > max_age_seconds:
        raise WebhookAuthError(
            f"Mailgun timestamp is stale ({int(age)} s old; the window is {max_age_seconds} s)"
        )
    if age < -max_age_seconds:
        raise WebhookAuthError("Mailgun timestamp is in the future")


def parse(form: FormData, own_addresses: frozenset[str]) -> InboundEmail:
    """Normalise a Mailgun route post ('body-mime' when the route asks for raw MIME)."""
    sender = form.text("sender")
    # Mailgun's SPF verdict is about the envelope sender; its DKIM verdict names no domain, so it
    # counts only for the domain every DKIM-Signature of the message names (normalise.assemble).
    auth = AuthResults(
        verdicts=(
            Verdict("spf", verdict(form.text("X-Mailgun-Spf")), domain_of(sender), PROVIDER),
            Verdict("dkim", verdict(form.text("X-Mailgun-Dkim-Check-Result")), None, PROVIDER),
        )
    )
    if form.has("body-mime"):
        return parse_mime(
            form.fields["body-mime"],
            provider=PROVIDER,
            own_addresses=own_addresses,
            auth=auth,
            envelope_from=sender,
        )
    pairs: list[tuple[str, str]] = []
    unread = False
    raw_headers = form.text("message-headers")
    if raw_headers:
        try:
            # Only as many pairs as the limits read are decoded (millions fit in 25 MiB).
            listed, unread = limits.read_json_list(raw_headers)
        except TypeError:
            raise MalformedEmail("Mailgun field 'message-headers' must be a JSON list") from None
        except (ValueError, RecursionError):
            raise MalformedEmail("Mailgun field 'message-headers' is not valid JSON") from None
        for item in listed:
            if isinstance(item, list) and len(item) == 2 and all(isinstance(v, str) for v in item):
                pairs.append((item[0], item[1]))
    present = {name.lower() for name, _ in pairs}
    for name in _HEADER_FIELDS:
        value = form.text(name)
        if value is not None and name.lower() not in present:
            pairs.append((name, value))
    # The same caps as a raw message's headers, before anything decodes them.
    pairs, capped = limits.cap_pairs(pairs)
    if unread:
        capped.append(f"message-headers: fields after the first {limits.MAX_MESSAGE_FIELDS} unread")
    headers = header_map(pairs)
    if not form.has("from") and "from" not in headers:
        raise MalformedEmail("Mailgun payload has no 'from' field or message-headers")
    attachments = []
    for upload in form.files:
        head = ""
        if upload.content_type.startswith("text/") or upload.filename.lower().endswith(
            (".log", ".txt")
        ):
            head = clean_text(decode_bytes(upload.data[:ATTACHMENT_HEAD_BYTES]))
        attachments.append(
            Attachment(
                upload.filename, clean_line(upload.content_type, 100), len(upload.data), head
            )
        )
    from_value, note = limits.cap_value("From", form.text("from") or "")
    capped.extend([note] if note else [])
    # The message's own From: headers (all of them) are what the sender wrote; the 'from' field
    # is Mailgun's copy of one, used only when message-headers is missing.
    from_values = raw_values(pairs, "from") or ([from_value] if from_value else [])
    recipient = form.text("recipient") or ""
    subject = form.text("subject")
    if subject is not None:
        subject, note = limits.cap_value("Subject", subject)
        capped.extend([note] if note else [])
    text = form.text("body-plain") or ""
    parts = Parts(
        provider=PROVIDER,
        headers=headers,
        from_values=from_values,
        to_values=() if "to" in headers else [limits.cap_value("To", recipient)[0]],
        subject=subject,
        text=text,
        html=form.text("body-html") or "",
        attachments=attachments,
        auth=auth,
        envelope_from=envelope_sender(sender),  # "" (a report's <>) is kept
        capped=capped,
        size=sum(len(value) for value in form.fields.values())
        + sum(len(upload.data) for upload in form.files),
        fingerprint=fingerprint(from_value, form.text("recipient"), subject, text),
    )
    return assemble(parts, own_addresses)
