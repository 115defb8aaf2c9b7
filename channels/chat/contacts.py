"""The admin's chat contacts: finding one, following its hand-off link, and its state.

A SupportBot session handed to a human is closed with a "handed_off" event that links to the
contact now carrying the conversation; reads and messages follow that link.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from channels.chat import replies
from channels.chat.portal import PortalUser
from channels.chat.replies import Mode
from router.core.domain import Channel, ContactStatus
from router.intake import StoredDecision
from router.services.errors import Conflict, NotFound
from router.store.models import Contact, ContactEvent

CLOSED = {ContactStatus.RESOLVED, ContactStatus.REJECTED, ContactStatus.RECORDED}


def owned(session: Session, user: PortalUser, contact_id: int, *, lock: bool = False) -> Contact:
    """Return the admin's own chat contact; raise NotFound for anyone else's."""
    contact = session.get(Contact, contact_id, with_for_update=lock or None)
    if (
        contact is None
        or contact.channel != Channel.CHAT.value
        or contact.account_id != user.account_id
        or contact.admin_id != user.admin_id
    ):
        raise NotFound("no such chat session for this administrator")
    return contact


def stored(session: Session, contact_id: int) -> Contact:
    """Return a contact intake has just stored or found."""
    contact = session.get(Contact, contact_id)
    assert contact is not None
    return contact


def current(session: Session, contact: Contact, *, lock: bool = False) -> Contact:
    """Follow a bot session's hand-off link to the contact now carrying the conversation."""
    if contact.status != ContactStatus.RESOLVED.value:
        return contact
    target_id = handoff_target(session, contact.id)
    if target_id is None:
        return contact
    target = session.get(Contact, target_id, with_for_update=lock or None)
    return target if target is not None else contact


def handoff_target(session: Session, contact_id: int) -> int | None:
    """Return the id of the contact a bot session was handed off to, if it was."""
    data = session.scalar(
        select(ContactEvent.data)
        .where(ContactEvent.contact_id == contact_id, ContactEvent.kind == "handed_off")
        .order_by(ContactEvent.id.desc())
        .limit(1)
    )
    return int(data["contact_id"]) if data else None


def check_open(contact: Contact, *, deflected: str) -> None:
    """Refuse (409) a chat pointed to the Help Center or ended; ``deflected`` says what not."""
    status = ContactStatus(contact.status)
    if status is ContactStatus.DEFLECTED:
        raise Conflict(
            f"this chat was pointed to the Help Center; {deflected}", reason="help_center"
        )
    if status in CLOSED:
        raise Conflict("this chat has ended; open a new one", reason="closed")


def mode(contact: Contact, now: datetime) -> Mode:
    """Return how the chat behaves now: SupportBot, live, offline or the Help Center."""
    decision = StoredDecision.of(contact.decision)
    return replies.chat_mode(
        ContactStatus(contact.status), decision.access, decision.next_open_at, now
    )


def next_open(contact: Contact) -> datetime | None:
    """Return when an offline chat's queue next opens, as intake decided."""
    return StoredDecision.of(contact.decision).next_open_at
