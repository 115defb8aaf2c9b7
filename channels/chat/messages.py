"""Chat messages: what the admin types, appended to the contact's timeline up to a limit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from channels.chat import contacts, forms, idempotency
from channels.chat.bodies import ChatAnswer, message_body
from channels.chat.portal import PortalUser
from router.services.errors import ServiceError
from router.store.db import Database
from router.store.models import ContactEvent


class LimitReached(ServiceError):
    """The session has taken as many messages as it may (429)."""

    status = 429

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"this chat has reached its limit of {limit} messages; continue by email or open a "
            "new chat",
            reason="message_limit",
        )


def post_message(
    db: Database,
    user: PortalUser,
    contact_id: int,
    message: forms.ChatMessage,
    key: str | None,
    *,
    now: datetime,
    limit: int,
) -> ChatAnswer:
    """Append a customer message to the session's timeline (plain text, at most ``limit``)."""
    with db.transaction() as session:
        owned = contacts.owned(session, user, contact_id, lock=True)
        contact = contacts.current(session, owned, lock=True)
        contacts.check_open(contact, deflected="it takes no messages")
        if key is not None:
            # The session's bot contact counts too: a retry may cross a hand-off.
            replayed = idempotency.replayed_message(
                session, {owned.id, contact.id}, key, message.text
            )
            if replayed is not None:
                return ChatAnswer(message_body(replayed), created=False)
        if message_count(session, contact.id) >= limit:
            raise LimitReached(limit)
        data = {**message_data(message.text), "from": "customer"}
        if key is not None:
            data["idempotency_key"] = key
        event = ContactEvent(
            contact_id=contact.id, at=now, kind="message", actor=user.admin_email, data=data
        )
        session.add(event)
        session.flush()
        return ChatAnswer(message_body(event), created=True)


def message_data(text: str) -> dict[str, Any]:
    """Return how a message is kept on the timeline: plain text and its length."""
    return {"text": text, "format": "text/plain", "chars": len(text)}


def message_count(session: Session, contact_id: int) -> int:
    """Return how many customer messages a session holds."""
    count = session.scalar(
        select(func.count())
        .select_from(ContactEvent)
        .where(ContactEvent.contact_id == contact_id, ContactEvent.kind == "message")
    )
    return int(count or 0)
