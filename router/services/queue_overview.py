"""The supervisors' overview: waiting contacts per queue, the oldest wait, SLA state counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, select
from sqlalchemy.orm import Session

from router.core.domain import ContactStatus, SlaState
from router.services.paging import Page
from router.store.db import Database
from router.store.models import Contact, Queue

# SLA states a waiting contact can be in, in the order the overview shows them.
LIVE_STATES = (SlaState.OK, SlaState.WARNING, SlaState.BREACHED, SlaState.MET, SlaState.MISSED)


def effective_sla_state(now: datetime) -> ColumnElement[str]:
    """Return the SLA state at ``now`` as SQL: running clocks whose instants passed count on.

    The scheduler records warnings and breaches as they happen; reading through the clock's
    instants keeps the console right between sweeps (and when the scheduler is down).
    """
    running = Contact.sla_state.in_([SlaState.OK.value, SlaState.WARNING.value])
    return case(
        (and_(running, Contact.due_at.is_not(None), Contact.due_at <= now), literal("breached")),
        (
            and_(
                Contact.sla_state == SlaState.OK.value,
                Contact.warning_at.is_not(None),
                Contact.warning_at <= now,
            ),
            literal("warning"),
        ),
        else_=Contact.sla_state,
    )


@dataclass(frozen=True)
class Waiting:
    """Waiting contacts: how many, since when the oldest, and how many in each SLA state."""

    waiting: int
    oldest_received_at: datetime | None
    oldest_wait_seconds: int | None
    sla: dict[str, int]


@dataclass(frozen=True)
class OverviewLine(Waiting):
    """One queue's line on the supervisors' overview."""

    key: str
    name: str
    team: str
    kind: str
    active: bool


@dataclass(frozen=True)
class QueueOverview(Page[OverviewLine]):
    """Every queue's waiting contacts, busiest first, and the totals."""

    generated_at: datetime
    totals: Waiting


def _no_states() -> dict[str, int]:
    return {state.value: 0 for state in (SlaState.NONE, *LIVE_STATES)}


def nobody_waiting() -> Waiting:
    """Return the summary of a queue no one waits in."""
    return Waiting(waiting=0, oldest_received_at=None, oldest_wait_seconds=None, sla=_no_states())


def waiting_by_queue(
    session: Session, now: datetime, keys: list[str] | None = None
) -> dict[str, Waiting]:
    """Count waiting contacts per queue and SLA state, with the oldest arrival: one query."""
    state = effective_sla_state(now).label("state")
    stmt = (
        select(Contact.queue_key, state, func.count(), func.min(Contact.received_at))
        .where(Contact.status == ContactStatus.WAITING.value, Contact.queue_key.is_not(None))
        .group_by(Contact.queue_key, state)
    )
    if keys is not None:
        stmt = stmt.where(Contact.queue_key.in_(keys))
    counts: dict[str, dict[str, int]] = {}
    oldest: dict[str, datetime] = {}
    for queue_key, sla_state, count, first in session.execute(stmt):
        key = str(queue_key)
        sla = counts.setdefault(key, _no_states())
        sla[sla_state] = sla.get(sla_state, 0) + count
        arrived = _aware(first)
        if arrived is not None and (key not in oldest or arrived < oldest[key]):
            oldest[key] = arrived
    return {
        key: Waiting(
            waiting=sum(sla.values()),
            oldest_received_at=oldest.get(key),
            oldest_wait_seconds=(
                max(0, int((now - oldest[key]).total_seconds())) if key in oldest else None
            ),
            sla=sla,
        )
        for key, sla in counts.items()
    }


def _aware(value: Any) -> datetime | None:
    # min() over a column comes back untyped on SQLite (a string or a naive datetime).
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)  # type: ignore[no-any-return]


def overview(
    db: Database,
    now: datetime,
    *,
    page: int,
    per_page: int,
    team: str | None = None,
    kind: str | None = None,
    include_inactive: bool = False,
) -> QueueOverview:
    """Return every queue with its waiting contacts, oldest wait and SLA state counts."""
    with db.session() as session:
        stmt = select(Queue).order_by(Queue.team, Queue.key)
        if team:
            stmt = stmt.where(Queue.team == team)
        if kind:
            stmt = stmt.where(Queue.kind == kind)
        if not include_inactive:
            stmt = stmt.where(Queue.active.is_(True))
        queues = list(session.scalars(stmt))
        waiting = waiting_by_queue(session, now, [queue.key for queue in queues])
    lines = [
        OverviewLine(
            key=queue.key,
            name=queue.name,
            team=queue.team,
            kind=queue.kind,
            active=queue.active,
            **vars(waiting.get(queue.key) or nobody_waiting()),
        )
        for queue in queues
    ]
    # Busiest first, as a supervisor scans: breaches, then warnings, then the longest wait.
    lines.sort(
        key=lambda line: (
            -line.sla["breached"],
            -line.sla["warning"],
            -(line.oldest_wait_seconds if line.oldest_wait_seconds is not None else -1),
            -line.waiting,
            line.key,
        )
    )
    sla = _no_states()
    longest: Waiting = nobody_waiting()
    for line in lines:
        for name, count in line.sla.items():
            sla[name] += count
        wait = line.oldest_wait_seconds
        if wait is not None and (
            longest.oldest_wait_seconds is None or wait > longest.oldest_wait_seconds
        ):
            longest = line
    start = (page - 1) * per_page
    return QueueOverview(
        items=tuple(lines[start : start + per_page]),
        page=page,
        per_page=per_page,
        total=len(lines),
        generated_at=now,
        totals=Waiting(
            waiting=sum(line.waiting for line in lines),
            oldest_received_at=longest.oldest_received_at,
            oldest_wait_seconds=longest.oldest_wait_seconds,
            sla=sla,
        ),
    )
