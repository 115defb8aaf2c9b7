"""Chat through the app: each tier and time case, hand-off, messages, tokens and retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import TimeoutError as PoolTimeout

from channels.chat import sessions
from channels.chat.views import chat_service
from router.store.db import Database
from router.store.models import Admin, Contact, ContactEvent
from tests.functional.chat.conftest import (
    FRIDAY,
    ISRAEL_SUNDAY,
    PORTAL_SECRET,
    YOM_KIPPUR,
    Portal,
    counts,
    raw_token,
    set_trial_start,
    stored,
)

SESSION_KEYS = {
    "contact_id",
    "mode",
    "queue",
    "priority",
    "sla",
    "position",
    "estimated_wait_seconds",
    "message",
}


# -- tiers --------------------------------------------------------------------------------------


def test_premium_chat_is_live_with_an_engineer_queue_and_calendar_sla(
    portal: Portal, db: Database
) -> None:
    response = portal.chat(topic="windows", severity="S1", message="Agent crashes at boot")
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == SESSION_KEYS
    assert body["mode"] == "live" and body["queue"] == "cse-windows"
    assert body["priority"] == 90  # premium 70 + S1 20
    assert body["sla"] == {"policy": "premium", "due_at": "2026-11-27T16:00:00+00:00"}
    assert body["position"] == 0 and body["estimated_wait_seconds"] is None
    assert "engineer will join" in body["message"]
    contact = stored(db, body["contact_id"])
    assert (contact.channel, contact.tier, contact.account_id) == ("chat", "premium", "acme")
    assert contact.admin is not None and contact.admin.email == "alice@acme.example"
    received = contact.events[0]
    assert received.kind == "received"
    assert received.data["message"] == {
        "text": "Agent crashes at boot",
        "format": "text/plain",
        "chars": 21,
    }


def test_premium_chat_is_live_at_night_and_on_a_holiday(portal: Portal) -> None:
    # Thanksgiving, 03:00 in New York: premium is 24x7x365.
    portal.clock.set(datetime(2026, 11, 26, 8, 0, tzinfo=UTC))
    body = portal.chat(topic="identity", severity="S2").get_json()
    assert (body["mode"], body["queue"]) == ("live", "cse-identity")
    assert body["sla"] == {"policy": "premium", "due_at": "2026-11-26T10:00:00+00:00"}


def test_topic_routes_premium_chat_to_its_engineers(portal: Portal) -> None:
    queues = {topic: portal.chat(topic=topic).get_json()["queue"] for topic in ("mac", "other")}
    assert queues == {"mac": "cse-mac", "other": "cse-general"}


def test_standard_chat_starts_with_supportbot(portal: Portal) -> None:
    portal.clock.set(ISRAEL_SUNDAY)
    body = portal.chat(admin="bob@globex.example", org="globex").get_json()
    assert body["mode"] == "bot" and body["queue"] == "supportbot"
    assert body["sla"] is None and body["position"] is None
    assert body["estimated_wait_seconds"] is None
    assert "SupportBot" in body["message"]


@pytest.mark.parametrize(
    ("days", "mode", "queue"), [(29, "live", "trial-chat"), (31, "help_center", None)]
)
def test_trial_chat_on_day_29_is_live_and_on_day_31_is_help_center(
    portal: Portal, db: Database, days: int, mode: str, queue: str | None
) -> None:
    set_trial_start(db, "initech", FRIDAY - timedelta(days=days))
    response = portal.chat(admin="carol@initech.example", org="initech")
    body = response.get_json()
    assert response.status_code == 201
    assert (body["mode"], body["queue"], body["sla"]) == (mode, queue, None)
    contact = stored(db, body["contact_id"])
    if mode == "live":
        assert contact.status == "waiting" and contact.tier == "trial"
        assert body["position"] == 0
    else:
        assert contact.status == "deflected" and contact.tier == "free"
        assert "30-day trial has ended" in body["message"]
        assert body["help_center"]["url"] == "https://help.example.com"


def test_trial_ends_at_exactly_thirty_days(portal: Portal, db: Database) -> None:
    set_trial_start(db, "initech", FRIDAY - timedelta(days=30))
    assert portal.chat(admin="carol@initech.example", org="initech").get_json()["mode"] == (
        "help_center"
    )
    set_trial_start(db, "initech", FRIDAY - timedelta(days=30) + timedelta(seconds=1))
    assert portal.chat(admin="carol@initech.example", org="initech").get_json()["mode"] == "live"


def test_expired_trial_gets_the_help_center_with_links_and_no_queue(
    portal: Portal, db: Database
) -> None:
    body = portal.chat(
        admin="dave@umbrella.example", org="umbrella", topic="mac", subject="MDM enrolment"
    ).get_json()
    assert body["mode"] == "help_center"
    assert (body["queue"], body["sla"], body["position"]) == (None, None, None)
    assert body["estimated_wait_seconds"] is None
    links = body["help_center"]["links"]
    assert links[0] == {"title": "Help Center", "url": "https://help.example.com"}
    assert {
        "title": "Search for “MDM enrolment”",
        "url": "https://help.example.com/search?q=MDM+enrolment",
    } in links
    assert "trial has ended" in body["message"] and "sales" in body["message"]
    contact = stored(db, body["contact_id"])
    assert contact.status == "deflected" and contact.queue_key is None


def test_free_account_gets_the_help_center(portal: Portal) -> None:
    body = portal.chat(admin="fred@freeco.example", org="freeco").get_json()
    assert body["mode"] == "help_center" and body["queue"] is None
    assert "not part of your plan" in body["message"]
    assert "trial" not in body["message"]


def test_partner_admin_chats_for_a_managed_account_with_the_partner_tier(
    portal: Portal, db: Database
) -> None:
    # Contoso is Standard, but Northwind (its MSP) has Premium: the contact takes Premium.
    body = portal.chat(admin="erin@northwind.example", org="contoso", topic="devices").get_json()
    assert (body["mode"], body["queue"]) == ("live", "cse-devices")
    assert body["sla"]["policy"] == "premium"
    contact = stored(db, body["contact_id"])
    assert contact.account_id == "contoso" and contact.via_partner_id == "northwind"
    # Contoso's own admin gets Contoso's tier: SupportBot.
    own = portal.chat(admin="frank@contoso.example", org="contoso").get_json()
    assert own["mode"] == "bot"


def test_partner_admin_cannot_act_for_an_account_it_does_not_manage(
    portal: Portal, db: Database
) -> None:
    response = portal.chat(admin="erin@northwind.example", org="acme")
    assert response.status_code == 401 and response.get_json()["reason"] == "wrong_org"
    assert counts(db) == (0, 0)


# -- standard hand-off ----------------------------------------------------------------------------


def _bot_session(portal: Portal) -> int:
    body = portal.chat(
        admin="bob@globex.example", org="globex", topic="directory", severity="S2"
    ).get_json()
    assert body["mode"] == "bot"
    return int(body["contact_id"])


def _handoff(portal: Portal, contact_id: int, body: object = None):  # type: ignore[no-untyped-def]
    return portal.post(
        f"/chat/sessions/{contact_id}/handoff", body, admin="bob@globex.example", org="globex"
    )


def test_handoff_during_business_hours_is_live_in_standard_chat_with_sla(
    portal: Portal, db: Database
) -> None:
    portal.clock.set(ISRAEL_SUNDAY)
    bot_id = _bot_session(portal)
    portal.clock.set(ISRAEL_SUNDAY + timedelta(minutes=5))
    response = _handoff(portal, bot_id, {"message": "SupportBot did not help"})
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == SESSION_KEYS
    assert (body["mode"], body["queue"]) == ("live", "standard-chat")
    assert body["contact_id"] != bot_id
    # S2 standard: 8 business hours from Sunday 10:05 IST -> Monday 10:05 IST (07:05 UTC).
    assert body["sla"] == {"policy": "standard", "due_at": "2026-11-30T08:05:00+00:00"}
    assert body["position"] == 0
    handed = stored(db, body["contact_id"])
    assert "handoff" in handed.tags and handed.topic == "directory" and handed.severity == "S2"
    assert handed.events[0].data["handoff_from"] == {
        "contact_id": bot_id,
        "reference": f"C-{bot_id}",
    }
    assert handed.events[0].data["message"]["text"] == "SupportBot did not help"
    bot = stored(db, bot_id)
    assert bot.status == "resolved"
    assert bot.events[-1].kind == "handed_off"
    assert bot.events[-1].data["contact_id"] == body["contact_id"]


def test_handoff_after_hours_is_offline_with_next_opening_and_email(
    portal: Portal, db: Database
) -> None:
    # Friday 17:00 in Israel: the weekend (Friday, Saturday) has begun.
    bot_id = _bot_session(portal)
    body = _handoff(portal, bot_id).get_json()
    assert body["mode"] == "offline" and body["queue"] == "standard-chat"
    assert body["next_open_at"] == "2026-11-29T07:00:00+00:00"  # Sunday 09:00 IST
    assert body["continue_by_email"] == {
        "address": "support@example.com",
        "reference": f"C-{body['contact_id']}",
    }
    assert "Sunday 29 November 2026, 09:00 IST" in body["message"]
    assert "support@example.com" in body["message"]
    assert body["estimated_wait_seconds"] is None and body["position"] == 0
    # The contact is kept; its clock starts at the opening: S2 = 8 business hours -> Sunday close.
    assert body["sla"] == {"policy": "standard", "due_at": "2026-11-29T15:00:00+00:00"}
    handed = stored(db, body["contact_id"])
    assert handed.status == "waiting" and handed.sla_started_at == datetime(
        2026, 11, 29, 7, 0, tzinfo=UTC
    )
    # Once the opening comes, the same session reads as a live chat in its queue.
    portal.clock.set(datetime(2026, 11, 29, 7, 30, tzinfo=UTC))
    later = portal.get(
        f"/chat/sessions/{body['contact_id']}", admin="bob@globex.example", org="globex"
    )
    assert later.get_json()["mode"] == "live"


def test_handoff_on_a_regional_holiday_is_offline_until_the_next_working_day(
    portal: Portal,
) -> None:
    portal.clock.set(YOM_KIPPUR)  # a Monday: a working day in Israel, but a public holiday
    bot_id = _bot_session(portal)
    body = _handoff(portal, bot_id).get_json()
    assert body["mode"] == "offline"
    assert body["next_open_at"] == "2026-09-22T06:00:00+00:00"  # Tuesday 09:00 IDT
    assert "Tuesday 22 September 2026, 09:00 IDT" in body["message"]


def test_handoff_is_idempotent_and_messages_follow_it(portal: Portal, db: Database) -> None:
    portal.clock.set(ISRAEL_SUNDAY)
    bot_id = _bot_session(portal)
    first = _handoff(portal, bot_id)
    again = _handoff(portal, bot_id)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json()["contact_id"] == first.get_json()["contact_id"]
    with db.session() as session:
        assert len(session.scalars(select(Contact)).all()) == 2
        assert (
            len(
                session.scalars(select(ContactEvent).where(ContactEvent.kind == "handed_off")).all()
            )
            == 1
        )
    # The widget keeps posting to the session it opened; messages land on the live contact.
    posted = portal.post(
        f"/chat/sessions/{bot_id}/messages",
        {"text": "still there?"},
        admin="bob@globex.example",
        org="globex",
    ).get_json()
    assert posted["contact_id"] == first.get_json()["contact_id"]
    state = portal.get(
        f"/chat/sessions/{bot_id}", admin="bob@globex.example", org="globex"
    ).get_json()
    assert state["mode"] == "live" and state["queue"] == "standard-chat"


def test_message_retry_across_a_handoff_is_stored_once(portal: Portal, db: Database) -> None:
    portal.clock.set(ISRAEL_SUNDAY)
    bot_id = _bot_session(portal)
    path = f"/chat/sessions/{bot_id}/messages"
    bob = {"admin": "bob@globex.example", "org": "globex"}
    first = portal.post(path, {"text": "my agent is stuck"}, key="m-7", **bob)
    _handoff(portal, bot_id)
    again = portal.post(path, {"text": "my agent is stuck"}, key="m-7", **bob)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json() == first.get_json()
    with db.session() as session:
        messages = session.scalars(select(ContactEvent).where(ContactEvent.kind == "message"))
        assert len(messages.all()) == 1


def test_handoff_retry_repairs_a_missing_link(
    portal: Portal, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between intake and the link leaves the bot session open; the retry links it."""
    portal.clock.set(ISRAEL_SUNDAY)
    bot_id = _bot_session(portal)

    def crash(*_args: object) -> None:
        raise RuntimeError("process killed")

    with monkeypatch.context() as patched:
        patched.setattr(sessions, "link_handoff", crash)
        assert _handoff(portal, bot_id).status_code == 500
    assert stored(db, bot_id).status == "waiting"
    retried = _handoff(portal, bot_id)
    assert retried.status_code == 200  # the hand-off contact was already stored
    assert stored(db, bot_id).status == "resolved"


