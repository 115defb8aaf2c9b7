"""Dispatch: offer waiting contacts to agents (reservations); deciding offers is reservations.py.

Every decision (serving order, who may take a contact, the queue's strategy, the explain) is
router.core.assignment's; this module reads the store, asks it, and writes the outcome safely
for any number of processes dispatching at once:

* an offer takes the agent's slot with one conditional UPDATE (presence available and load
  below capacity); no row updated means the agent is no longer free, and the next is tried;
* a contact has at most one open offer (a partial unique index): losing that race rolls back
  only the attempt (a SAVEPOINT);
* on PostgreSQL the contact being offered is locked with SKIP LOCKED, so concurrent
  dispatchers pass over it instead of waiting; SQLite's single writer serialises them.

Each offer is its own short transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from config.settings import Settings
from router.core.assignment import (
    AgentState,
    Choice,
    WaitingContact,
    choose_agent,
    next_contact,
)
from router.core.domain import Channel, ContactStatus, Presence, ReservationStatus, Strategy
from router.store.db import Database, is_postgresql
from router.store.models import Contact, Queue
from router.store.models.agents import CHANNELS, Agent, AgentSkill, Reservation

log = logging.getLogger(__name__)

__all__ = ["dispatch_agent", "dispatch_contact", "dispatch_free_agents", "offer_timeout"]

# Waiting contacts read per queue when an agent frees up: the head of the order is enough.
WAITING_BATCH = 200
# Offers one dispatch_agent call makes at most (an agent's capacity is at most 100 a channel).
MAX_OFFERS_PER_AGENT = 50
# Reservations one expire_due call decides at most; the next run takes the rest.

_OFFERED = ReservationStatus.OFFERED.value
_WAITING = ContactStatus.WAITING.value
_AVAILABLE = Presence.AVAILABLE.value
_DECLINED = (ReservationStatus.REJECTED.value, ReservationStatus.EXPIRED.value)

# The one serving order, index-friendly and portable (due_at NULLS LAST spelled out).
_SQL_ORDER = (
    Contact.priority.desc(),
    Contact.due_at.is_(None),
    Contact.due_at,
    Contact.received_at,
    Contact.id,
)
_NO_OPEN_OFFER = ~exists().where(
    Reservation.contact_id == Contact.id, Reservation.status == _OFFERED
)


def offer_timeout(settings: Settings, channel: Channel | str) -> timedelta:
    """Return how long an agent has to accept an offer on ``channel``."""
    seconds: int = getattr(settings, f"offer_timeout_{Channel(channel).value}_seconds")
    return timedelta(seconds=seconds)


def _agent_state(agent: Agent) -> AgentState:
    # Imported late: the agents service imports this module's callers (presence → dispatch).
    from router.services.agents import agent_state

    return agent_state(agent)


def _waiting(row: Any) -> WaitingContact:
    return WaitingContact(
        id=row.id,
        queue=row.queue_key,
        channel=Channel(row.channel),
        priority=row.priority,
        due_at=row.due_at,
        received_at=row.received_at,
        language=row.language,
    )


def _lock_assignable(session: Session, contact_id: int) -> Contact | None:
    """Return the contact if it may be offered now, locked on PostgreSQL (None: skip it)."""
    statement = (
        select(Contact)
        .join(Queue, Queue.key == Contact.queue_key)
        .where(
            Contact.id == contact_id,
            Contact.status == _WAITING,
            Contact.assigned_agent_id.is_(None),
            Queue.kind == "human",
            _NO_OPEN_OFFER,
        )
    )
    if is_postgresql(session):
        # Another dispatcher offering this contact now: pass over it rather than wait.
        statement = statement.with_for_update(skip_locked=True, of=Contact)
    return session.scalar(statement)


def _declined(session: Session, contact_ids: Iterable[int]) -> dict[int, set[int]]:
    """Return, per contact, the agents who rejected it or let its offer expire."""
    ids = list(contact_ids)
    found: dict[int, set[int]] = {}
    if not ids:
        return found
    rows = session.execute(
        select(Reservation.contact_id, Reservation.agent_id).where(
            Reservation.contact_id.in_(ids), Reservation.status.in_(_DECLINED)
        )
    )
    for contact_id, agent_id in rows:
        found.setdefault(contact_id, set()).add(agent_id)
    return found


def _serving_agents(session: Session, queue_key: str) -> list[Agent]:
    return list(
        session.scalars(
            select(Agent)
            .join(AgentSkill, AgentSkill.agent_id == Agent.staff_user_id)
            .where(AgentSkill.queue_key == queue_key)
            .order_by(Agent.staff_user_id)
            .options(selectinload(Agent.skills))
        )
    )


def _take_slot(session: Session, agent_id: int, channel: str, now: datetime) -> bool:
    """Take one of the agent's slots on ``channel`` if it is still available and free."""
    load = getattr(Agent, f"load_{channel}")
    capacity = getattr(Agent, f"capacity_{channel}")
    result = session.execute(
        update(Agent)
        .where(Agent.staff_user_id == agent_id, Agent.presence == _AVAILABLE, load < capacity)
        # An agent holding an offer is no longer idle: longest-idle spreads offers, not piles them.
        .values({load: load + 1, Agent.last_offered_at: now, Agent.idle_since: None})
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def _offer(
    session: Session,
    settings: Settings,
    contact: WaitingContact,
    agent_id: int,
    choice: Choice,
    now: datetime,
    trigger: str,
) -> int | None:
    """Take the agent's slot and store the offer, or undo both (None: the agent or contact lost)."""
    try:
        with session.begin_nested():
            if not _take_slot(session, agent_id, contact.channel.value, now):
                return None
            reservation = Reservation(
                contact_id=contact.id,
                agent_id=agent_id,
                channel=contact.channel.value,
                status=_OFFERED,
                offered_at=now,
                expires_at=now + offer_timeout(settings, contact.channel),
                explain={**choice.explain(), "trigger": trigger},
            )
            session.add(reservation)
            session.flush()
    except IntegrityError:
        # Another process offered this contact first (one open offer per contact).
        return None
    return reservation.id


def dispatch_contact(
    db: Database, settings: Settings, contact_id: int, now: datetime
) -> int | None:
    """Offer a waiting contact to the best agent its queue's strategy picks; return the offer."""
    with db.transaction() as session:
        contact = _lock_assignable(session, contact_id)
        if contact is None or contact.queue_key is None:
            return None
        agents = _serving_agents(session, contact.queue_key)
        if not agents:
            return None
        queue = session.get(Queue, contact.queue_key)
        strategy = Strategy(queue.assignment_strategy) if queue else Strategy.LONGEST_IDLE
        waiting = _waiting(contact)
        declined = _declined(session, [contact.id]).get(contact.id, set())
        lost: set[int] = set()
        for _attempt in range(len(agents)):
            states = [_agent_state(agent) for agent in agents]
            choice = choose_agent(waiting, states, strategy, declined | lost)
            if choice.agent_id is None:
                return None
            offered = _offer(session, settings, waiting, choice.agent_id, choice, now, "contact")
            if offered is not None:
                return offered
            if _has_open_offer(session, contact.id):
                return None
            # The agent stopped being free meanwhile: read them again and choose again.
            lost.add(choice.agent_id)
            for agent in agents:
                if agent.staff_user_id == choice.agent_id:
                    session.refresh(agent)
        return None


def _has_open_offer(session: Session, contact_id: int) -> bool:
    return (
        session.scalar(
            select(Reservation.id).where(
                Reservation.contact_id == contact_id, Reservation.status == _OFFERED
            )
        )
        is not None
    )


def _waiting_for(session: Session, state: AgentState, queues: Sequence[str]) -> list[Any]:
    """Return the head of each queue's order the agent has a free slot for."""
    channels = [channel.value for channel in Channel if state.free(channel) > 0]
    rows: list[Any] = []
    for queue in queues:
        rows += session.execute(
            select(
                Contact.id,
                Contact.queue_key,
                Contact.channel,
                Contact.priority,
                Contact.due_at,
                Contact.received_at,
                Contact.language,
            )
            .where(
                Contact.queue_key == queue,
                Contact.status == _WAITING,
                Contact.assigned_agent_id.is_(None),
                Contact.channel.in_(channels),
                _NO_OPEN_OFFER,
            )
            .order_by(*_SQL_ORDER)
            .limit(WAITING_BATCH)
        ).all()
    return rows


def _offer_next(db: Database, settings: Settings, staff_id: int, now: datetime) -> int | None:
    """Offer the agent the first contact in the serving order they may take (one transaction)."""
    with db.transaction() as session:
        agent = session.get(Agent, staff_id, options=[selectinload(Agent.skills)])
        if agent is None or agent.presence != _AVAILABLE:
            return None
        state = _agent_state(agent)
        queues = {
            queue.key: queue
            for queue in session.scalars(
                select(Queue).where(
                    Queue.key.in_([skill.queue_key for skill in agent.skills]),
                    Queue.kind == "human",
                )
            )
        }
        waiting = [_waiting(row) for row in _waiting_for(session, state, sorted(queues))]
        declined = _declined(session, [contact.id for contact in waiting])
        for _attempt in range(len(waiting)):
            contact = next_contact(state, waiting, declined)
            if contact is None:
                return None
            waiting.remove(contact)
            if _lock_assignable(session, contact.id) is None:
                continue  # offered, assigned or locked by another dispatcher meanwhile
            strategy = Strategy(queues[contact.queue].assignment_strategy)
            choice = choose_agent(contact, [state], strategy, declined.get(contact.id, ()))
            offered = _offer(session, settings, contact, staff_id, choice, now, "agent")
            if offered is not None:
                return offered
            if not _has_open_offer(session, contact.id):
                return None  # the agent is no longer free
        return None


def dispatch_agent(
    db: Database, settings: Settings, staff_id: int, now: datetime, *, limit: int = 0
) -> list[int]:
    """Offer a free agent contacts, head of the serving order first, while they have room."""
    offers: list[int] = []
    for _ in range(limit or MAX_OFFERS_PER_AGENT):
        offered = _offer_next(db, settings, staff_id, now)
        if offered is None:
            break
        offers.append(offered)
    return offers


def dispatch_free_agents(
    db: Database, settings: Settings, now: datetime, *, max_offers: int = 200
) -> int:
    """Offer waiting contacts to every available agent with a free slot; bounded work."""
    free = or_(*(getattr(Agent, f"load_{c}") < getattr(Agent, f"capacity_{c}") for c in CHANNELS))
    with db.session() as session:
        agent_ids = list(
            session.scalars(
                select(Agent.staff_user_id)
                .where(Agent.presence == _AVAILABLE, free)
                .order_by(Agent.idle_since.is_(None), Agent.idle_since, Agent.staff_user_id)
                .limit(max_offers)
            )
        )
    made = 0
    for staff_id in agent_ids:
        if made >= max_offers:
            break
        made += len(dispatch_agent(db, settings, staff_id, now, limit=max_offers - made))
    return made
