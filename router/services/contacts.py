"""Contacts for staff to read: the filtered list, and one contact with its decision and timeline.

Changes to a contact (accept, first response, resolve, re-grade) are in
router.services.contact_changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, selectinload

from router.core.domain import ContactStatus, SlaState
from router.services.errors import Invalid, NotFound
from router.services.paging import Page, contains_text, query_page
from router.services.queue_overview import effective_sla_state
from router.store.db import Database
from router.store.models import Contact, ContactEvent

SORTS: Mapping[str, Any] = {
    "received_at": Contact.received_at.asc(),
    "-received_at": Contact.received_at.desc(),
    "due_at": Contact.due_at.asc(),
    "-due_at": Contact.due_at.desc(),
    "priority": Contact.priority.asc(),
    "-priority": Contact.priority.desc(),
}


def live_state(contact: Contact, now: datetime) -> str:
    """Return the contact's SLA state at ``now`` (a running clock whose instants passed counts)."""
    state = contact.sla_state
    if state in (SlaState.OK.value, SlaState.WARNING.value):
        if contact.due_at is not None and contact.due_at <= now:
            return SlaState.BREACHED.value
        warned = contact.warning_at is not None and contact.warning_at <= now
        if state == SlaState.OK.value and warned:
            return SlaState.WARNING.value
    return state


@dataclass(frozen=True)
class ContactSummary:
    """A contact's list entry; ``sla_state`` is the state now (a passed due time is breached)."""

    id: int
    reference: str
    channel: str
    status: str
    account_id: str | None
    account_name: str | None
    tier: str | None
    severity: str
    category: str
    topic: str | None
    region: str | None
    queue: str | None
    priority: int
    subject: str | None
    from_address: str | None
    tags: list[str]
    received_at: datetime
    sla_policy: str | None
    warning_at: datetime | None
    due_at: datetime | None
    sla_state: str
    sla_state_recorded: str
    first_response_at: datetime | None
    accepted_at: datetime | None
    resolved_at: datetime | None
    wait_seconds: int | None


@dataclass(frozen=True)
class TimelineEvent:
    """One entry on a contact's timeline."""

    id: int
    at: datetime
    kind: str
    actor: str | None
    data: dict[str, Any]


@dataclass(frozen=True)
class ContactDetail(ContactSummary):
    """A contact with its routing decision, trace and timeline."""

    external_id: str
    admin_email: str | None
    via_partner_id: str | None
    language: str | None
    sla_started_at: datetime | None
    rule_version: int | None
    matched_rule: str | None
    checklist: dict[str, Any]
    # Email: whether the From: address was proven by an aligned SPF/DKIM/DMARC pass, and why.
    sender: dict[str, Any] | None
    decision: dict[str, Any]
    trace: list[dict[str, Any]]
    events: list[TimelineEvent]


def _summary_fields(contact: Contact, now: datetime) -> dict[str, Any]:
    waiting = contact.status == ContactStatus.WAITING.value
    return {
        "id": contact.id,
        "reference": contact.reference,
        "channel": contact.channel,
        "status": contact.status,
        "account_id": contact.account_id,
        "account_name": contact.account.name if contact.account is not None else None,
        "tier": contact.tier,
        "severity": contact.severity,
        "category": contact.category,
        "topic": contact.topic,
        "region": contact.region,
        "queue": contact.queue_key,
        "priority": contact.priority,
        "subject": contact.subject,
        "from_address": contact.from_address,
        "tags": list(contact.tags or []),
        "received_at": contact.received_at,
        "sla_policy": contact.sla_policy,
        "warning_at": contact.warning_at,
        "due_at": contact.due_at,
        "sla_state": live_state(contact, now),
        "sla_state_recorded": contact.sla_state,
        "first_response_at": contact.first_response_at,
        "accepted_at": contact.accepted_at,
        "resolved_at": contact.resolved_at,
        "wait_seconds": max(0, int((now - contact.received_at).total_seconds()))
        if waiting
        else None,
    }