def test_handoff_on_a_live_chat_changes_nothing(portal: Portal, db: Database) -> None:
    opened = portal.chat().get_json()
    response = portal.post(f"/chat/sessions/{opened['contact_id']}/handoff")
    assert response.status_code == 200
    assert response.get_json()["contact_id"] == opened["contact_id"]
    assert counts(db)[0] == 1


def test_handoff_body_is_optional_but_must_be_json(portal: Portal) -> None:
    portal.clock.set(ISRAEL_SUNDAY)
    bot_id = _bot_session(portal)
    bob = {"Authorization": f"Bearer {portal.token('bob@globex.example', 'globex')}"}
    garbage = portal.client.post(f"/chat/sessions/{bot_id}/handoff", data="please", headers=bob)
    assert garbage.status_code == 400 and garbage.get_json()["field"] == "body"
    empty = portal.client.post(f"/chat/sessions/{bot_id}/handoff", headers=bob)
    assert empty.status_code == 201 and empty.get_json()["mode"] == "live"


def test_handoff_on_a_help_center_session_is_refused(portal: Portal) -> None:
    opened = portal.chat(admin="dave@umbrella.example", org="umbrella").get_json()
    response = portal.post(
        f"/chat/sessions/{opened['contact_id']}/handoff",
        admin="dave@umbrella.example",
        org="umbrella",
    )
    assert response.status_code == 409 and response.get_json()["reason"] == "help_center"


