"""The one intake path: identify, entitle, route and store, idempotently, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from config.policy import Policy
from router.core.domain import Category, Channel, ContactStatus, Severity, Topic
from router.core.entitlement import Access
from router.intake import (
    ContactRequest,
    IdentityError,
    IntakeMode,
    IntakeService,
    Sender,
    StoredContact,
)
from router.services.demo import load_demo_data
from router.services.routing import RoutingCache
from router.store.db import Database
from router.store.models import Contact, ContactEvent
from tests.conftest import TEST_PEPPER

# Friday 2026-11-27, 15:00 UTC: 10:00 in New York (open), 17:00 in Israel (closed: Friday).
NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)


@pytest.fixture
def intake(db: Database, policy: Policy) -> IntakeService:
    load_demo_data(db, policy, TEST_PEPPER, NOW - timedelta(days=1))
    return IntakeService(db, policy, RoutingCache(policy))


SENDER_FIELDS = frozenset(
    {"account_id", "admin_email", "verified", "account_hints", "from_address"}
)


def request(**changes: object) -> ContactRequest:
    values: dict[str, object] = {
        "channel": Channel.EMAIL,
        "external_id": "<m1@acme.example>",
        "received_at": NOW,
        "subject": "Agent fails on Windows",
    }
    sender: dict[str, object] = {"admin_email": "alice@acme.example"}
    for key, value in changes.items():
        (sender if key in SENDER_FIELDS else values)[key] = value
    return ContactRequest(sender=Sender(**sender), **values)  # type: ignore[arg-type]


def stored(db: Database, contact_id: int) -> Contact:
    with db.session() as session:
        contact = session.get(Contact, contact_id)
        assert contact is not None
        _ = (contact.events, contact.admin)  # load before the session closes
        return contact


def test_premium_email_is_routed_with_a_calendar_sla(intake: IntakeService, db: Database) -> None:
    result = intake.intake(request(severity=Severity.S1, topic=Topic.WINDOWS))
    assert result.created and result.status is ContactStatus.WAITING
    assert (result.queue, result.sla_policy) == ("cse-windows", "premium")
    assert result.priority == 90  # premium 70 + S1 20
    assert result.due_at == NOW + timedelta(hours=1)
    contact = stored(db, result.contact_id)
    assert contact.account_id == "acme" and contact.admin is not None
    assert contact.tier == "premium" and contact.sla_state == "ok"
    assert [e.kind for e in contact.events] == ["received", "routed", "sla_started"]
    assert contact.decision["matched_rule"] == "break-fix-windows"
    assert contact.decision["trace"][-1] == {
        "rule_id": "break-fix-windows",
        "outcome": "matched",
        "failed_condition": None,
        "condition_path": None,
    }
    assert contact.decision["attributes"]["in_business_hours"] is True


def test_same_delivery_twice_stores_once(intake: IntakeService, db: Database) -> None:
    first = intake.intake(request())
    second = intake.intake(request(subject="a retried delivery"))
    assert second.contact_id == first.contact_id and not second.created
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Contact)) == 1
        assert session.scalar(select(func.count()).select_from(ContactEvent)) == 3


def test_standard_email_in_israel_on_friday_starts_sunday(intake: IntakeService) -> None:
    result = intake.intake(request(admin_email="bob@globex.example", severity=Severity.S1))
    assert result.sla_policy == "standard" and result.queue == "cse-general"
    # Closed Friday and Saturday; Sunday 2026-11-29 09:00 IST (07:00 UTC) + 4 business hours.
    assert result.due_at == datetime(2026, 11, 29, 11, 0, tzinfo=UTC)


def test_partner_admin_opens_for_a_managed_account_with_the_partner_tier(
    intake: IntakeService, db: Database
) -> None:
    result = intake.intake(
        request(
            admin_email="erin@northwind.example",
            account_id="contoso",
            channel=Channel.CHAT,
            external_id="chat-1",
            topic=Topic.MAC,
        )
    )
    assert result.status is ContactStatus.WAITING
    assert (result.queue, result.sla_policy) == ("cse-mac", "premium")
    contact = stored(db, result.contact_id)
    assert contact.account_id == "contoso" and contact.via_partner_id == "northwind"
    assert contact.tier == "premium"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"admin_email": "mallory@evil.example"}, "not_an_admin"),
        ({"admin_email": "alice@acme.example", "verified": False}, "sender_not_verified"),
        ({"admin_email": "alice@acme.example", "account_id": "globex"}, "not_admin_of_account"),
        ({"admin_email": None, "account_id": None}, "unidentified"),
        ({"admin_email": None, "account_id": "nobody"}, "unknown_account"),
    ],
)
def test_unidentified_contacts_are_kept_as_rejected(
    intake: IntakeService, db: Database, changes: dict[str, object], reason: str
) -> None:
    result = intake.intake(request(**changes))
    assert result.status is ContactStatus.REJECTED and result.reason == reason
    assert result.queue is None and result.due_at is None
    assert [e.kind for e in stored(db, result.contact_id).events] == ["received", "rejected"]


def test_free_tier_is_deflected(intake: IntakeService, db: Database) -> None:
    result = intake.intake(request(admin_email="dave@umbrella.example"))  # trial 45 days ago
    assert result.status is ContactStatus.DEFLECTED and result.access is Access.HELP_CENTER
    assert stored(db, result.contact_id).tier == "free"


def test_standard_chat_goes_to_the_bot_then_offline_handoff(intake: IntakeService) -> None:
    bot = intake.intake(
        request(admin_email="bob@globex.example", channel=Channel.CHAT, external_id="c1")
    )
    assert (bot.access, bot.queue, bot.sla_policy) == (Access.BOT, "supportbot", "none")
    handoff = intake.intake(
        request(
            admin_email="bob@globex.example", channel=Channel.CHAT, external_id="c2", handoff=True
        )
    )
    assert handoff.access is Access.OFFLINE and handoff.queue == "standard-chat"
    assert handoff.next_open_at == datetime(2026, 11, 29, 7, 0, tzinfo=UTC)  # Sunday 09:00 IST
    assert handoff.sla_policy == "standard"


def test_non_break_fix_is_not_sla_bound(intake: IntakeService, db: Database) -> None:
    result = intake.intake(request(category=Category.LICENSING))
    assert (result.queue, result.sla_policy, result.due_at) == ("account-managers", "none", None)
    assert "sla:none" in stored(db, result.contact_id).tags


def test_trial_contacts_are_tagged_sla_none(intake: IntakeService, db: Database) -> None:
    result = intake.intake(request(admin_email="carol@initech.example"))
    assert (result.status, result.due_at) == (ContactStatus.WAITING, None)
    assert "sla:none" in stored(db, result.contact_id).tags
    premium = intake.intake(request(external_id="<m2@acme.example>"))
    assert "sla:none" not in stored(db, premium.contact_id).tags


def test_record_only_contacts_are_not_routed(intake: IntakeService) -> None:
    result = intake.intake(request(mode=IntakeMode.RECORD_ONLY))
    assert result.status is ContactStatus.RECORDED and result.queue is None


def test_voice_pin_identifies_the_account(intake: IntakeService, db: Database) -> None:
    result = intake.intake(
        request(
            channel=Channel.VOICE,
            external_id="CA1",
            admin_email=None,
            account_id="hooli",
            number_region="in",
            severity=Severity.S2,
            category=Category.TRAINING,
        )
    )
    # Hooli bought Professional Services: training goes there, not to the CSMs.
    assert (result.queue, result.sla_policy) == ("professional-services", "none")
    assert stored(db, result.contact_id).region == "in"


def contact_count(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Contact)) or 0)


def test_a_channel_may_refuse_the_unidentified_instead_of_keeping_them(
    intake: IntakeService, db: Database
) -> None:
    with pytest.raises(IdentityError) as refused:
        intake.intake(request(admin_email="nobody@acme.example", mode=IntakeMode.AUTHENTICATED))
    assert refused.value.reason == "not_an_admin" and contact_count(db) == 0
    kept = intake.intake(request(admin_email="nobody@acme.example"))
    assert kept.status is ContactStatus.REJECTED and contact_count(db) == 1


def test_a_follow_up_answers_in_the_same_transaction(intake: IntakeService, db: Database) -> None:
    def queue_and_events(stored: StoredContact) -> tuple[str | None, bool, list[str]]:
        events = stored.session.scalars(
            select(ContactEvent.kind).where(ContactEvent.contact_id == stored.contact.id)
        ).all()
        return (stored.contact.queue_key, stored.result.created, list(events))

    first, seen = intake.intake_with_follow_up(request(topic=Topic.WINDOWS), queue_and_events)
    assert seen == ("cse-windows", True, ["received", "routed", "sla_started"])
    again, seen_again = intake.intake_with_follow_up(request(topic=Topic.WINDOWS), queue_and_events)
    assert again.contact_id == first.contact_id and seen_again[1] is False


def test_an_error_in_the_answer_rolls_the_new_contact_back(
    intake: IntakeService, db: Database
) -> None:
    def fails(_stored: StoredContact) -> None:
        raise RuntimeError("rendering failed")

    with pytest.raises(RuntimeError):
        intake.intake_with_follow_up(request(), fails)
    assert contact_count(db) == 0  # never half-written: no contact without its answer
