"""What became of an inbound message, and the replies it left in the outbox."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from router.store.models import Contact


@dataclass(frozen=True)
class PlannedReply:
    """A reply written to the outbox for this message."""

    outbox_id: int
    kind: str
    to: str
    subject: str
    body: str
    message_id: str


@dataclass(frozen=True)
class Receipt:
    """What became of an inbound message."""

    outcome: str  # created, threaded, duplicate, own_message
    contact_id: int | None
    reference: str | None
    status: str | None
    reason: str | None = None
    queue: str | None = None
    due_at: datetime | None = None
    replies: tuple[PlannedReply, ...] = ()
    suppressed: tuple[str, ...] = ()

    @classmethod
    def for_contact(cls, outcome: str, contact: Contact, **extra: Any) -> Receipt:
        """Return the receipt of a message stored on ``contact``."""
        return cls(
            outcome=outcome,
            contact_id=contact.id,
            reference=contact.reference,
            status=contact.status,
            queue=contact.queue_key,
            due_at=contact.due_at,
            **extra,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the receipt as the endpoints answer it."""
        return {
            "outcome": self.outcome,
            "contact": self.reference,
            "status": self.status,
            "reason": self.reason,
            "queue": self.queue,
            "due_at": self.due_at.isoformat() if self.due_at else None,
            "suppressed": list(self.suppressed),
        }
