"""The SLA sweep: contacts whose warning point or due time has passed move on, once, and escalate.

A sweep is safe to run twice, or twice at once: every transition is a conditional UPDATE
(``... WHERE sla_state = <the state it leaves>``) and only the rows it returns get a timeline
event, an escalation and notifications, all in the same transaction. On PostgreSQL the candidates
are also locked with ``FOR UPDATE SKIP LOCKED``, so overlapping sweeps share the work instead of
queueing behind each other. Every query is a range scan on ``ix_contacts_sla_warning`` or
``ix_contacts_sla_due`` (state first, then the instant), so a sweep reads the contacts that are
due, never the contacts that are merely open.

Re-grading (router.services.contact_changes) recomputes warning_at/due_at and the recorded state;
the sweep always reads the instants as they are now, so a re-graded clock fires at its new points.
Contacts whose first response is recorded (met/missed) or that have no clock (none) are never read.
Who is told about a transition, and what, is router.services.sla_notices.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import ColumnElement, Row, insert, select, update
from sqlalchemy.orm import Session

from config.policy import EscalationPolicy, Policy
from router.core.calendar import as_utc
from router.core.domain import ContactStatus, SlaState
from router.core.validation import instant_text
from router.services.sla_notices import (
    EVENT_BREACHED,
    EVENT_WARNING,
    QueueInfo,
    load_accounts,
    load_queues,
    notice_payload,
    outbox_rows,
)
from router.store.db import Database
from router.store.models import Contact, ContactEvent
from router.store.models.scheduler import Notification

log = logging.getLogger(__name__)

ACTOR = "sla-monitor"

# What a transition hands on: enough of the contact to escalate it and to tell people about it.
_RETURNED = (
    Contact.id,
    Contact.channel,
    Contact.subject,
    Contact.status,
    Contact.account_id,
    Contact.tier,
    Contact.severity,
    Contact.category,
    Contact.topic,
    Contact.queue_key,
    Contact.priority,
    Contact.sla_policy,
    Contact.received_at,
    Contact.warning_at,
    Contact.due_at,
)


@dataclass(frozen=True)
class SweepResult:
    """What one sweep changed."""

    now: datetime
    warnings: int = 0
    breaches: int = 0
    escalated: int = 0
    notifications: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return the counts as JSON-ready data (kept as the job's last result)."""
        return {
            "now": self.now.isoformat(),
            "warnings": self.warnings,
            "breaches": self.breaches,
            "escalated": self.escalated,
            "notifications": self.notifications,
        }


@dataclass(frozen=True)
class _Batch:
    """What one batch's transaction did."""

    transitioned: int = 0
    escalated: int = 0
    notifications: int = 0
    more: bool = False  # a full batch was read: there may be more to do


# Only contacts still being worked on can warn or breach: a closed one (resolved, or a bot
# session handed to a human) is never escalated, whatever its clock says.
_OPEN = (ContactStatus.WAITING.value, ContactStatus.ACCEPTED.value)


