"""Deciding offers: an agent accepts or rejects their own, and offers past their time expire.

Each decision moves the reservation with one conditional UPDATE (still offered, the right
agent, not yet expired), so of two processes deciding the same offer only one wins; the loser
gets a 409 naming why. A rejected or expired offer frees the agent's slot and the contact is
offered to the next agent at once, keeping its place in the serving order.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from config.settings import Settings
from router.core.domain import ContactStatus, ReservationStatus
from router.services.dispatch import dispatch_contact
from router.services.errors import Conflict, NotFound
from router.services.offers import ReservationView
from router.store.db import Database, is_postgresql
from router.store.models import Contact, ContactEvent
from router.store.models.agents import CHANNELS, Agent, Reservation

log = logging.getLogger(__name__)

# Offers expired in one transaction; the scheduler's next run (2 s later) takes the rest.
EXPIRE_BATCH = 500

_OFFERED = ReservationStatus.OFFERED.value
_WAITING = ContactStatus.WAITING.value


def _free_slot(session: Session, agent_id: int, channel: str, now: datetime) -> Agent | None:
    """Give back one of the agent's slots; an agent left with no work is idle from ``now``."""
    load = getattr(Agent, f"load_{channel}")
    session.execute(
        update(Agent)
        .where(Agent.staff_user_id == agent_id, load > 0)
        .values({load: load - 1})
        .execution_options(synchronize_session=False)
    )
    agent = session.get(Agent, agent_id, populate_existing=True)
    if agent is not None and not any(getattr(agent, f"load_{c}") for c in CHANNELS):
        agent.idle_since = now
    return agent


def _decide(
    session: Session, reservation_id: int, staff_id: int | None, status: str, now: datetime
) -> Reservation:
    """Move an open offer to ``status`` with one conditional UPDATE, or raise why not."""
    conditions = [Reservation.id == reservation_id, Reservation.status == _OFFERED]
    if staff_id is not None:
        conditions.append(Reservation.agent_id == staff_id)
    if status == ReservationStatus.ACCEPTED.value:
        conditions.append(Reservation.expires_at > now)
    result = session.execute(
        update(Reservation)
        .where(*conditions)
        .values(status=status, decided_at=now)
        .execution_options(synchronize_session=False)
    )
    reservation = session.get(Reservation, reservation_id, populate_existing=True)
    if reservation is None:
        raise NotFound(f"no reservation {reservation_id}")
    if getattr(result, "rowcount", 0) == 1:
        return reservation
    if staff_id is not None and reservation.agent_id != staff_id:
        raise Conflict("this offer was made to another agent", reason="not_yours")
    if reservation.status != _OFFERED:
        raise Conflict(
            f"this offer is already {reservation.status}", reason=f"already_{reservation.status}"
        )
    raise Conflict("this offer has expired", reason="expired")


def _presence() -> Any:
    # Presence owns missed offers; imported late because presence calls dispatch back.
    from router.services import presence

    return presence


def accept(db: Database, reservation_id: int, staff_id: int, now: datetime) -> ReservationView:
    """Accept one's own open offer: the contact is assigned to the agent."""
    with db.transaction() as session:
        reservation = _decide(
            session, reservation_id, staff_id, ReservationStatus.ACCEPTED.value, now
        )
        assigned = session.execute(
            update(Contact)
            .where(
                Contact.id == reservation.contact_id,
                Contact.status == _WAITING,
                Contact.assigned_agent_id.is_(None),
            )
            .values(
                status=ContactStatus.ACCEPTED.value,
                assigned_agent_id=staff_id,
                accepted_at=now,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(assigned, "rowcount", 0) != 1:
            # Resolved or otherwise taken while offered: nothing is assigned (rolled back).
            raise Conflict("the contact is no longer waiting", reason="contact_not_waiting")
        session.add(
            ContactEvent(
                contact_id=reservation.contact_id,
                at=now,
                kind="assigned",
                actor=f"agent:{staff_id}",
                data={"agent_id": staff_id, "reservation_id": reservation.id},
            )
        )
        agent = session.get(Agent, staff_id, populate_existing=True)
        if agent is not None:
            agent.idle_since = None
            _presence().reset_missed_offers(session, agent)
        return ReservationView.of(reservation)


def reject(
    db: Database, settings: Settings, reservation_id: int, staff_id: int, now: datetime
) -> ReservationView:
    """Reject one's own open offer: the slot is freed and the contact offered to the next agent."""
    with db.transaction() as session:
        reservation = _decide(
            session, reservation_id, staff_id, ReservationStatus.REJECTED.value, now
        )
        agent = _free_slot(session, staff_id, reservation.channel, now)
        if agent is not None:
            _presence().reset_missed_offers(session, agent)
        view = ReservationView.of(reservation)
    _redispatch(db, settings, [view.contact_id], now)
    return view


def expire_due(db: Database, settings: Settings, now: datetime) -> int:
    """Expire open offers past their time, free their slots, count the misses; redispatch."""
    with db.transaction() as session:
        statement = (
            select(Reservation.id)
            .where(Reservation.status == _OFFERED, Reservation.expires_at <= now)
            .order_by(Reservation.expires_at, Reservation.id)
            .limit(EXPIRE_BATCH)
        )
        if is_postgresql(session):
            statement = statement.with_for_update(skip_locked=True)
        contacts: list[int] = []
        for reservation_id in list(session.scalars(statement)):
            try:
                reservation = _decide(
                    session, reservation_id, None, ReservationStatus.EXPIRED.value, now
                )
            except Conflict:
                continue  # accepted or rejected meanwhile
            agent = _free_slot(session, reservation.agent_id, reservation.channel, now)
            if agent is not None:
                _presence().record_missed_offer(session, agent, now)
            contacts.append(reservation.contact_id)
    _redispatch(db, settings, contacts, now)
    return len(contacts)


def _redispatch(
    db: Database, settings: Settings, contact_ids: Iterable[int], now: datetime
) -> None:
    """Offer contacts again after an offer ended; a failure waits for the scheduler's next run."""
    for contact_id in contact_ids:
        try:
            dispatch_contact(db, settings, contact_id, now)
        except Exception:
            log.exception("could not offer contact %s again; the scheduler retries", contact_id)