# -- messages -----------------------------------------------------------------------------------


def test_messages_are_appended_to_the_timeline_as_plain_text(portal: Portal, db: Database) -> None:
    contact_id = portal.chat().get_json()["contact_id"]
    portal.clock.set(FRIDAY + timedelta(minutes=1))
    text = "<script>alert('x')</script>\r\nLine two\x00\x07 \u202eevil"
    response = portal.post(f"/chat/sessions/{contact_id}/messages", {"text": text})
    assert response.status_code == 201
    body = response.get_json()
    assert body["contact_id"] == contact_id and body["at"] == "2026-11-27T15:01:00+00:00"
    event = stored(db, contact_id).events[-1]
    assert event.kind == "message" and event.actor == "alice@acme.example"
    assert event.data["text"] == "<script>alert('x')</script>\nLine two evil"
    assert event.data["format"] == "text/plain" and event.data["from"] == "customer"
    assert body["message_id"] == event.id


def test_message_size_is_limited(portal: Portal, db: Database) -> None:
    contact_id = portal.chat().get_json()["contact_id"]
    before = counts(db)
    ok = portal.post(f"/chat/sessions/{contact_id}/messages", {"text": "x" * 4000})
    too_long = portal.post(f"/chat/sessions/{contact_id}/messages", {"text": "x" * 4001})
    assert ok.status_code == 201
    assert too_long.status_code == 413
    assert too_long.get_json()["field"] == "text"
    assert "limit is 4000" in too_long.get_json()["message"]
    assert counts(db) == (before[0], before[1] + 1)
    opening = portal.chat(message="y" * 4001)
    assert opening.status_code == 413 and counts(db) == (before[0], before[1] + 1)


