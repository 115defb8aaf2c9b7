"""Inbound messages as stored (one ``EmailMessage`` row each), and the answer to one seen before."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from channels.email.authentication import SenderCheck
from channels.email.classify import Classification
from channels.email.normalise import InboundEmail
from channels.email.receipt import Receipt
from router.store.models import Contact
from router.store.models.email import EmailMessage

# Run for every inbound message, so built once.
MESSAGE_BY_ID = select(EmailMessage).where(EmailMessage.message_id == bindparam("message_id"))


def find_stored(session: Session, message_id: str) -> EmailMessage | None:
    """Return the stored message with this Message-ID (ours or received), if any."""
    return session.scalar(MESSAGE_BY_ID, {"message_id": message_id})


def duplicate(session: Session, existing: EmailMessage) -> Receipt:
    """Answer a message stored before (a provider retry), or one of our own coming back."""
    contact = session.get(Contact, existing.contact_id) if existing.contact_id else None
    outcome = "own_message" if existing.direction == "out" else "duplicate"
    if contact is None:
        return Receipt(outcome=outcome, contact_id=None, reference=None, status=None)
    return Receipt.for_contact(outcome, contact)


def stored_message(
    email: InboundEmail,
    sender: SenderCheck,
    kind: str,
    contact_id: int,
    classification: Classification,
) -> EmailMessage:
    """Return the row keeping ``email`` whole on its contact (kind: inbound, reply, automatic)."""
    return EmailMessage(
        message_id=email.message_id,
        direction="in",
        kind=kind,
        contact_id=contact_id,
        provider=email.provider,
        from_address=email.from_address,
        to_addresses=list(email.to),
        subject=email.subject,
        in_reply_to=email.in_reply_to[0] if email.in_reply_to else None,
        references=list(email.references),
        data={
            "from_name": email.from_name,
            "cc": list(email.cc),
            "text": email.text,
            "html": email.html,
            "attachments": [attachment.to_dict() for attachment in email.attachments],
            "headers": dict(email.headers),
            "auth": email.auth.to_dict(),
            "sender": sender.to_dict(),
            "from_problem": email.from_problem,
            "automatic": email.automatic,
            "envelope_from": email.envelope_from,
            "message_id_generated": email.message_id_generated,
            "embedded_message_ids": list(email.embedded_message_ids),
            "size": email.size,
            "capped": list(email.capped),
            "classification": classification.to_dict(),
        },
    )
