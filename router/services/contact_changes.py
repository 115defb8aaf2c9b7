"""Change a contact: accept it, record its first response, resolve it, re-grade its severity.

Every change is an event on the contact's timeline and an entry in the audit log, written in the
same transaction as the change itself. The channels record a person answering (mark_answered) in
their own transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from config.policy import Policy
from router.core.calendar import BusinessCalendar
from router.core.domain import ContactStatus, Severity, SlaState
from router.core.sla import SlaClock, regrade, start_clock
from router.core.validation import instant_text
from router.services import audit
from router.services.contacts import ContactDetail, detail, load_contact
from router.services.errors import Conflict, Invalid
from router.services.routing import RoutingCache
from router.store.db import Database
from router.store.models import Account, Contact, ContactEvent

OPEN_STATUSES = (ContactStatus.WAITING.value, ContactStatus.ACCEPTED.value)
# A first response stamped a little ahead of the server clock is clock skew, not the future.
CLOCK_SKEW = timedelta(minutes=2)


def _event(contact: Contact, now: datetime, kind: str, actor: str, **data: Any) -> None:
    contact.events.append(ContactEvent(at=now, kind=kind, actor=actor, data=data))


def _audit(
    session: Session,
    contact: Contact,
    action: str,
    actor: str,
    now: datetime,
    before: dict[str, Any],
    after: dict[str, Any],
) -> None:
    audit.record(
        session,
        actor=actor,
        action=action,
        entity_type="contact",
        entity_id=str(contact.id),
        before=before,
        after=after,
        at=now,
    )


def _open(contact: Contact, doing: str) -> None:
    if contact.status not in OPEN_STATUSES:
        raise Conflict(
            f"contact {contact.reference} is {contact.status}; only waiting or accepted "
            f"contacts can be {doing}",
            status=contact.status,
        )


def accept(
    db: Database, contact_id: int, *, actor: str, now: datetime, note: str | None = None
) -> ContactDetail:
    """Take a waiting contact out of its queue for the staff member."""
    with db.transaction() as session:
        contact = load_contact(session, contact_id)
        if contact.status != ContactStatus.WAITING.value:
            raise Conflict(
                f"contact {contact.reference} is {contact.status}, not waiting",
                status=contact.status,
            )
        contact.status = ContactStatus.ACCEPTED.value
        contact.accepted_at = now
        _event(contact, now, "accepted", actor, queue=contact.queue_key, note=note)
        _audit(
            session,
            contact,
            "contact.accept",
            actor,
            now,
            {"status": ContactStatus.WAITING.value},
            {"status": contact.status, "accepted_at": now.isoformat()},
        )
        session.flush()
        return detail(contact, now)


def _stop_clock(
    contact: Contact, at: datetime, actor: str, now: datetime, note: str | None = None
) -> str:
    """Record the first response at ``at``; return the SLA state it leaves."""
    contact.first_response_at = at
    old = contact.sla_state
    if contact.due_at is not None and contact.sla_started_at is not None:
        clock = _clock(contact)
        new = clock.state(now, at).value
    else:
        new = old
    contact.sla_state = new
    _event(contact, now, "first_response", actor, at=at.isoformat(), sla_state=new, note=note)
    if new != old:
        _event(
            contact,
            now,
            f"sla_{new}",
            actor,
            due_at=instant_text(contact.due_at),
            responded_at=instant_text(at),
        )
    return new


def mark_answered(
    session: Session,
    contact: Contact,
    at: datetime,
    *,
    actor: str,
    now: datetime,
    accept: bool = True,
) -> None:
    """Record in the caller's transaction that a person answered a contact at ``at``.

    With ``accept`` a waiting contact leaves its queue (an engineer picked up the call); and,
    unless one is already recorded, this was its first response, which stops the SLA clock (an
    answered contact must not warn, breach or escalate).
    Events are added without loading the timeline, so a voice webhook stays a few statements.
    """
    events: list[tuple[str, dict[str, Any]]] = []
    if accept and contact.status == ContactStatus.WAITING.value:
        contact.status = ContactStatus.ACCEPTED.value
        contact.accepted_at = at
        events.append(("accepted", {"queue": contact.queue_key, "at": at.isoformat()}))
    if contact.first_response_at is None:
        contact.first_response_at = at
        old = contact.sla_state
        if contact.due_at is not None and contact.sla_started_at is not None:
            contact.sla_state = _clock(contact).state(now, at).value
        events.append(("first_response", {"at": at.isoformat(), "sla_state": contact.sla_state}))
        if contact.sla_state != old:
            events.append(
                (
                    f"sla_{contact.sla_state}",
                    {"due_at": instant_text(contact.due_at), "responded_at": instant_text(at)},
                )
            )
    session.add_all(
        ContactEvent(contact_id=contact.id, at=now, kind=kind, actor=actor, data=data)
        for kind, data in events
    )


def _clock(contact: Contact) -> SlaClock:
    assert contact.sla_started_at is not None
    assert contact.warning_at is not None and contact.due_at is not None
    return SlaClock(
        policy=contact.sla_policy or "",
        severity=Severity(contact.severity),
        received_at=contact.received_at,
        started_at=contact.sla_started_at,
        warning_at=contact.warning_at,
        due_at=contact.due_at,
    )


def record_first_response(
    db: Database,
    contact_id: int,
    *,
    actor: str,
    now: datetime,
    at: datetime | None = None,
    note: str | None = None,
) -> ContactDetail:
    """Record the first response (stops the SLA clock: met or missed)."""
    at = at or now
    with db.transaction() as session:
        contact = load_contact(session, contact_id)
        _open(contact, "responded to")
        if contact.first_response_at is not None:
            raise Conflict(
                f"contact {contact.reference} already has its first response "
                f"({contact.first_response_at.isoformat()})"
            )
        if at < contact.received_at:
            raise Invalid(
                "the first response cannot be before the contact was received",
                errors={"at": [f"must be at or after {contact.received_at.isoformat()}"]},
            )
        if at > now + CLOCK_SKEW:
            raise Invalid("the first response cannot be in the future", errors={"at": ["future"]})
        before = {"first_response_at": None, "sla_state": contact.sla_state}
        state = _stop_clock(contact, at, actor, now, note)
        _audit(
            session,
            contact,
            "contact.first_response",
            actor,
            now,
            before,
            {"first_response_at": at.isoformat(), "sla_state": state},
        )
        session.flush()
        return detail(contact, now)


def resolve(
    db: Database, contact_id: int, *, actor: str, now: datetime, note: str | None = None
) -> ContactDetail:
    """Resolve a contact; resolving also counts as the first response if none was recorded."""
    with db.transaction() as session:
        contact = load_contact(session, contact_id)
        _open(contact, "resolved")
        before = {"status": contact.status, "sla_state": contact.sla_state}
        if contact.first_response_at is None:
            _stop_clock(contact, now, actor, now, "resolved")
        contact.status = ContactStatus.RESOLVED.value
        contact.resolved_at = now
        _event(contact, now, "resolved", actor, note=note)
        _audit(
            session,
            contact,
            "contact.resolve",
            actor,
            now,
            before,
            {"status": contact.status, "sla_state": contact.sla_state, "note": note},
        )
        session.flush()
        return detail(contact, now)


def _calendar(
    session: Session, cache: RoutingCache, policy: Policy, contact: Contact
) -> BusinessCalendar:
    day = contact.received_at.date()
    account = session.get(Account, contact.account_id) if contact.account_id else None
    if account is not None:
        return cache.account_calendar(session, account, day)
    region = contact.region if contact.region in policy.regions else policy.default_region
    return cache.region_calendar(session, region or policy.default_region, day)


_RUNNING = (SlaState.OK, SlaState.WARNING, SlaState.BREACHED)


def _regraded_state(old: SlaState, computed: SlaState) -> SlaState:
    """Return the state a re-graded clock takes now.

    A running clock may step back (a later due time un-breaches it), but a step forward is left
    to the SLA sweep, so a breach caused by a re-grade is escalated and notified like any other.
    """
    if computed not in _RUNNING:
        return computed  # met or missed: the first response is already recorded
    current = old if old in _RUNNING else SlaState.OK
    return computed if _RUNNING.index(computed) <= _RUNNING.index(current) else current


def regrade_severity(
    db: Database,
    cache: RoutingCache,
    policy: Policy,
    contact_id: int,
    severity: Severity,
    *,
    actor: str,
    now: datetime,
    reason: str | None = None,
) -> ContactDetail:
    """Change a contact's severity; the due time is recomputed from the original receipt time.

    Priority moves by the difference between the two severities' boosts, so a re-grade to S1
    is served ahead as an S1 received would be; a recorded first response is judged against the
    new due time.
    """
    with db.transaction() as session:
        contact = load_contact(session, contact_id)
        _open(contact, "re-graded")
        old = Severity(contact.severity)
        if old is severity:
            return detail(contact, now)
        before = {
            "severity": old.value,
            "priority": contact.priority,
            "due_at": instant_text(contact.due_at),
            "sla_state": contact.sla_state,
        }
        boost = policy.severities[severity].priority_boost
        boost -= policy.severities[old].priority_boost
        contact.severity = severity.value
        contact.priority = max(0, min(100, contact.priority + boost))
        sla_policy = policy.sla_policies.get(contact.sla_policy or "")
        old_state = contact.sla_state
        if sla_policy is not None:
            calendar = _calendar(session, cache, policy, contact)
            if contact.due_at is not None and contact.sla_started_at is not None:
                clock = regrade(_clock(contact), severity, sla_policy, calendar)
            else:
                clock = start_clock(sla_policy, severity, contact.received_at, calendar)
            if clock is None:
                contact.sla_started_at = contact.warning_at = contact.due_at = None
                contact.sla_state = SlaState.NONE.value
            else:
                contact.sla_started_at = clock.started_at
                contact.warning_at = clock.warning_at
                contact.due_at = clock.due_at
                contact.sla_state = _regraded_state(
                    SlaState(old_state), clock.state(now, contact.first_response_at)
                ).value
        after = {
            "severity": severity.value,
            "priority": contact.priority,
            "due_at": instant_text(contact.due_at),
            "sla_state": contact.sla_state,
        }
        _event(contact, now, "regraded", actor, reason=reason, before=before, after=after)
        if contact.sla_state != old_state:
            _event(
                contact, now, f"sla_{contact.sla_state}", actor, due_at=instant_text(contact.due_at)
            )
        _audit(session, contact, "contact.regrade", actor, now, before, {**after, "reason": reason})
        session.flush()
        return detail(contact, now)