def test_message_count_per_session_is_limited(portal: Portal, service, settings) -> None:  # type: ignore[no-untyped-def]
    service.settings = settings.with_overrides(chat_max_messages=2)
    contact_id = portal.chat().get_json()["contact_id"]
    codes = [
        portal.post(f"/chat/sessions/{contact_id}/messages", {"text": f"m{i}"}).status_code
        for i in range(3)
    ]
    assert codes == [201, 201, 429]


BAD_MESSAGES = [
    ({}, "message"),
    ({"text": "   \n "}, "text"),
    ({"text": 42}, "text"),
    (["not", "an", "object"], "body"),
]


def test_bad_messages_are_refused_with_the_field(portal: Portal, db: Database) -> None:
    contact_id = portal.chat().get_json()["contact_id"]
    before = counts(db)
    for body, field in BAD_MESSAGES:
        response = portal.post(f"/chat/sessions/{contact_id}/messages", body)
        assert response.status_code == 400, body
        assert response.get_json()["field"] == field, body
    assert counts(db) == before


def test_messages_to_someone_elses_session_are_not_found(portal: Portal, db: Database) -> None:
    contact_id = portal.chat().get_json()["contact_id"]
    other_admin = portal.post(
        f"/chat/sessions/{contact_id}/messages", {"text": "hi"}, admin="amir@acme.example"
    )
    other_org = portal.post(
        f"/chat/sessions/{contact_id}/messages",
        {"text": "hi"},
        admin="bob@globex.example",
        org="globex",
    )
    missing = portal.post("/chat/sessions/99999/messages", {"text": "hi"})
    assert (other_admin.status_code, other_org.status_code, missing.status_code) == (404, 404, 404)
    assert [e.kind for e in stored(db, contact_id).events if e.kind == "message"] == []