def summary(contact: Contact, now: datetime) -> ContactSummary:
    """Return a contact's list entry."""
    return ContactSummary(**_summary_fields(contact, now))


def timeline_event(event: ContactEvent) -> TimelineEvent:
    """Return a timeline entry."""
    return TimelineEvent(
        id=event.id, at=event.at, kind=event.kind, actor=event.actor, data=dict(event.data or {})
    )


def detail(contact: Contact, now: datetime) -> ContactDetail:
    """Return a contact with its routing decision, trace and timeline."""
    decision = dict(contact.decision or {})
    return ContactDetail(
        **_summary_fields(contact, now),
        external_id=contact.external_id,
        admin_email=contact.admin.email if contact.admin is not None else None,
        via_partner_id=contact.via_partner_id,
        language=contact.language,
        sla_started_at=contact.sla_started_at,
        rule_version=contact.rule_version,
        matched_rule=contact.matched_rule,
        checklist=dict(contact.checklist or {}),
        sender=sender_check(contact),
        decision={key: value for key, value in decision.items() if key != "trace"},
        trace=list(decision.get("trace") or []),
        events=[timeline_event(event) for event in contact.events],
    )


def sender_check(contact: Contact) -> dict[str, Any] | None:
    """Return whether the contact's sender was verified and why (email), else None."""
    for event in contact.events:
        if event.kind == "received":
            found = (event.data or {}).get("sender")
            if isinstance(found, dict):
                return {"verified": found.get("verified") is True, "why": str(found.get("why"))}
            return None
    return None


def _filtered(filters: Mapping[str, Any], now: datetime) -> Select[Any]:
    stmt = select(Contact)
    simple = {
        "queue": Contact.queue_key,
        "channel": Contact.channel,
        "tier": Contact.tier,
        "account": Contact.account_id,
        "status": Contact.status,
        "severity": Contact.severity,
        "category": Contact.category,
        "region": Contact.region,
    }
    for name, column in simple.items():
        value = filters.get(name)
        if value:
            stmt = stmt.where(column == value)
    if filters.get("sla_state"):
        stmt = stmt.where(effective_sla_state(now) == filters["sla_state"])
    if filters.get("received_since") is not None:
        stmt = stmt.where(Contact.received_at >= filters["received_since"])
    if filters.get("received_until") is not None:
        stmt = stmt.where(Contact.received_at < filters["received_until"])
    if filters.get("q"):
        stmt = stmt.where(
            contains_text(
                str(filters["q"]), Contact.subject, Contact.from_address, Contact.external_id
            )
        )
    return stmt


def list_contacts(
    db: Database,
    now: datetime,
    *,
    page: int,
    per_page: int,
    sort: str = "-received_at",
    **filters: Any,
) -> Page[ContactSummary]:
    """Return contacts matching the filters, one page, newest first unless ``sort`` says else."""
    stmt = _filtered(filters, now)
    order = SORTS.get(sort)
    if order is None:
        raise Invalid(f"unknown sort {sort!r}", errors={"sort": [f"one of {', '.join(SORTS)}"]})
    stmt = stmt.options(selectinload(Contact.account)).order_by(order, Contact.id.desc())
    with db.session() as session:
        return query_page(session, stmt, page, per_page).map(lambda row: summary(row, now))


def load_contact(session: Session, contact_id: int) -> Contact:
    """Return a contact with its account, admin and timeline loaded; raise NotFound."""
    contact = session.get(
        Contact,
        contact_id,
        options=[
            selectinload(Contact.account),
            selectinload(Contact.admin),
            selectinload(Contact.events),
        ],
    )
    if contact is None:
        raise NotFound(f"no contact {contact_id}")
    return contact


def get_contact(db: Database, contact_id: int, now: datetime) -> ContactDetail:
    """Return one contact in full."""
    with db.session() as session:
        return detail(load_contact(session, contact_id), now)
