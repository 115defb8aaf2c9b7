"""The SLA sweep with a controlled clock: warnings and breaches fire once, at the right instants."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from router.core.domain import ContactStatus, Severity, Topic
from router.services import contact_changes
from router.services.sla_monitor import SlaMonitor
from router.store.models import Contact, ContactEvent
from router.store.models.scheduler import Notification
from tests.integration.scheduler.conftest import CSM, DUTY_MANAGER, WINDOWS_LEAD, World

# Friday 2026-11-27, 15:00 UTC (10:00 in New York).
FRIDAY = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def test_premium_warning_and_breach_fire_once_at_their_instants(world: World) -> None:
    contact_id = world.contact(FRIDAY, severity=Severity.S1)
    contact = world.get(contact_id)
    # Premium S1: one hour of calendar time, warning at 75 %.
    assert contact.warning_at == FRIDAY + timedelta(minutes=45)
    assert contact.due_at == FRIDAY + timedelta(hours=1)
    warning_at, due_at = contact.warning_at, contact.due_at

    assert world.monitor.sweep(warning_at - SECOND).warnings == 0
    assert world.get(contact_id).sla_state == "ok"
    assert world.monitor.sweep(warning_at).warnings == 1
    assert world.get(contact_id).sla_state == "warning"
    assert world.monitor.sweep(warning_at + SECOND).warnings == 0
    assert world.monitor.sweep(due_at - SECOND).breaches == 0
    assert world.monitor.sweep(due_at).breaches == 1
    assert world.get(contact_id).sla_state == "breached"
    again = world.monitor.sweep(due_at + timedelta(hours=5))
    assert (again.warnings, again.breaches, again.notifications) == (0, 0, 0)

    [warning] = world.events(contact_id, "sla_warning")
    [breach] = world.events(contact_id, "sla_breached")
    # The timeline shows when each point was reached; the data, when the sweep saw it.
    assert warning.at == warning_at and breach.at == due_at
    assert breach.actor == "sla-monitor"
    assert breach.data["detected_at"] == due_at.isoformat()
    assert breach.data["policy"] == "premium" and breach.data["severity"] == "S1"


def test_standard_clock_runs_in_business_time_across_a_holiday_and_a_weekend(
    world: World,
) -> None:
    # Thursday 24 December 2026, 12:00 in New York; Friday is Christmas Day, then a weekend.
    received = datetime(2026, 12, 24, 17, 0, tzinfo=UTC)
    contact_id = world.contact(received, admin="sam@initrode.example", severity=Severity.S2)
    contact = world.get(contact_id)
    # S2 = 8 business hours: 5 on Thursday (12-17), none Fri-Sun, 3 on Monday (9-12).
    monday_10 = datetime(2026, 12, 28, 15, 0, tzinfo=UTC)
    monday_12 = datetime(2026, 12, 28, 17, 0, tzinfo=UTC)
    assert (contact.sla_policy, contact.warning_at, contact.due_at) == (
        "standard",
        monday_10,  # 6 business hours = 75 %
        monday_12,
    )
    for quiet in (
        datetime(2026, 12, 24, 22, 0, tzinfo=UTC),  # Thursday's close
        datetime(2026, 12, 25, 18, 0, tzinfo=UTC),  # Christmas Day, midday
        datetime(2026, 12, 27, 18, 0, tzinfo=UTC),  # Sunday
        monday_10 - SECOND,
    ):
        result = world.monitor.sweep(quiet)
        assert (result.warnings, result.breaches) == (0, 0), quiet
    assert world.monitor.sweep(monday_10).warnings == 1
    assert world.monitor.sweep(monday_12 - SECOND).breaches == 0
    assert world.monitor.sweep(monday_12).breaches == 1
    assert world.monitor.sweep(monday_12 + timedelta(days=1)).breaches == 0
    assert [e.at for e in world.events(contact_id, "sla_warning", "sla_breached")] == [
        monday_10,
        monday_12,
    ]


def test_a_first_response_before_due_stops_the_clock(world: World) -> None:
    contact_id = world.contact(FRIDAY, severity=Severity.S2)
    contact = world.get(contact_id)
    assert contact.warning_at is not None and contact.due_at is not None
    world.monitor.sweep(contact.warning_at)
    # Recorded by the staff API (elsewhere): the clock stops as met.
    world.set_contact(
        contact_id, first_response_at=contact.due_at - timedelta(minutes=5), sla_state="met"
    )
    result = world.monitor.sweep(contact.due_at + timedelta(hours=3))
    assert (result.warnings, result.breaches) == (0, 0)
    assert world.get(contact_id).sla_state == "met"
    assert world.events(contact_id, "sla_breached") == []
    assert [n.event for n in world.notifications(contact_id)] == ["sla.warning"]


def test_a_first_response_after_due_is_missed_and_never_breaches_again(world: World) -> None:
    late = world.contact(FRIDAY, severity=Severity.S1)
    swept_late = world.contact(FRIDAY, severity=Severity.S1)
    due = world.get(late).due_at
    assert due is not None
    # One responded late before any sweep ran; the other breached before its response came.
    world.set_contact(swept_late, first_response_at=due + timedelta(minutes=5), sla_state="missed")
    assert world.monitor.sweep(due + timedelta(minutes=6)).breaches == 1
    world.set_contact(late, first_response_at=due + timedelta(minutes=10), sla_state="missed")
    result = world.monitor.sweep(due + timedelta(hours=1))
    assert (result.warnings, result.breaches) == (0, 0)
    assert len(world.events(late, "sla_breached")) == 1
    assert world.events(swept_late, "sla_warning", "sla_breached") == []
    assert world.get(late).sla_state == world.get(swept_late).sla_state == "missed"


def test_a_regraded_contact_fires_at_its_new_instants(world: World) -> None:
    # Received as S3 (4 h), re-graded to S1 (1 h) after 20 minutes: due at receipt + 1 h.
    upgraded = world.contact(FRIDAY, severity=Severity.S3)
    # Received as S1, re-graded to S3 before its warning: the old instants pass silently.
    downgraded = world.contact(FRIDAY, severity=Severity.S1)
    world.monitor.sweep(FRIDAY + timedelta(minutes=20))
    world.set_contact(
        upgraded,
        severity="S1",
        warning_at=FRIDAY + timedelta(minutes=45),
        due_at=FRIDAY + timedelta(hours=1),
    )
    world.set_contact(
        downgraded,
        severity="S3",
        warning_at=FRIDAY + timedelta(hours=3),
        due_at=FRIDAY + timedelta(hours=4),
    )
    result = world.monitor.sweep(FRIDAY + timedelta(hours=1))
    assert (result.warnings, result.breaches) == (0, 1)
    assert world.get(upgraded).sla_state == "breached"
    assert world.get(downgraded).sla_state == "ok"
    # The upgraded one passed both points at once: its warning is on the timeline, marked late.
    [warning] = world.events(upgraded, "sla_warning")
    assert warning.data["late"] is True and warning.at == FRIDAY + timedelta(minutes=45)

    assert world.monitor.sweep(FRIDAY + timedelta(hours=3)).warnings == 1
    assert world.monitor.sweep(FRIDAY + timedelta(hours=4)).breaches == 1
    assert [e.at for e in world.events(downgraded, "sla_warning", "sla_breached")] == [
        FRIDAY + timedelta(hours=3),
        FRIDAY + timedelta(hours=4),
    ]


def test_after_downtime_one_sweep_catches_up_and_notifies_the_breach_only(world: World) -> None:
    contact_id = world.contact(FRIDAY, severity=Severity.S1)
    result = world.monitor.sweep(FRIDAY + timedelta(hours=6))
    assert (result.warnings, result.breaches) == (0, 1)
    assert world.kinds(contact_id)[-3:] == ["sla_warning", "sla_breached", "escalated"]
    assert {n.event for n in world.notifications(contact_id)} == {"sla.breached"}


def test_breach_escalates_as_the_policy_says(world: World) -> None:
    waiting = world.contact(FRIDAY, severity=Severity.S2)  # priority 70 + 10 = 80
    accepted = world.contact(FRIDAY, severity=Severity.S2)
    capped = world.contact(FRIDAY, severity=Severity.S1)  # priority 90 + 20 = 110 -> 100
    world.set_contact(accepted, status=ContactStatus.ACCEPTED.value)
    world.monitor.sweep(FRIDAY + timedelta(hours=2))

    moved = world.get(waiting)
    assert (moved.queue_key, moved.priority, moved.sla_state) == ("escalations", 100, "breached")
    [escalated] = world.events(waiting, "escalated")
    assert escalated.data["priority"] == {"from": 80, "to": 100}
    assert escalated.data["queue"] == {"from": "cse-windows", "to": "escalations"}
    # An engineer already has the accepted one: it keeps its queue, its priority still rises.
    kept = world.get(accepted)
    assert (kept.queue_key, kept.priority) == ("cse-windows", 100)
    assert world.get(capped).priority == 100  # capped

    # Notified: both queues' owners and the CSM, once each.
    assert sorted(n.target for n in world.notifications(waiting)) == sorted(
        [WINDOWS_LEAD, DUTY_MANAGER, CSM]
    )
    # The accepted one stayed put, so only its own queue's owners and the CSM hear of it.
    assert sorted(n.target for n in world.notifications(accepted)) == sorted([WINDOWS_LEAD, CSM])


def test_escalation_is_configurable_per_policy(world: World) -> None:
    escalations = dict(world.policy.escalations)
    escalations.pop("premium")
    policy = dataclasses.replace(world.policy, escalations=escalations)
    contact_id = world.contact(FRIDAY, severity=Severity.S2)
    result = SlaMonitor(world.db, policy).sweep(FRIDAY + timedelta(hours=3))
    assert (result.breaches, result.escalated, result.notifications) == (1, 0, 0)
    contact = world.get(contact_id)
    assert (contact.queue_key, contact.priority, contact.sla_state) == (
        "cse-windows",
        80,
        "breached",
    )
    assert world.events(contact_id, "escalated") == []


def test_an_inactive_escalation_queue_is_not_used(world: World) -> None:
    world.set_queue("escalations", active=False)
    contact_id = world.contact(FRIDAY, severity=Severity.S2)
    world.monitor.sweep(FRIDAY + timedelta(hours=3))
    contact = world.get(contact_id)
    assert (contact.queue_key, contact.priority) == ("cse-windows", 100)


def test_contacts_without_a_clock_are_never_read(world: World) -> None:
    contact_id = world.contact(FRIDAY, severity=Severity.S1)
    world.set_contact(contact_id, sla_state="none")
    result = world.monitor.sweep(FRIDAY + timedelta(days=3))
    assert (result.warnings, result.breaches) == (0, 0)


def test_batches_cover_every_due_contact(world: World) -> None:
    ids = [world.contact(FRIDAY + timedelta(minutes=i), topic=Topic.MAC) for i in range(7)]
    monitor = SlaMonitor(world.db, world.policy, batch_size=2)
    result = monitor.sweep(FRIDAY + timedelta(minutes=50))
    assert result.warnings == 6  # warnings at 45..50 min; the 7th is due to warn at 51
    result = monitor.sweep(FRIDAY + timedelta(hours=2))
    assert (result.warnings, result.breaches) == (0, 7)
    assert all(world.get(i).sla_state == "breached" for i in ids)


def test_overlapping_sweeps_record_each_event_once(world: World) -> None:
    contacts = [world.contact(FRIDAY + timedelta(seconds=i)) for i in range(60)]
    # Small batches and several threads, so the sweeps really interleave.
    monitors = [SlaMonitor(world.db, world.policy, batch_size=7) for _ in range(4)]
    barrier = threading.Barrier(len(monitors))
    errors: list[BaseException] = []

    def sweep(monitor: SlaMonitor, at: datetime) -> None:
        try:
            barrier.wait()
            monitor.sweep(at)
        except BaseException as exc:
            errors.append(exc)

    for at in (FRIDAY + timedelta(minutes=50), FRIDAY + timedelta(hours=2)):
        threads = [threading.Thread(target=sweep, args=(m, at)) for m in monitors]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, errors

    with world.db.session() as session:
        counts = dict(
            session.execute(
                select(ContactEvent.kind, func.count())
                .where(ContactEvent.kind.in_(["sla_warning", "sla_breached", "escalated"]))
                .group_by(ContactEvent.kind)
            ).all()
        )
        duplicates = session.execute(
            select(Notification.contact_id, Notification.event, Notification.target)
            .group_by(Notification.contact_id, Notification.event, Notification.target)
            .having(func.count() > 1)
        ).all()
        priorities = set(session.scalars(select(Contact.priority).where(Contact.id.in_(contacts))))
    assert counts == {"sla_warning": 60, "sla_breached": 60, "escalated": 60}
    assert duplicates == []
    assert priorities == {100}
    assert len(world.notifications()) == 60 * (1 + 3)  # warning: owner; breach: 2 owners + CSM


@pytest.mark.parametrize("index", ["ix_contacts_sla_due", "ix_contacts_sla_warning"])
def test_sweep_queries_use_the_sla_indexes(world: World, index: str) -> None:
    column = "due_at" if index.endswith("due") else "warning_at"
    query = (
        f"SELECT id FROM contacts WHERE sla_state = 'ok' AND {column} <= :now "
        f"ORDER BY {column} LIMIT 500"
    )
    now = FRIDAY.replace(tzinfo=None) if world.db.engine.dialect.name == "sqlite" else FRIDAY
    with world.db.engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            plan = " ".join(
                str(row[-1])
                for row in connection.execute(text(f"EXPLAIN QUERY PLAN {query}"), {"now": now})
            )
        else:
            # A tiny test table is cheapest to scan; ask whether the index serves the query.
            connection.execute(text("SET enable_seqscan = off"))
            plan = " ".join(
                row[0] for row in connection.execute(text(f"EXPLAIN {query}"), {"now": now})
            )
    assert index in plan, plan


def test_a_contact_regraded_through_the_staff_service_fires_at_its_new_due_time(
    world: World,
) -> None:
    contact_id = world.contact(FRIDAY, severity=Severity.S3)  # premium S3: due in 4 h
    world.monitor.sweep(FRIDAY + timedelta(minutes=20))
    contact_changes.regrade_severity(
        world.db,
        world.intake.cache,
        world.policy,
        contact_id,
        Severity.S1,
        actor="lead@support.example",
        now=FRIDAY + timedelta(minutes=20),
        reason="whole company locked out",
    )
    assert world.get(contact_id).due_at == FRIDAY + timedelta(hours=1)
    assert world.monitor.sweep(FRIDAY + timedelta(minutes=44)).warnings == 0
    assert world.monitor.sweep(FRIDAY + timedelta(minutes=45)).warnings == 1
    assert world.monitor.sweep(FRIDAY + timedelta(hours=1)).breaches == 1
    assert world.monitor.sweep(FRIDAY + timedelta(hours=4)).breaches == 0  # the old due time


def test_closed_contacts_never_warn_or_breach(world: World) -> None:
    contact_id = world.contact(FRIDAY, severity=Severity.S1)
    world.set_contact(contact_id, status=ContactStatus.RESOLVED.value)
    result = world.monitor.sweep(FRIDAY + timedelta(hours=3))
    assert (result.warnings, result.breaches) == (0, 0)
    assert world.get(contact_id).sla_state == "ok"
