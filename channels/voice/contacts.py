"""What a call means for its contact: the request intake opens, and the timeline it leaves."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from channels.voice.calls import CallRecord
from config.policy import Policy
from ivr.machine import (
    QUEUE_RESULT_BRIDGED,
    QUEUE_RESULT_FAILURES,
    QUEUE_RESULT_HANGUP,
    CallState,
    IntakeOutcome,
)
from router.core.domain import Channel, ContactStatus
from router.core.entitlement import Access
from router.intake import ContactRequest, IntakeResult, Sender
from router.services.contact_changes import mark_answered
from router.store.models import Contact, ContactEvent
from router.store.models.voice import IvrCall


def contact_request(
    policy: Policy, row: CallRecord, state: CallState, account_id: str
) -> ContactRequest:
    """Return the contact a verified caller's call asks intake to open."""
    region = policy.regions.get(row.region or "")
    tags = {"voice:ivr"}
    if state.severity_defaulted:
        tags.add("ivr:severity-defaulted")
    if state.topic_defaulted:
        tags.add("ivr:topic-defaulted")
    return ContactRequest(
        channel=Channel.VOICE,
        external_id=row.call_sid,
        received_at=row.created_at,
        sender=Sender(account_id=account_id, from_address=row.from_number),
        subject=f"Phone call to the {region.name if region else 'support'} number",
        severity=state.severity,
        category=state.category,
        topic=state.topic,
        number_region=row.region,
        language=state.voice,
        tags=frozenset(tags),
        # Never digits: what was chosen is in severity/category/topic, not keyed input.
        details={
            "call_sid": row.call_sid,
            "dialled_number": row.to_number,
            "calling_number": row.from_number,
            "severity_source": "default" if state.severity_defaulted else "caller",
            "topic_source": "default" if state.topic_defaulted else "caller",
        },
    )


def intake_outcome(result: IntakeResult) -> IntakeOutcome:
    """Return what intake's answer means for the caller: queued, deflected or failed."""
    if result.status is ContactStatus.WAITING and result.queue:
        return IntakeOutcome.QUEUED
    if result.access in (Access.DENIED, Access.HELP_CENTER):
        return IntakeOutcome.NOT_ENTITLED
    return IntakeOutcome.FAILED


def record_queue_left(
    session: Session, row: IvrCall, result: str, queue_time: int | None, now: datetime
) -> None:
    """Put the queue result on the call's contact timeline; a bridge marks it answered."""
    if row.contact_id is None:
        return
    kind, at = queue_event(result, row.enqueued_at, queue_time, now)
    session.add(
        ContactEvent(
            contact_id=row.contact_id,
            at=at,
            kind=kind,
            actor="twilio",
            data={"queue": row.queue, "queue_result": result, "queue_time_seconds": queue_time},
        )
    )
    contact = session.get(Contact, row.contact_id)
    if kind == "bridged" and contact is not None:
        # An engineer picked up: the call leaves the queue and its clock stops.
        mark_answered(session, contact, at, actor="twilio", now=now)


def record_completed(
    session: Session, row: IvrCall, call_status: str, duration: int | None, now: datetime
) -> None:
    """Put the end of the call on its contact's timeline."""
    if row.contact_id is None:
        return
    session.add(
        ContactEvent(
            contact_id=row.contact_id,
            at=now,
            kind="completed",
            actor="twilio",
            data={
                "call_status": call_status,
                "duration_seconds": duration,
                "queue_result": row.queue_result,
            },
        )
    )


def queue_event(
    result: str, enqueued_at: datetime | None, queue_time: int | None, now: datetime
) -> tuple[str, datetime]:
    """Return the timeline event kind for a queue result and when it happened."""
    if result == QUEUE_RESULT_BRIDGED:
        if enqueued_at is not None and queue_time is not None:
            # Twilio reports a bridge when the conversation ends; it began after QueueTime.
            return "bridged", enqueued_at + timedelta(seconds=queue_time)
        return "bridged", now
    if result == QUEUE_RESULT_HANGUP:
        return "abandoned", now
    if result in QUEUE_RESULT_FAILURES:
        return "queue_failed", now
    return "left_queue", now