def test_messages_to_a_help_center_session_are_refused(portal: Portal) -> None:
    contact_id = portal.chat(admin="fred@freeco.example", org="freeco").get_json()["contact_id"]
    response = portal.post(
        f"/chat/sessions/{contact_id}/messages",
        {"text": "hi"},
        admin="fred@freeco.example",
        org="freeco",
    )
    assert response.status_code == 409


# -- idempotent retries ---------------------------------------------------------------------------


def test_opening_retried_with_the_same_key_returns_the_first_session(
    portal: Portal, db: Database
) -> None:
    first = portal.chat(key="open-1", message="hello")
    second = portal.chat(key="open-1", message="hello")
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.get_json()["contact_id"] == second.get_json()["contact_id"]
    assert counts(db)[0] == 1
    changed = portal.chat(key="open-1", message="something else")
    assert changed.status_code == 422
    assert changed.get_json()["reason"] == "idempotency_key_reused"
    # The same key from another administrator is another session, never the first one.
    other = portal.chat(admin="amir@acme.example", key="open-1", message="hello")
    assert other.status_code == 201
    assert other.get_json()["contact_id"] != first.get_json()["contact_id"]
    # Without a key, every request is a new session.
    assert portal.chat().get_json()["contact_id"] != portal.chat().get_json()["contact_id"]


def test_message_retried_with_the_same_key_is_stored_once(portal: Portal, db: Database) -> None:
    contact_id = portal.chat().get_json()["contact_id"]
    path = f"/chat/sessions/{contact_id}/messages"
    first = portal.post(path, {"text": "hello"}, key="m-1")
    second = portal.post(path, {"text": "hello"}, key="m-1")
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.get_json() == second.get_json()
    assert portal.post(path, {"text": "changed"}, key="m-1").status_code == 422
    assert len([e for e in stored(db, contact_id).events if e.kind == "message"]) == 1


def test_bad_idempotency_key_is_refused(portal: Portal, db: Database) -> None:
    response = portal.chat(key="x" * 201)
    assert response.status_code == 400 and response.get_json()["field"] == "Idempotency-Key"
    assert counts(db) == (0, 0)


# -- request validation ---------------------------------------------------------------------------


BAD_CHATS = [
    ({"subject": "x"}, "topic", 400),
    ({"topic": "plumbing", "subject": "x"}, "topic", 400),
    ({"topic": "windows"}, "subject", 400),
    ({"topic": "windows", "subject": " \t "}, "subject", 400),
    ({"topic": "windows", "subject": "x", "severity": "S9"}, "severity", 400),
    ({"topic": "windows", "subject": "x", "message": 7}, "message", 400),
    ({"topic": "windows", "subject": "x" * 501}, "subject", 413),
]


def test_bad_chat_requests_are_refused_and_store_nothing(portal: Portal, db: Database) -> None:
    for body, field, status in BAD_CHATS:
        response = portal.post("/chat/sessions", body)
        assert response.status_code == status, body
        assert response.get_json()["field"] == field, body
    assert counts(db) == (0, 0)


def test_non_json_body_is_a_clear_400(portal: Portal, db: Database) -> None:
    response = portal.client.post(
        "/chat/sessions",
        data="topic=windows",
        headers={"Authorization": f"Bearer {portal.token()}", "Content-Type": "text/plain"},
    )
    assert response.status_code == 400
    assert response.get_json()["message"] == "body must be a JSON object"
    assert counts(db) == (0, 0)


def test_severity_forms_are_understood(portal: Portal) -> None:
    priorities = [portal.chat(severity=s).get_json()["priority"] for s in ("1", "sev 2", "s3")]
    assert priorities == [90, 80, 70]


# -- tokens -------------------------------------------------------------------------------------


