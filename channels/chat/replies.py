"""What the portal shows: the chat mode of a contact and the words and links for the customer.

Pure: no Flask, no database; ``now`` is an argument.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import quote_plus
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from router.core.calendar import as_utc
from router.core.domain import ContactStatus
from router.core.entitlement import Access


class Mode(StrEnum):
    """How the portal's chat behaves for a contact (SPEC 4.3)."""

    LIVE = "live"
    BOT = "bot"
    OFFLINE = "offline"
    HELP_CENTER = "help_center"


def chat_mode(
    status: ContactStatus, access: Access | None, next_open_at: datetime | None, now: datetime
) -> Mode:
    """Return the mode of a stored chat contact at ``now``.

    An offline hand-off stays in its queue; once the opening it waited for has come, the
    customer is in a staffed queue like any live chat.
    """
    if status is ContactStatus.DEFLECTED or access in (Access.HELP_CENTER, Access.DENIED, None):
        return Mode.HELP_CENTER
    if access is Access.BOT:
        return Mode.BOT
    if access is Access.OFFLINE:
        if next_open_at is not None and as_utc(next_open_at) <= as_utc(now):
            return Mode.LIVE
        return Mode.OFFLINE
    return Mode.LIVE


def help_center(base_url: str, *, subject: str | None, topic_label: str | None) -> dict[str, Any]:
    """Return the Help Center links for a deflected customer: home, then searches for the issue."""
    base = base_url.rstrip("/")
    links = [{"title": "Help Center", "url": base}]
    if topic_label:
        links.append({"title": f"Articles about {topic_label}", "url": _search(base, topic_label)})
    if subject:
        links.append({"title": f"Search for “{subject}”", "url": _search(base, subject)})
    return {"url": base, "links": links}


def local_time(instant: datetime, timezone: str | None) -> str:
    """Return ``instant`` in the account's wall time: 'Tuesday 22 September 2026, 09:00 IDT'."""
    try:
        zone = ZoneInfo(timezone) if timezone else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = as_utc(instant).astimezone(zone)
    return f"{local:%A} {local.day} {local:%B %Y, %H:%M} {local.tzname()}"


def wait_phrase(seconds: int) -> str:
    """Return an estimated wait in words, e.g. 'under a minute', 'about 7 minutes'."""
    if seconds < 60:
        return "under a minute"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"about {minutes} minute{'s' if minutes != 1 else ''}"
    hours = round(seconds / 3600, 1)
    return f"about {hours:g} hours"


def chat_message(
    mode: Mode,
    *,
    reference: str,
    status: ContactStatus,
    queue_name: str | None,
    ahead: int | None,
    wait_seconds: int | None,
    next_open_local: str | None,
    support_email: str,
    help_center_url: str,
    trial_ended: bool,
    trial_days: int,
) -> str:
    """Return what the chat window tells the customer."""
    if mode is Mode.HELP_CENTER:
        return help_center_message(
            "chat with our engineers",
            help_center_url=help_center_url,
            trial_ended=trial_ended,
            trial_days=trial_days,
        )
    if status is ContactStatus.RESOLVED:
        return f"This chat has ended. Your reference is {reference}."
    if mode is Mode.BOT:
        return (
            "SupportBot is here to help right away. If you need a person, ask for a hand-off: "
            f"engineers take chats during your business hours. Your reference is {reference}."
        )
    if mode is Mode.OFFLINE:
        when = f" They are back {next_open_local}." if next_open_local else ""
        return (
            f"Our engineers are away right now.{when} Your chat is kept as {reference} and "
            "answered when they are back. You can also continue by email: write to "
            f"{support_email} quoting {reference}."
        )
    if status is ContactStatus.ACCEPTED:
        return f"An engineer has joined your chat. Your reference is {reference}."
    where = f" in the {queue_name} queue" if queue_name else ""
    if not ahead:
        line = f"You're next{where}: an engineer will join this chat shortly."
    else:
        people = "contact" if ahead == 1 else "contacts"
        line = f"You're{where} with {ahead} {people} ahead of you."
    if wait_seconds is not None:
        line += f" Estimated wait: {wait_phrase(wait_seconds)}."
    return f"{line} Add any details, screenshots or errors here meanwhile. Reference {reference}."


def help_center_message(
    what: str, *, help_center_url: str, trial_ended: bool, trial_days: int
) -> str:
    """Return the words for a deflected customer; ``what`` is the service they do not have."""
    if trial_ended:
        return (
            f"Your {trial_days}-day trial has ended, so {what} is no longer included. The Help "
            f"Center has answers to most questions: {help_center_url}. To buy a plan with "
            "support, contact our sales team."
        )
    return (
        f"{what[0].upper()}{what[1:]} is not part of your plan. The Help Center has answers to "
        f"most questions: {help_center_url}."
    )


def _search(base: str, query: str) -> str:
    return f"{base}/search?q={quote_plus(query)}"
