"""Queue position and estimated wait: serving order, recent waits, and the indexes they use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

from sqlalchemy import text

from router.core.domain import Channel, Severity, Topic
from router.intake import ContactRequest, Sender
from router.runtime import Runtime
from router.services import waiting
from router.store.db import Database
from router.store.models import Contact
from tests.functional.chat.conftest import FRIDAY, Portal

_ids = count(1)


def email(
    rt: Runtime,
    admin: str,
    severity: Severity,
    received_at: datetime,
    topic: Topic = Topic.WINDOWS,
) -> int:
    """Store a routed email contact through the one intake path; return its id."""
    result = rt.intake.intake(
        ContactRequest(
            channel=Channel.EMAIL,
            external_id=f"<q{next(_ids)}@example>",
            received_at=received_at,
            sender=Sender(admin_email=admin),
            subject="agent problem",
            severity=severity,
            topic=topic,
        )
    )
    return result.contact_id


def accept(db: Database, contact_id: int, at: datetime) -> None:
    with db.transaction() as session:
        contact = session.get(Contact, contact_id)
        assert contact is not None
        contact.status = "accepted"
        contact.accepted_at = at


def test_positions_follow_priority_then_age(portal: Portal, rt: Runtime, db: Database) -> None:
    m = timedelta(minutes=1)
    premium_s3 = email(rt, "alice@acme.example", Severity.S3, FRIDAY - 30 * m)  # 70
    standard_s1 = email(rt, "bob@globex.example", Severity.S1, FRIDAY - 20 * m)  # 30 + 20
    premium_s1 = email(rt, "alice@acme.example", Severity.S1, FRIDAY - 10 * m)  # 90
    standard_s3 = email(rt, "bob@globex.example", Severity.S3, FRIDAY - 40 * m)  # 30
    email(rt, "alice@acme.example", Severity.S1, FRIDAY - 50 * m, topic=Topic.MAC)  # other queue

    s2 = portal.chat(severity="S2").get_json()  # 80: only the premium S1 is ahead
    assert (s2["queue"], s2["priority"], s2["position"]) == ("cse-windows", 80, 1)
    portal.clock.set(FRIDAY + m)
    s3 = portal.chat(severity="S3").get_json()  # 70: behind 90, 80 and the older premium S3
    assert (s3["priority"], s3["position"]) == (70, 3)  # premium first: ahead of standard S1
    assert "3 contacts ahead of you" in s3["message"]

    with db.session() as session:
        order = [c.id for c in waiting.waiting_contacts(session, "cse-windows")]
        assert order == [
            premium_s1,
            s2["contact_id"],
            premium_s3,
            s3["contact_id"],
            standard_s1,
            standard_s3,
        ]
        assert waiting.waiting_count(session, "cse-windows") == 6

    # An engineer takes the premium S1: everyone behind it moves up.
    accept(db, premium_s1, FRIDAY + 2 * m)
    state = portal.get(f"/chat/sessions/{s3['contact_id']}").get_json()
    assert state["position"] == 2
    taken = portal.get(f"/chat/sessions/{s2['contact_id']}").get_json()
    assert taken["position"] == 0


def test_estimated_wait_is_the_median_of_recent_waits(
    portal: Portal, rt: Runtime, db: Database
) -> None:
    # Waits of 1, 2 and 10 minutes accepted within the last two hours: the median is 2 minutes.
    for wait, accepted_ago in ((60, 30), (120, 20), (600, 10)):
        accepted_at = FRIDAY - timedelta(minutes=accepted_ago)
        contact_id = email(
            rt, "alice@acme.example", Severity.S3, accepted_at - timedelta(seconds=wait)
        )
        accept(db, contact_id, accepted_at)
    # Outside the window, and in another queue: neither counts.
    old = email(rt, "alice@acme.example", Severity.S3, FRIDAY - timedelta(hours=5))
    accept(db, old, FRIDAY - timedelta(hours=3))
    mac = email(rt, "alice@acme.example", Severity.S3, FRIDAY - timedelta(hours=1), Topic.MAC)
    accept(db, mac, FRIDAY - timedelta(minutes=1))

    body = portal.chat().get_json()
    assert body["estimated_wait_seconds"] == 120
    assert "about 2 minutes" in body["message"]
    with db.session() as session:
        estimate = waiting.estimated_wait(session, "cse-windows", now=FRIDAY)
        assert estimate == waiting.WaitEstimate(
            seconds=120, sample_size=3, window=timedelta(hours=2)
        )
        only_two = waiting.estimated_wait(session, "cse-windows", now=FRIDAY, limit=2)
        assert only_two is not None and only_two.seconds == 360  # the newest two: 10 and 2 min
    # No history in the queue: no estimate.
    linux = portal.chat(topic="linux").get_json()
    assert linux["queue"] == "cse-linux" and linux["estimated_wait_seconds"] is None


def test_wait_counts_from_the_opening_a_business_time_contact_waited_for(
    rt: Runtime, db: Database
) -> None:
    # Bob's email arrives Friday evening in Israel; its clock starts Sunday 09:00 IST (07:00 UTC)
    # and an engineer takes it at 07:05 UTC: it waited 5 minutes of staffed time, not 2 days.
    contact_id = email(rt, "bob@globex.example", Severity.S3, FRIDAY)
    accept(db, contact_id, datetime(2026, 11, 29, 7, 5, tzinfo=UTC))
    with db.session() as session:
        waits = waiting.recent_waits(
            session, "cse-windows", now=datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
        )
    assert waits == [timedelta(minutes=5)]


def test_contacts_received_in_the_same_instant_are_ordered_by_id(rt: Runtime, db: Database) -> None:
    ids = [email(rt, "alice@acme.example", Severity.S3, FRIDAY) for _ in range(3)]
    with db.session() as session:
        stored = [session.get(Contact, i) for i in ids]
        assert [waiting.position(session, c) for c in stored if c] == [0, 1, 2]
        # A contact not stored yet would be served after all three.
        assert (
            waiting.waiting_ahead(session, queue_key="cse-windows", priority=60, received_at=FRIDAY)
            == 3
        )


def test_position_is_none_for_contacts_not_waiting(rt: Runtime, db: Database) -> None:
    contact_id = email(rt, "alice@acme.example", Severity.S3, FRIDAY)
    accept(db, contact_id, FRIDAY)
    with db.session() as session:
        contact = session.get(Contact, contact_id)
        assert contact is not None
        assert waiting.position(session, contact) is None
        assert waiting.standing(session, contact, now=FRIDAY) is None


def test_position_query_uses_the_waiting_index(database_url: str, db: Database) -> None:
    with db.session() as session:
        statement = _ahead_statement(session)
        if database_url.startswith("sqlite"):
            plan = session.execute(text(f"EXPLAIN QUERY PLAN {statement}")).all()
        else:
            # On a near-empty table PostgreSQL rightly prefers a scan; forbid it to see that
            # the index serves the query.
            session.execute(text("SET LOCAL enable_seqscan = off"))
            plan = session.execute(text(f"EXPLAIN {statement}")).all()
    shown = " ".join(str(row) for row in plan)
    if database_url.startswith("sqlite"):
        assert "ix_contacts_queue_waiting" in shown
    else:
        # Without statistics PostgreSQL may pick either queue-led index; both avoid a scan.
        assert "Seq Scan" not in shown and "ix_contacts_queue_" in shown


def _ahead_statement(session: object) -> str:
    """Compile the query waiting_ahead runs, with its values inlined."""
    bound = waiting._AHEAD_OF_STORED.params(
        queue_key="cse-windows", priority=60, received_at=FRIDAY, contact_id=1
    )
    return str(
        bound.compile(
            dialect=session.get_bind().dialect,  # type: ignore[attr-defined]
            compile_kwargs={"literal_binds": True},
        )
    )


def test_wait_window_comes_from_settings(
    portal: Portal,
    service,
    settings,
    rt: Runtime,
    db: Database,  # type: ignore[no-untyped-def]
) -> None:
    contact_id = email(rt, "alice@acme.example", Severity.S3, FRIDAY - timedelta(minutes=30))
    accept(db, contact_id, FRIDAY - timedelta(minutes=5))
    assert portal.chat().get_json()["estimated_wait_seconds"] == 25 * 60
    service.settings = settings.with_overrides(queue_wait_window_minutes=1)
    assert portal.chat().get_json()["estimated_wait_seconds"] is None
