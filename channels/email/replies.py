"""The words of the email channel's automatic replies: acknowledgement, rejection, deflection.

Pure code: everything arrives as arguments (times in UTC, the account's time zone by name).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from router.core.domain import Severity

REJECTION_SUBJECT = "Your message to support"
_REPLY_PREFIX = re.compile(r"^\s*((re|aw|sv|antw|fwd?)\s*:\s*)+", re.IGNORECASE)


@dataclass(frozen=True)
class ReplyText:
    """A reply's subject and plain-text body."""

    subject: str
    body: str


def reply_subject(subject: str, reference: str | None = None) -> str:
    """Return 'Re: <subject>', tagged '[#C-1042]' once when a reference is given."""
    base = _REPLY_PREFIX.sub("", subject).strip() or "(no subject)"
    if reference:
        tag = f"[#{reference}]"
        if tag.lower() not in base.lower():
            base = f"{tag} {base}"
    return f"Re: {base}"


def local_time(at: datetime, timezone: str) -> str:
    """Return ``at`` as local time in ``timezone``, with the zone's abbreviation and offset."""
    # e.g. "Friday 27 November 2026, 11:00 EST (America/New_York, UTC-05:00)"
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone, timezone = ZoneInfo("UTC"), "UTC"
    local = at.astimezone(zone)
    offset = local.strftime("%z")
    offset = f"UTC{offset[:3]}:{offset[3:]}" if offset else "UTC"
    return (
        f"{local:%A} {local.day} {local:%B %Y}, {local:%H:%M} {local.tzname()} "
        f"({timezone}, {offset})"
    )


def greeting(name: str | None) -> str:
    """Return the salutation line."""
    return f"Hello {name}," if name else "Hello,"


def acknowledgement(
    *,
    reference: str,
    subject: str,
    recipient_name: str | None,
    severity: Severity,
    severity_stated: bool,
    severity_definition: str,
    due_at: datetime | None,
    timezone: str,
    no_commitment_reason: str,
    missing: Sequence[str],
    signature: str,
) -> ReplyText:
    """Return the acknowledgement of a routed contact."""
    lines = [
        greeting(recipient_name),
        "",
        f"Thank you for contacting support. We have opened request {reference} for your "
        f'message "{subject or "(no subject)"}".',
        "",
    ]
    if severity_stated:
        lines.append(f"Severity: {severity.value} ({severity_definition}).")
    else:
        lines.append(
            f"Severity: {severity.value} ({severity_definition}). You did not state a severity, "
            "so an engineer will confirm it; reply with e.g. [Sev1] or [Sev2] if the impact is "
            "higher."
        )
    lines.append("")
    if due_at is not None:
        lines.append(f"First response: by {local_time(due_at, timezone)}.")
    else:
        lines.append(f"First response: {no_commitment_reason}")
    lines.append("")
    if missing:
        lines.append("To help us resolve this faster, please reply with:")
        lines.extend(f"  - {label}" for label in missing)
    else:
        lines.append("Thank you for including everything our support guide asks for.")
    lines += [
        "",
        f"Please keep [#{reference}] in the subject when you write to us about this request.",
        "",
        signature,
    ]
    return ReplyText(subject=reply_subject(subject, reference), body="\n".join(lines) + "\n")


def rejection(*, period_hours: int, signature: str) -> ReplyText:
    """Return the one explanatory reply to a verified sender who may not open requests.

    Fixed words only: nothing the sender wrote (subject, display name) is echoed, so a
    rejection can never carry someone else's text to whoever the From: names.
    """
    body = "\n".join(
        [
            "Hello,",
            "",
            "We received your message, but we could not open a support request from it.",
            "",
            "Support requests can only be opened by the active administrators of a customer "
            "organisation's account (or of a partner that manages it), and the address you "
            "wrote from is not one of them. If you are an administrator, please write from the "
            "address registered for you; otherwise please ask one of your organisation's "
            "administrators to contact us, or to add you as an administrator.",
            "",
            "Your message has been kept, but nothing further will happen with it. We send this "
            f"explanation at most once every {period_hours} hours.",
            "",
            signature,
        ]
    )
    return ReplyText(subject=REJECTION_SUBJECT, body=body + "\n")


def deflection(
    *,
    reference: str,
    subject: str,
    recipient_name: str | None,
    help_center_url: str,
    signature: str,
) -> ReplyText:
    """Return the reply pointing a sender without email support to the Help Center."""
    body = "\n".join(
        [
            greeting(recipient_name),
            "",
            f'Thank you for your message "{subject or "(no subject)"}" (reference {reference}).',
            "",
            "Your organisation's current plan does not include support by email. You will find "
            f"answers, guides and troubleshooting steps in our Help Center: {help_center_url}",
            "",
            "To get help from our engineers, please ask your account administrator about a paid "
            "support plan.",
            "",
            signature,
        ]
    )
    return ReplyText(subject=reply_subject(subject, reference), body=body + "\n")
