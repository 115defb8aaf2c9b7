"""One delivery, one transaction: intake stores the contact and the channel's follow-up runs on it.

A channel whose answer needs more than the IntakeResult (a chat's queue position, the email
message and the reply it is owed) passes a follow-up. It runs on the stored contact inside
intake's own transaction: it may write too, and an error in it rolls the new contact back with
it, so no contact is ever stored without its answer.

Deliveries are idempotent on (channel, external id): one already stored is answered with the
first contact and nothing new is stored. Two concurrent deliveries may both insert; the loser's
IntegrityError (from the contact, or from the follow-up's own writes) rolls its work back, and
its follow-up runs again, in a new transaction, on the contact the winner stored (``created``
is False). A follow-up must therefore answer a contact it did not create as well as a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from router.core.domain import Channel, ContactStatus
from router.intake.decision_record import StoredDecision
from router.intake.request import IntakeResult
from router.store.db import Database
from router.store.models import Contact

T = TypeVar("T")


@dataclass(frozen=True)
class StoredContact:
    """A contact intake stored (or found stored), inside intake's still open transaction."""

    session: Session
    contact: Contact
    result: IntakeResult


# A channel's work on the stored contact, in intake's transaction; what it returns is its answer.
FollowUp = Callable[[StoredContact], T]

# Built once: building the statement costs about as much as running it, on every contact.
_CONTACT_BY_EXTERNAL_ID = select(Contact).where(
    Contact.channel == bindparam("channel"), Contact.external_id == bindparam("external_id")
)


def run(
    db: Database,
    channel: Channel,
    external_id: str,
    store: Callable[[Session], Contact],
    follow_up: FollowUp[T],
) -> tuple[IntakeResult, T]:
    """Store a contact with ``store`` unless this delivery's is stored, then ``follow_up`` it."""
    try:
        with db.transaction() as session:
            existing = _find(session, channel, external_id)
            if existing is not None:
                return _follow(session, existing, False, follow_up)
            contact = store(session)
            session.flush()
            return _follow(session, contact, True, follow_up)
    except IntegrityError:
        # A concurrent delivery of the same external id won the race: answer with its contact.
        with db.transaction() as session:
            existing = _find(session, channel, external_id)
            if existing is None:
                raise
            return _follow(session, existing, False, follow_up)


def _follow(
    session: Session, contact: Contact, created: bool, follow_up: FollowUp[T]
) -> tuple[IntakeResult, T]:
    result = _result(contact, created=created)
    return result, follow_up(StoredContact(session, contact, result))


def _find(session: Session, channel: Channel, external_id: str) -> Contact | None:
    return session.scalar(
        _CONTACT_BY_EXTERNAL_ID, {"channel": channel.value, "external_id": external_id}
    )


def _result(contact: Contact, *, created: bool) -> IntakeResult:
    stored = StoredDecision.of(contact.decision)
    return IntakeResult(
        contact_id=contact.id,
        reference=contact.reference,
        created=created,
        status=ContactStatus(contact.status),
        access=stored.access,
        queue=contact.queue_key,
        priority=contact.priority,
        sla_policy=contact.sla_policy,
        due_at=contact.due_at,
        next_open_at=stored.next_open_at,
        reason=stored.rejected,
    )