class SlaMonitor:
    """Advance first-response clocks whose warning point or due time has passed."""

    def __init__(self, db: Database, policy: Policy, *, batch_size: int = 500) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be 1 or more")
        self.db = db
        self.policy = policy
        self.batch_size = batch_size

    def sweep(self, now: datetime) -> SweepResult:
        """Record every warning and breach due at ``now`` exactly once; escalate and notify."""
        now = as_utc(now, "now")
        with self.db.session() as session:
            queues = load_queues(session)
        breaches = escalated = notifications = 0
        # Contacts already warned first, then those that passed both points since the last sweep
        # (after downtime): the latter get their missed warning on the timeline too.
        for leaving in (SlaState.WARNING, SlaState.OK):
            done = self._drain(partial(self._breach_batch, now=now, leaving=leaving, queues=queues))
            breaches += done.transitioned
            escalated += done.escalated
            notifications += done.notifications
        warned = self._drain(partial(self._warning_batch, now=now, queues=queues))
        result = SweepResult(
            now=now,
            warnings=warned.transitioned,
            breaches=breaches,
            escalated=escalated,
            notifications=notifications + warned.notifications,
        )
        if result.warnings or result.breaches:
            log.info(
                "SLA sweep: %d warning(s), %d breach(es), %d notification(s) queued",
                result.warnings,
                result.breaches,
                result.notifications,
            )
        return result

    def _drain(self, run: Callable[[Session], _Batch]) -> _Batch:
        """Run batches, each in its own transaction, until one comes back short."""
        transitioned = escalated = notifications = 0
        while True:
            with self.db.transaction() as session:
                batch = run(session)
            transitioned += batch.transitioned
            escalated += batch.escalated
            notifications += batch.notifications
            if not batch.more:
                return _Batch(transitioned, escalated, notifications)

    def _candidates(
        self, session: Session, *conditions: ColumnElement[bool], order: Any
    ) -> list[int]:
        """Return (on PostgreSQL, lock) up to one batch of contact ids matching ``conditions``."""
        query = (
            select(Contact.id)
            .where(*conditions)
            .order_by(order)
            .limit(self.batch_size)
            .with_for_update(skip_locked=True)
        )
        return list(session.scalars(query))

    def _transition(
        self,
        session: Session,
        ids: Sequence[int],
        conditions: Iterable[ColumnElement[bool]],
        to: SlaState,
    ) -> list[Row[Any]]:
        """Move ``ids`` still matching ``conditions`` to ``to``; return the rows this call moved."""
        if not ids:
            return []
        statement = (
            update(Contact)
            .where(Contact.id.in_(ids), *conditions)
            .values(sla_state=to.value)
            .returning(*_RETURNED)
            .execution_options(synchronize_session=False)
        )
        return list(session.execute(statement))

    def _breach_batch(
        self,
        session: Session,
        now: datetime,
        leaving: SlaState,
        queues: Mapping[str, QueueInfo],
    ) -> _Batch:
        conditions = (
            Contact.sla_state == leaving.value,
            Contact.due_at <= now,
            Contact.status.in_(_OPEN),
        )
        ids = self._candidates(session, *conditions, order=Contact.due_at)
        rows = self._transition(session, ids, conditions, SlaState.BREACHED)
        if not rows:
            return _Batch(more=len(ids) == self.batch_size)
        accounts = load_accounts(session, {row.account_id for row in rows})
        events: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        outbox: list[dict[str, Any]] = []
        for row in rows:
            assert row.due_at is not None and row.warning_at is not None
            if leaving is SlaState.OK:
                events.append(
                    _event(row.id, row.warning_at, "sla_warning", _sla_data(row, now, late=True))
                )
            events.append(_event(row.id, row.due_at, "sla_breached", _sla_data(row, now)))
            escalation = self.policy.escalations.get(row.sla_policy or "")
            applied = _escalate(row, escalation, queues)
            if applied:
                changes.append(
                    {"id": row.id, "priority": applied["priority"]["to"]}
                    | {"queue_key": applied["queue"]["to"]}
                )
                events.append(
                    _event(row.id, now, "escalated", {"policy": row.sla_policy, **applied})
                )
            payload = notice_payload(EVENT_BREACHED, row, accounts.get(row.account_id or ""), now)
            payload["escalation"] = applied or None
            targets = escalation.notify if escalation else ()
            notify_queues = [row.queue_key]
            if applied and applied["queue"]["to"] != row.queue_key:
                notify_queues.append(applied["queue"]["to"])
            outbox.extend(
                outbox_rows(
                    row, targets, notify_queues, queues, accounts, EVENT_BREACHED, payload, now
                )
            )
        if changes:
            session.execute(update(Contact).execution_options(synchronize_session=False), changes)
        session.execute(insert(ContactEvent), events)
        if outbox:
            session.execute(insert(Notification), outbox)
        return _Batch(
            transitioned=len(rows),
            escalated=len(changes),
            notifications=len(outbox),
            more=len(ids) == self.batch_size,
        )

    def _warning_batch(
        self, session: Session, now: datetime, queues: Mapping[str, QueueInfo]
    ) -> _Batch:
        conditions = (
            Contact.sla_state == SlaState.OK.value,
            Contact.warning_at <= now,
            Contact.due_at > now,
            Contact.status.in_(_OPEN),
        )
        ids = self._candidates(session, *conditions, order=Contact.warning_at)
        rows = self._transition(session, ids, conditions, SlaState.WARNING)
        if not rows:
            return _Batch(more=len(ids) == self.batch_size)
        accounts = load_accounts(session, {row.account_id for row in rows})
        events: list[dict[str, Any]] = []
        outbox: list[dict[str, Any]] = []
        for row in rows:
            assert row.warning_at is not None
            events.append(_event(row.id, row.warning_at, "sla_warning", _sla_data(row, now)))
            escalation = self.policy.escalations.get(row.sla_policy or "")
            payload = notice_payload(EVENT_WARNING, row, accounts.get(row.account_id or ""), now)
            targets = escalation.warn if escalation else ()
            outbox.extend(
                outbox_rows(
                    row, targets, [row.queue_key], queues, accounts, EVENT_WARNING, payload, now
                )
            )
        session.execute(insert(ContactEvent), events)
        if outbox:
            session.execute(insert(Notification), outbox)
        return _Batch(
            transitioned=len(rows),
            notifications=len(outbox),
            more=len(ids) == self.batch_size,
        )


def _escalate(
    row: Row[Any], escalation: EscalationPolicy | None, queues: Mapping[str, QueueInfo]
) -> dict[str, Any]:
    """Work out a breached contact's new priority and queue; empty when nothing changes."""
    if escalation is None:
        return {}
    priority = min(100, row.priority + escalation.raise_priority)
    queue = row.queue_key
    target = queues.get(escalation.queue or "")
    # Only a contact still waiting is moved: one an engineer has accepted stays with them.
    if (
        target is not None
        and target.active
        and row.status == ContactStatus.WAITING.value
        and row.queue_key != target.key
    ):
        queue = target.key
    if priority == row.priority and queue == row.queue_key:
        return {}
    return {
        "priority": {"from": row.priority, "to": priority},
        "queue": {"from": row.queue_key, "to": queue},
    }


def _sla_data(row: Row[Any], now: datetime, *, late: bool = False) -> dict[str, Any]:
    data = {
        "policy": row.sla_policy,
        "severity": row.severity,
        "warning_at": instant_text(row.warning_at),
        "due_at": instant_text(row.due_at),
        "detected_at": now.isoformat(),
    }
    if late:
        # The sweep saw both points pass at once (e.g. after scheduler downtime).
        data["late"] = True
    return data


def _event(contact_id: int, at: datetime, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"contact_id": contact_id, "at": at, "kind": kind, "actor": ACTOR, "data": data}
