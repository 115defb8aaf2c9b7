"""What agents have in hand, as read: open offers, assigned work, and every offer of a contact."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from router.core.domain import ContactStatus, ReservationStatus
from router.services.contacts import ContactSummary, summary
from router.services.errors import NotFound
from router.store.db import Database
from router.store.models import Contact, StaffUser
from router.store.models.agents import Agent, Reservation

_OFFERED = ReservationStatus.OFFERED.value


@dataclass(frozen=True)
class ReservationView:
    """An offer of a contact to an agent and how it ended."""

    id: int
    contact_id: int
    agent_id: int
    channel: str
    status: str
    offered_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    explain: dict[str, Any]

    @classmethod
    def of(cls, reservation: Reservation) -> ReservationView:
        """Return the view of a stored reservation."""
        return cls(
            id=reservation.id,
            contact_id=reservation.contact_id,
            agent_id=reservation.agent_id,
            channel=reservation.channel,
            status=reservation.status,
            offered_at=reservation.offered_at,
            expires_at=reservation.expires_at,
            decided_at=reservation.decided_at,
            explain=dict(reservation.explain or {}),
        )


@dataclass(frozen=True)
class Offer:
    """An open offer, as the agent it is made to sees it."""

    reservation_id: int
    contact_id: int
    reference: str
    channel: str
    queue: str | None
    priority: int
    severity: str
    due_at: datetime | None
    offered_at: datetime
    expires_at: datetime
    seconds_left: int


@dataclass(frozen=True)
class Assignments:
    """A contact's assigned agent and every offer made of it, with why that agent."""

    contact_id: int
    status: str
    assigned_agent_id: int | None
    reservations: tuple[ReservationView, ...]


def offers_for(db: Database, staff_id: int, now: datetime) -> tuple[Offer, ...]:
    """Return the agent's open offers, soonest to expire first."""
    with db.session() as session:
        if session.get(Agent, staff_id) is None:
            raise NotFound(f"staff user {staff_id} has no agent profile")
        rows = session.execute(
            select(Reservation, Contact)
            .join(Contact, Contact.id == Reservation.contact_id)
            .where(
                Reservation.agent_id == staff_id,
                Reservation.status == _OFFERED,
                Reservation.expires_at > now,
            )
            .order_by(Reservation.expires_at, Reservation.id)
        ).all()
        return tuple(
            Offer(
                reservation_id=reservation.id,
                contact_id=contact.id,
                reference=contact.reference,
                channel=reservation.channel,
                queue=contact.queue_key,
                priority=contact.priority,
                severity=contact.severity,
                due_at=contact.due_at,
                offered_at=reservation.offered_at,
                expires_at=reservation.expires_at,
                seconds_left=max(0, int((reservation.expires_at - now).total_seconds())),
            )
            for reservation, contact in rows
        )


def assignment_explain(db: Database, contact_id: int) -> Assignments:
    """Return every offer made of a contact, oldest first, with why that agent was chosen."""
    with db.session() as session:
        contact = session.get(Contact, contact_id)
        if contact is None:
            raise NotFound(f"no contact {contact_id}")
        reservations = session.scalars(
            select(Reservation)
            .where(Reservation.contact_id == contact_id)
            .order_by(Reservation.offered_at, Reservation.id)
        )
        return Assignments(
            contact_id=contact.id,
            status=contact.status,
            assigned_agent_id=contact.assigned_agent_id,
            reservations=tuple(ReservationView.of(r) for r in reservations),
        )


# "My work" lists at most this many contacts, the soonest due first.
MY_WORK_LIMIT = 100
_RESOLVED = ContactStatus.RESOLVED.value


def my_work(db: Database, staff_id: int, now: datetime) -> list[ContactSummary]:
    """Return the unresolved contacts assigned to an agent, the soonest due first."""
    statement = (
        select(Contact)
        .where(Contact.assigned_agent_id == staff_id, Contact.status != _RESOLVED)
        .order_by(Contact.due_at.is_(None), Contact.due_at, Contact.id)
        .limit(MY_WORK_LIMIT)
    )
    with db.session() as session:
        return [summary(contact, now) for contact in session.scalars(statement)]


def work_counts(db: Database, agent_ids: Iterable[int]) -> dict[int, int]:
    """Return how many unresolved contacts each agent has assigned."""
    ids = list(agent_ids)
    if not ids:
        return {}
    statement = (
        select(Contact.assigned_agent_id, func.count())
        .where(Contact.assigned_agent_id.in_(ids), Contact.status != _RESOLVED)
        .group_by(Contact.assigned_agent_id)
    )
    with db.session() as session:
        return {
            int(agent_id): int(count)
            for agent_id, count in session.execute(statement)
            if agent_id is not None
        }


def staff_names(db: Database, staff_ids: Iterable[int]) -> dict[int, str]:
    """Return the email of each staff user named (explains store only ids)."""
    ids = sorted(set(staff_ids))
    if not ids:
        return {}
    with db.session() as session:
        rows = session.execute(select(StaffUser.id, StaffUser.email).where(StaffUser.id.in_(ids)))
        return {int(staff_id): str(email) for staff_id, email in rows}
