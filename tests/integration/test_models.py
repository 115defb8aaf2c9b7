"""Model round-trips on SQLite and PostgreSQL: aware UTC datetimes, JSON, uniqueness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, StatementError

from router.core.pins import pin_hash
from router.store.db import Database
from router.store.models import (
    Account,
    Admin,
    AuditEntry,
    CalendarOverride,
    Contact,
    ContactEvent,
    PinLockout,
    Queue,
    RuleSetVersion,
    StaffUser,
    SupportPin,
)

IST = timezone(timedelta(hours=5, minutes=30))


def add_account(db: Database, account_id: str = "acme", **changes: object) -> None:
    values: dict[str, object] = {
        "id": account_id,
        "name": "Acme",
        "tier": "premium",
        "country": "US",
        "timezone": "America/New_York",
    }
    values.update(changes)
    with db.transaction() as session:
        session.add(Account(**values))


def test_account_admin_pin_round_trip(db: Database) -> None:
    add_account(db, "msp", is_partner=True, attributes={"segment": "mid-market", "seats": 250})
    add_account(db, partner_id="msp", trial_started_at=datetime(2026, 11, 1, 12, 0, tzinfo=IST))
    with db.transaction() as session:
        admin = Admin(account_id="acme", email="alice@acme.example", name="Alice")
        session.add(admin)
        session.flush()
        session.add(
            SupportPin(account_id="acme", admin_id=admin.id, pin_hash=pin_hash("k", "482913"))
        )
    with db.session() as session:
        account = session.get(Account, "acme")
        assert account is not None
        assert account.partner is not None and account.partner.id == "msp"
        assert account.partner.attributes == {"segment": "mid-market", "seats": 250}
        # Stored as UTC, handed back aware, the same instant.
        assert account.trial_started_at == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)
        assert account.trial_started_at.tzinfo is UTC
        assert [a.email for a in account.admins] == ["alice@acme.example"]
        pin = session.scalar(
            select(SupportPin).where(SupportPin.pin_hash == pin_hash("k", "482913"))
        )
        assert pin is not None and pin.account_id == "acme" and pin.admin is not None


def test_naive_datetimes_are_refused(db: Database) -> None:
    with (
        pytest.raises(StatementError, match="naive datetimes are not stored"),
        db.transaction() as session,
    ):
        session.add(
            Account(
                id="x",
                name="X",
                tier="trial",
                country="US",
                timezone="UTC",
                trial_started_at=datetime(2026, 1, 1),
            )
        )
    with db.session() as session:
        assert session.get(Account, "x") is None


def test_tier_is_checked_by_the_database(db: Database) -> None:
    with pytest.raises(IntegrityError):
        add_account(db, tier="gold")


def test_admin_email_is_unique(db: Database) -> None:
    add_account(db)
    add_account(db, "globex", tier="standard")
    with db.transaction() as session:
        session.add(Admin(account_id="acme", email="a@x.example"))
    with pytest.raises(IntegrityError), db.transaction() as session:
        session.add(Admin(account_id="globex", email="a@x.example"))


def test_pin_hash_is_unique_across_accounts(db: Database) -> None:
    add_account(db)
    add_account(db, "globex")
    with db.transaction() as session:
        session.add(SupportPin(account_id="acme", pin_hash=pin_hash("k", "482913")))
    with pytest.raises(IntegrityError), db.transaction() as session:
        session.add(SupportPin(account_id="globex", pin_hash=pin_hash("k", "482913")))


def make_contact(external_id: str = "CA123", **changes: object) -> Contact:
    values: dict[str, object] = {
        "channel": "voice",
        "external_id": external_id,
        "received_at": datetime(2026, 11, 27, 9, 0, tzinfo=UTC),
    }
    values.update(changes)
    return Contact(**values)


def test_contact_round_trip_with_decision_and_timeline(db: Database) -> None:
    add_account(db)
    with db.transaction() as session:
        session.add(Queue(key="cse-windows", name="CSE Windows", team="cse"))
        contact = make_contact(
            account_id="acme",
            tier="premium",
            severity="S1",
            topic="windows",
            queue_key="cse-windows",
            priority=90,
            tags=["phone", "pin-verified"],
            sla_policy="premium",
            sla_state="ok",
            due_at=datetime(2026, 11, 27, 5, 0, tzinfo=timezone(timedelta(hours=-5))),
            decision={"queue": "cse-windows", "trace": [{"rule": "r1", "outcome": "matched"}]},
        )
        session.add(contact)
        session.flush()
        session.add(
            ContactEvent(
                contact_id=contact.id,
                at=contact.received_at,
                kind="received",
                data={"via": "voice"},
            )
        )
        contact_id = contact.id
    with db.session() as session:
        stored = session.get(Contact, contact_id)
        assert stored is not None
        assert stored.reference == f"C-{contact_id}"
        assert stored.due_at == datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
        assert stored.tags == ["phone", "pin-verified"]
        assert stored.decision["trace"][0]["outcome"] == "matched"
        assert [event.kind for event in stored.events] == ["received"]
        assert stored.status == "waiting" and stored.sla_state == "ok"


def test_channel_and_external_id_are_unique_together(db: Database) -> None:
    with db.transaction() as session:
        session.add(make_contact("CA1"))
        session.add(make_contact("CA1", channel="email"))  # same id, other channel: fine
    with pytest.raises(IntegrityError), db.transaction() as session:
        session.add(make_contact("CA1"))


def test_timeline_and_audit_are_append_only(db: Database) -> None:
    with db.transaction() as session:
        contact = make_contact()
        session.add(contact)
        session.flush()
        session.add(ContactEvent(contact_id=contact.id, at=contact.received_at, kind="received"))
        session.add(AuditEntry(actor="cli", action="x", entity_type="t", entity_id="1"))
    with pytest.raises(ValueError, match="append-only"), db.transaction() as session:
        event = session.scalars(select(ContactEvent)).one()
        event.kind = "edited"
    with pytest.raises(ValueError, match="append-only"), db.transaction() as session:
        session.delete(session.scalars(select(AuditEntry)).one())


def test_remaining_tables_round_trip(db: Database) -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    with db.transaction() as session:
        session.add(PinLockout(calling_number="+15555550100", locked_until=now, failures=10))
        session.add(RuleSetVersion(version=1, documents={"rules": [{"id": "default"}]}))
        session.add(CalendarOverride(region="us", day=now.date(), hours=[["10:00", "14:00"]]))
        session.add(StaffUser(email="ops@support.example", role="editor"))
    with db.session() as session:
        lockout = session.get(PinLockout, "+15555550100")
        assert lockout is not None and lockout.locked_until == now
        assert session.get(RuleSetVersion, 1).documents == {"rules": [{"id": "default"}]}  # type: ignore[union-attr]
        override = session.scalars(select(CalendarOverride)).one()
        assert override.day == now.date() and override.hours == [["10:00", "14:00"]]
    with pytest.raises(IntegrityError), db.transaction() as session:
        session.add(StaffUser(email="x@support.example", role="superuser"))
