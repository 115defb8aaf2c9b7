"""Queue insight from the store: serving order, position of a waiting contact, estimated wait.

Every function takes the caller's session (read-only work; callers own transactions) and runs
indexed queries on ``contacts``: the waiting side uses ``ix_contacts_queue_waiting`` (queue_key,
status, priority, received_at), so its cost grows with a queue's depth, never the table's size.
The chat channel answers customers with these; the staff console shows the same figures.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select
from sqlalchemy.orm import Session

from router.core.calendar import as_utc
from router.core.domain import ContactStatus
from router.store.models import Contact

DEFAULT_WAIT_WINDOW = timedelta(hours=2)
DEFAULT_WAIT_SAMPLE = 25

_WAITING = ContactStatus.WAITING.value

# Serving order in every queue: higher priority first, then the oldest, then the lowest id so
# contacts received in the same instant still have a total order.
SERVING_ORDER: tuple[Any, ...] = (
    Contact.priority.desc(),
    Contact.received_at.asc(),
    Contact.id.asc(),
)


def _ahead_statement(*, stored: bool) -> Any:
    """Count contacts waiting in a queue before (priority, received_at[, id]), built once."""
    received_at = bindparam("received_at", type_=Contact.received_at.type)
    # A contact not stored yet (no id) would be served after everyone received with it.
    same_instant = and_(Contact.received_at == received_at, Contact.id < bindparam("contact_id"))
    earlier = (
        or_(Contact.received_at < received_at, same_instant)
        if stored
        else (Contact.received_at <= received_at)
    )
    priority = bindparam("priority", type_=Contact.priority.type)
    ahead = or_(Contact.priority > priority, and_(Contact.priority == priority, earlier))
    return (
        select(func.count())
        .select_from(Contact)
        .where(Contact.queue_key == bindparam("queue_key"), Contact.status == _WAITING, ahead)
    )


# Built once: building these per call cost more than running them (~0.1 ms each).
_AHEAD_OF_STORED = _ahead_statement(stored=True)
_AHEAD_OF_NEW = _ahead_statement(stored=False)
_RECENT_WAITS = (
    select(Contact.received_at, Contact.sla_started_at, Contact.accepted_at)
    .where(
        Contact.queue_key == bindparam("queue_key"),
        Contact.accepted_at.is_not(None),
        Contact.accepted_at > bindparam("since", type_=Contact.accepted_at.type),
        Contact.accepted_at <= bindparam("now", type_=Contact.accepted_at.type),
    )
    .order_by(Contact.accepted_at.desc())
    .limit(bindparam("limit"))
)


@dataclass(frozen=True)
class WaitEstimate:
    """How long a contact joining a queue now may wait, from that queue's recent waits."""

    seconds: int
    sample_size: int
    window: timedelta


@dataclass(frozen=True)
class QueueStanding:
    """Where one waiting contact stands: contacts ahead of it and the queue's estimated wait."""

    queue_key: str
    ahead: int
    estimate: WaitEstimate | None

    @property
    def estimated_wait_seconds(self) -> int | None:
        """Return the estimate in whole seconds, or None when the queue has no recent history."""
        return self.estimate.seconds if self.estimate else None


def waiting_ahead(
    session: Session,
    *,
    queue_key: str,
    priority: int,
    received_at: datetime,
    contact_id: int | None = None,
) -> int:
    """Count contacts waiting in ``queue_key`` served before (priority, received_at, id)."""
    params = {
        "queue_key": queue_key,
        "priority": priority,
        "received_at": as_utc(received_at, "received_at"),
    }
    if contact_id is None:
        count = session.connection().scalar(_AHEAD_OF_NEW, params)
    else:
        count = session.connection().scalar(_AHEAD_OF_STORED, {**params, "contact_id": contact_id})
    return int(count or 0)


def waiting_count(session: Session, queue_key: str) -> int:
    """Return how many contacts wait in ``queue_key``."""
    count = session.scalar(
        select(func.count())
        .select_from(Contact)
        .where(Contact.queue_key == queue_key, Contact.status == _WAITING)
    )
    return int(count or 0)


def waiting_contacts(session: Session, queue_key: str, *, limit: int = 100) -> list[Contact]:
    """Return the contacts waiting in ``queue_key`` in serving order (first served first)."""
    return list(
        session.scalars(
            select(Contact)
            .where(Contact.queue_key == queue_key, Contact.status == _WAITING)
            .order_by(*SERVING_ORDER)
            .limit(limit)
        )
    )


def position(session: Session, contact: Contact) -> int | None:
    """Return how many contacts are ahead of ``contact``, or None unless it waits in a queue."""
    if contact.status != _WAITING or contact.queue_key is None:
        return None
    return waiting_ahead(
        session,
        queue_key=contact.queue_key,
        priority=contact.priority,
        received_at=contact.received_at,
        contact_id=contact.id,
    )


def recent_waits(
    session: Session,
    queue_key: str,
    *,
    now: datetime,
    window: timedelta = DEFAULT_WAIT_WINDOW,
    limit: int = DEFAULT_WAIT_SAMPLE,
) -> list[timedelta]:
    """Return the waits of the contacts accepted from ``queue_key`` in ``window`` before ``now``.

    Newest first, at most ``limit``. A wait runs from when the contact could be served (its
    receipt, or the opening its business-time SLA clock waited for) to its acceptance: a
    contact kept overnight says nothing about how fast the queue moves while it is staffed.
    """
    now = as_utc(now, "now")
    rows = (
        session.connection()
        .execute(
            _RECENT_WAITS,
            {"queue_key": queue_key, "since": now - window, "now": now, "limit": limit},
        )
        .all()
    )
    waits: list[timedelta] = []
    for received_at, sla_started_at, accepted_at in rows:
        assert accepted_at is not None  # filtered by the query
        servable = max(received_at, sla_started_at) if sla_started_at else received_at
        waits.append(max(timedelta(0), accepted_at - servable))
    return waits


def estimated_wait(
    session: Session,
    queue_key: str,
    *,
    now: datetime,
    window: timedelta = DEFAULT_WAIT_WINDOW,
    limit: int = DEFAULT_WAIT_SAMPLE,
) -> WaitEstimate | None:
    """Estimate the wait in ``queue_key`` as the median recent wait; None without history."""
    waits = recent_waits(session, queue_key, now=now, window=window, limit=limit)
    if not waits:
        return None
    # The median, not the mean: one contact left waiting for hours must not swamp the rest.
    median = statistics.median(w.total_seconds() for w in waits)
    return WaitEstimate(seconds=round(median), sample_size=len(waits), window=window)


def standing(
    session: Session,
    contact: Contact,
    *,
    now: datetime,
    window: timedelta = DEFAULT_WAIT_WINDOW,
    limit: int = DEFAULT_WAIT_SAMPLE,
) -> QueueStanding | None:
    """Return where a waiting contact stands in its queue, or None unless it is waiting."""
    ahead = position(session, contact)
    if ahead is None or contact.queue_key is None:
        return None
    estimate = estimated_wait(session, contact.queue_key, now=now, window=window, limit=limit)
    return QueueStanding(queue_key=contact.queue_key, ahead=ahead, estimate=estimate)
