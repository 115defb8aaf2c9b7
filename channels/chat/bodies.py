"""The JSON bodies the portal is answered with: a chat session, a form's contact, a message."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from channels.chat import contacts, replies, triage
from channels.chat.replies import Mode
from config.policy import Policy
from config.settings import Settings
from router.core.domain import ContactStatus, Tier, Topic
from router.core.validation import instant_text
from router.services import waiting
from router.store.models import Account, Contact, ContactEvent, Queue

_QUEUE_NAME = select(Queue.name).where(Queue.key == bindparam("key"))


@dataclass(frozen=True)
class ChatAnswer:
    """A response body and whether this request created something (201) or replayed (200)."""

    body: dict[str, Any]
    created: bool


def session_body(
    session: Session, contact: Contact, now: datetime, settings: Settings, policy: Policy
) -> dict[str, Any]:
    """Render a chat contact as SPEC 4.3's session response."""
    status = ContactStatus(contact.status)
    mode = contacts.mode(contact, now)
    # The account is only needed for an offline session's local time and a deflection's
    # reason; a live or bot session (most of them) is answered without reading it.
    needs_account = mode is Mode.OFFLINE or contact.tier == Tier.FREE.value
    account = (
        session.get(Account, contact.account_id) if contact.account_id and needs_account else None
    )
    ahead: int | None = None
    wait: int | None = None
    if mode in (Mode.LIVE, Mode.OFFLINE) and status is ContactStatus.WAITING:
        standing = waiting.standing(
            session,
            contact,
            now=now,
            window=timedelta(minutes=settings.queue_wait_window_minutes),
            limit=settings.queue_wait_sample,
        )
        if standing is not None:
            ahead = standing.ahead
            # Offline: nobody is serving the queue until it opens, so no estimate is honest.
            wait = standing.estimated_wait_seconds if mode is Mode.LIVE else None
    elif status is ContactStatus.ACCEPTED:
        ahead, wait = 0, 0
    next_open = contacts.next_open(contact)
    help_links = help_center(contact, settings, policy) if mode is Mode.HELP_CENTER else None
    queue_name = None
    if contact.queue_key and mode is not Mode.HELP_CENTER:
        found = session.connection().scalar(_QUEUE_NAME, {"key": contact.queue_key})
        queue_name = found if found else contact.queue_key
    body: dict[str, Any] = {
        "contact_id": contact.id,
        "mode": mode.value,
        "queue": contact.queue_key if mode is not Mode.HELP_CENTER else None,
        "priority": contact.priority,
        "sla": _sla(contact),
        "position": ahead,
        "estimated_wait_seconds": wait,
        "message": replies.chat_message(
            mode,
            reference=contact.reference,
            status=status,
            queue_name=queue_name,
            ahead=ahead,
            wait_seconds=wait,
            next_open_local=(
                replies.local_time(next_open, account.timezone if account else None)
                if next_open and mode is Mode.OFFLINE
                else None
            ),
            support_email=settings.mail_from,
            help_center_url=help_links["url"] if help_links else settings.help_center_url,
            trial_ended=_trial_ended(contact, account),
            trial_days=policy.trial_days,
        ),
    }
    if mode is Mode.OFFLINE:
        body["next_open_at"] = instant_text(next_open)
        body["continue_by_email"] = {"address": settings.mail_from, "reference": contact.reference}
    if help_links is not None:
        body["help_center"] = help_links
    return body


def request_body(
    session: Session, contact: Contact, settings: Settings, policy: Policy
) -> dict[str, Any]:
    """Render a portal contact as the Contact Support form's response."""
    body: dict[str, Any] = {
        "contact_id": contact.id,
        "reference": contact.reference,
        "queue": contact.queue_key,
        "sla": _sla(contact),
        "missing": triage.missing_items(contact.checklist),
    }
    if ContactStatus(contact.status) is ContactStatus.DEFLECTED:
        account = session.get(Account, contact.account_id) if contact.account_id else None
        links = help_center(contact, settings, policy)
        body.update(
            queue=None,
            sla=None,
            missing=[],
            mode=Mode.HELP_CENTER.value,
            help_center=links,
            message=replies.help_center_message(
                "support from our engineers",
                help_center_url=links["url"],
                trial_ended=_trial_ended(contact, account),
                trial_days=policy.trial_days,
            ),
        )
    return body


def message_body(event: ContactEvent) -> dict[str, Any]:
    """Render a stored chat message as the portal's answer to posting it."""
    return {
        "contact_id": event.contact_id,
        "message_id": event.id,
        "at": instant_text(event.at),
        "chars": event.data.get("chars"),
    }


def help_center(contact: Contact, settings: Settings, policy: Policy) -> dict[str, Any]:
    """Return the Help Center links for a deflected contact's subject and topic."""
    topic = policy.topics.get(Topic(contact.topic)) if contact.topic else None
    return replies.help_center(
        settings.help_center_url,
        subject=contact.subject,
        topic_label=topic.label if topic else None,
    )


def _sla(contact: Contact) -> dict[str, Any] | None:
    if contact.due_at is None or contact.sla_policy is None:
        return None
    return {"policy": contact.sla_policy, "due_at": instant_text(contact.due_at)}


def _trial_ended(contact: Contact, account: Account | None) -> bool:
    """Return whether the contact was deflected because a trial ran out (not a free account)."""
    if contact.tier != Tier.FREE.value or account is None:
        return False
    contract = account.partner if contact.via_partner_id and account.partner else account
    return contract.tier == Tier.TRIAL.value
