"""Mailgun routes (forward): HMAC-SHA256 signature, freshness window, parsed or MIME posts."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from channels.email.addresses import envelope_sender, from_values
from channels.email.authentication import Verdict, domain_of, verdict_word
from channels.email.formdata import FormData
from channels.email.headers import fingerprint, header_map
from channels.email.limits import MAX_MESSAGE_FIELDS
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
from channels.email.posted_caps import cap_pairs, cap_value, capped_value, read_json_list
from channels.email.text import clean_line
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
            Verdict("spf", verdict_word(form.text("X-Mailgun-Spf")), domain_of(sender), PROVIDER),
            Verdict("dkim", verdict_word(form.text("X-Mailgun-Dkim-Check-Result")), None, PROVIDER),
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
            listed, unread = read_json_list(raw_headers)
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
    pairs, capped = cap_pairs(pairs)
    if unread:
        capped.append(f"message-headers: fields after the first {MAX_MESSAGE_FIELDS} unread")
    headers = header_map(pairs)
    if not form.has("from") and "from" not in headers:
        raise MalformedEmail("Mailgun payload has no 'from' field or message-headers")
    attachments = [
        Attachment(
            upload.filename,
            clean_line(upload.content_type, 100),
            len(upload.data),
            posted_head(upload.content_type, upload.filename, upload.data),
        )
        for upload in form.files
    ]
    from_value = capped_value("From", form.text("from") or "", capped)
    recipient = form.text("recipient") or ""
    subject = form.text("subject")
    if subject is not None:
        subject = capped_value("Subject", subject, capped)
    text = form.text("body-plain") or ""
    parts = Parts(
        provider=PROVIDER,
        headers=headers,
        # The message's own From: headers (all of them) are what the sender wrote; the 'from'
        # field is Mailgun's copy of one, used only when message-headers is missing.
        from_values=from_values(pairs, from_value),
        to_values=() if "to" in headers else [cap_value("To", recipient)[0]],
        subject=subject,
        text=text,
        html=form.text("body-html") or "",
        attachments=attachments,
        auth=auth,
        envelope_from=envelope_sender(sender),  # "" (a report's <>) is kept
        capped=capped,
        size=form.size,
        fingerprint=fingerprint(from_value, form.text("recipient"), subject, text),
    )
    return assemble(parts, own_addresses)
