"""Threading: which contact a message replies to, whether its sender may add to it, and storing it.

A reply joins its contact by naming one of the contact's messages (In-Reply-To, References, or
a message quoted inside a bounce) or by the reference in its subject ("[#C-1042]"). Who may add
to a contact is decided by ``router.intake.identity.reply_author``; a verified staff member's
reply is the contact's first response.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from channels.email.authentication import SenderCheck
from channels.email.classify import Classification, contact_reference
from channels.email.normalise import InboundEmail
from channels.email.stored import stored_message
from router.core.domain import ContactStatus
from router.intake import ReplyAuthor, reply_author
from router.services.contact_changes import mark_answered
from router.store.models import Contact, ContactEvent
from router.store.models.email import EmailMessage

# Contacts a reply may be threaded onto; a rejected, deflected or recorded contact is not a
# conversation, so mail "replying" to one goes through intake again.
THREADABLE = frozenset({ContactStatus.WAITING, ContactStatus.ACCEPTED, ContactStatus.RESOLVED})
# Contact ids are 32-bit integers: a larger "[#C-...]" in a subject names no contact.
_MAX_CONTACT_ID = 2**31 - 1
# Message-IDs looked up per message: enough for any real thread, bounded for forged headers.
_MAX_NAMED = 200


@dataclass(frozen=True)
class Thread:
    """The contact a message joins (None: it goes through intake), and how it was found."""

    contact_id: int | None
    by: str | None  # headers or subject
    candidate: str | None = None  # a reference the message named but may not join, and why
    why_not: str | None = None
    staff: bool = False  # a verified staff member's reply: the contact's first response


def find_thread(
    session: Session, email: InboundEmail, sender: SenderCheck, staff_domains: frozenset[str]
) -> Thread:
    """Find the contact a reply belongs to, and whether this sender may add to it."""
    contact, by = _named_contact(session, email)
    if contact is None:
        return Thread(None, None)
    if ContactStatus(contact.status) not in THREADABLE:
        return Thread(None, None, contact.reference, f"the contact is {contact.status}")
    if email.automatic:
        if by == "headers":
            return Thread(contact.id, by)  # a bounce or auto-reply to a message we sent
        why = "automatic mail joins a contact only by naming a message we sent"
        return Thread(None, None, contact.reference, why)
    author = reply_author(
        session,
        contact,
        email.from_address,
        sender_trusted=sender.verified,
        staff_domains=staff_domains,
    )
    if author is ReplyAuthor.STAFF:
        return Thread(contact.id, by, staff=True)
    if author is ReplyAuthor.OUTSIDER:
        why = (
            "the sender may not add to it"
            if sender.verified
            else f"the sender is not verified ({sender.why})"
        )
        return Thread(None, None, contact.reference, why)
    return Thread(contact.id, by)


def _named_contact(session: Session, email: InboundEmail) -> tuple[Contact | None, str | None]:
    """Return the contact the message's headers (first) or subject name, and which named it."""
    named = [*email.in_reply_to, *reversed(email.references)]
    # Anyone can mark mail automatic (Auto-Submitted, an "Undeliverable:" subject) and quote
    # any Message-ID in an attached part, so those name a contact only through a message we
    # sent (a bounce or an auto-reply to our acknowledgement), never one we received.
    any_message = set() if email.automatic else set(named)
    candidates = [*named, *email.embedded_message_ids]
    if candidates:
        rows = session.execute(
            select(EmailMessage.message_id, EmailMessage.contact_id, EmailMessage.direction).where(
                EmailMessage.message_id.in_(candidates[:_MAX_NAMED]),
                EmailMessage.contact_id.is_not(None),
            )
        ).all()
        known = {
            message_id: contact_id
            for message_id, contact_id, direction in rows
            if direction == "out" or message_id in any_message
        }
        for message_id in candidates:
            if message_id in known:
                found = session.get(Contact, known[message_id])
                if found is not None:
                    return found, "headers"
                break
    reference = contact_reference(email.subject)
    if reference is not None and reference <= _MAX_CONTACT_ID:
        return session.get(Contact, reference), "subject"
    return None, None


def store_reply(
    session: Session,
    email: InboundEmail,
    sender: SenderCheck,
    thread: Thread,
    classification: Classification,
    now: datetime,
) -> Contact:
    """Add a reply to its contact's timeline; the contact's clock is left alone."""
    contact = session.get(Contact, thread.contact_id)
    assert contact is not None
    kind = "automatic" if email.automatic else "reply"
    session.add(stored_message(email, sender, kind, contact.id, classification))
    added = [] if email.automatic else _tick_checklist(contact, classification)
    session.add(
        ContactEvent(
            contact_id=contact.id,
            at=now,
            kind="email_automatic" if email.automatic else "email_reply",
            actor=email.from_address or "unknown sender",
            data={
                **email.summary(),
                "sender": sender.to_dict(),
                "threaded_by": thread.by,
                "checklist_added": added,
                "severity_marker": classification.severity_marker,
            },
        )
    )
    if thread.staff:
        # Staff answered the customer by email: that is the first response (SPEC 2.3).
        mark_answered(session, contact, now, actor=email.from_address or "", now=now, accept=False)
    return contact


def _tick_checklist(contact: Contact, classification: Classification) -> list[str]:
    """Mark the checklist items this reply supplies that the contact still missed; return them."""
    if not contact.checklist:
        return []
    merged = dict(contact.checklist)
    added: list[str] = []
    for key, present in classification.checklist.items:
        if present and merged.get(key) is False:
            merged[key] = True
            added.append(key)
    if added:
        contact.checklist = merged
    return added