def _claims(**changes: object) -> dict[str, object]:
    claims: dict[str, object] = {
        "sub": "alice@acme.example",
        "org": "acme",
        "exp": int((FRIDAY + timedelta(minutes=5)).timestamp()),
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


BAD_TOKENS = [
    (
        "expired",
        lambda: raw_token(_claims(exp=int((FRIDAY - timedelta(minutes=2)).timestamp()))),
        "expired",
    ),
    (
        "wrong secret",
        lambda: raw_token(_claims(), secret="another-portal-secret-0123456789abcdef"),
        "bad_signature",
    ),
    (
        "HS512",
        lambda: raw_token(_claims(), algorithm="HS512", secret=PORTAL_SECRET * 2),
        "wrong_algorithm",
    ),
    ("alg none", lambda: raw_token(_claims(), algorithm="none", secret=""), "wrong_algorithm"),
    ("no org", lambda: raw_token(_claims(org=None)), "missing_claim"),
    ("no exp", lambda: raw_token(_claims(exp=None)), "missing_claim"),
    ("garbage", lambda: "not.a.jwt", "malformed_token"),
    ("unknown admin", lambda: raw_token(_claims(sub="mallory@acme.example")), "unknown_admin"),
    ("wrong org", lambda: raw_token(_claims(org="globex")), "wrong_org"),
    ("unknown org", lambda: raw_token(_claims(org="no-such-org")), "wrong_org"),
]


PROTECTED = [
    "/chat/sessions",
    "/portal/requests",
    "/chat/sessions/1/messages",
    "/chat/sessions/1/handoff",
]


@pytest.mark.parametrize(("label", "make", "reason"), BAD_TOKENS, ids=[t[0] for t in BAD_TOKENS])
def test_bad_tokens_get_401_with_a_reason_and_nothing_is_stored(
    portal: Portal,
    db: Database,
    label: str,
    make,
    reason: str,  # type: ignore[no-untyped-def]
) -> None:
    body = {"topic": "windows", "subject": "x", "description": "y", "text": "z"}
    for path in PROTECTED:
        response = portal.post(path, body, token=make())
        assert response.status_code == 401, path
        assert response.get_json()["reason"] == reason, path
        assert response.headers["WWW-Authenticate"].startswith('Bearer realm="portal"')
    assert counts(db) == (0, 0)


def test_inactive_admin_is_refused(portal: Portal, db: Database) -> None:
    with db.transaction() as session:
        admin = session.scalar(select(Admin).where(Admin.email == "alice@acme.example"))
        assert admin is not None
        admin.active = False
    response = portal.chat()
    assert response.status_code == 401 and response.get_json()["reason"] == "inactive_admin"
    assert counts(db) == (0, 0)


def test_a_retry_is_not_answered_to_an_admin_deactivated_since(
    portal: Portal, db: Database
) -> None:
    assert portal.chat(key="retry-after-offboarding").status_code == 201
    with db.transaction() as session:
        admin = session.scalar(select(Admin).where(Admin.email == "alice@acme.example"))
        assert admin is not None
        admin.active = False
    response = portal.chat(key="retry-after-offboarding")
    assert response.status_code == 401 and response.get_json()["reason"] == "inactive_admin"


def test_missing_or_non_bearer_authorization_is_refused(portal: Portal, db: Database) -> None:
    body = {"topic": "windows", "subject": "x"}
    none = portal.client.post("/chat/sessions", json=body)
    basic = portal.client.post("/chat/sessions", json=body, headers={"Authorization": "Basic YTpi"})
    assert (none.status_code, basic.status_code) == (401, 401)
    assert none.get_json()["reason"] == "missing_token"
    assert counts(db) == (0, 0)


def test_clock_skew_within_the_leeway_is_accepted(portal: Portal) -> None:
    token = raw_token(_claims(exp=int((FRIDAY - timedelta(seconds=20)).timestamp())))
    response = portal.post("/chat/sessions", {"topic": "windows", "subject": "x"}, token=token)
    assert response.status_code == 201


def test_token_email_is_matched_case_insensitively(portal: Portal) -> None:
    token = raw_token(_claims(sub="Alice@ACME.example"))
    response = portal.post("/chat/sessions", {"topic": "windows", "subject": "x"}, token=token)
    assert response.status_code == 201


def test_a_full_connection_pool_answers_503_to_retry(
    portal: Portal, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every pooled connection busy past the pool's timeout: retry later, not a 500."""

    def exhausted(*_args: object) -> None:
        raise PoolTimeout("QueuePool limit of size 5 overflow 10 reached")

    service = chat_service(portal.client.application)
    with monkeypatch.context() as patched:
        patched.setattr(service.db, "session", exhausted)
        patched.setattr(service.db, "transaction", exhausted)
        response = portal.chat()
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.get_json()["error"] == "Service Unavailable"
    assert counts(db)[0] == 0
