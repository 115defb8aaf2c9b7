"""The portal's Contact Support form: each tier, the intake checklist, retries, bad input."""

from __future__ import annotations

from datetime import timedelta

import pytest

from router.store.db import Database
from tests.functional.chat.conftest import (
    FRIDAY,
    ISRAEL_SUNDAY,
    Portal,
    counts,
    set_trial_start,
    stored,
)

FORM_KEYS = {"contact_id", "reference", "queue", "sla", "missing"}

COMPLETE = {
    "subject": "Windows agent stopped reporting",
    "description": "Since this morning the agent on 40 machines shows offline.",
    "severity": "S2",
    "category": "break-fix",
    "topic": "windows",
    "troubleshooting": "Restarted the agent service; reinstalled on one machine.",
    "recognised_at": "2026-11-27T08:30:00-05:00",
    "error_messages": ["Agent failed to contact server (code 17)"],
    "resources": "Systems: WIN-PC-01..40; group Finance",
    "attachments": ["C:\\Windows\\Temp\\jcagent.log", "error.png"],
}
BARE = {
    "subject": "Windows agent stopped reporting",
    "description": "It is offline.",
    "topic": "windows",
}


def submit(portal: Portal, body: dict[str, object], **kwargs: object):  # type: ignore[no-untyped-def]
    return portal.post("/portal/requests", body, **kwargs)  # type: ignore[arg-type]


def test_premium_form_with_a_complete_checklist(portal: Portal, db: Database) -> None:
    response = submit(portal, COMPLETE)
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == FORM_KEYS
    assert body["reference"] == f"C-{body['contact_id']}"
    assert body["queue"] == "cse-windows"
    assert body["sla"] == {"policy": "premium", "due_at": "2026-11-27T17:00:00+00:00"}  # S2: 2 h
    assert body["missing"] == []
    contact = stored(db, body["contact_id"])
    assert contact.channel == "portal" and contact.status == "waiting"
    assert contact.checklist == {
        "description": True,
        "troubleshooting": True,
        "recognised_at": True,
        "errors": True,
        "resources": True,
        "agent_logs": True,
    }
    assert "checklist:complete" in contact.tags
    details = contact.events[0].data
    assert details["source"] == "contact_support_form"
    assert details["description"] == COMPLETE["description"]
    assert details["recognised_at"] == "2026-11-27T13:30:00+00:00"
    assert details["attachments"] == COMPLETE["attachments"]
    assert details["resources"] == [COMPLETE["resources"]]


def test_form_with_missing_checklist_items_lists_them(portal: Portal, db: Database) -> None:
    body = submit(portal, BARE).get_json()
    assert body["missing"] == [
        "troubleshooting",
        "recognised_at",
        "errors",
        "resources",
        "agent_logs",
    ]
    assert "checklist:partial" in stored(db, body["contact_id"]).tags


def test_a_screenshot_counts_as_error_evidence_and_directory_asks_for_service_logs(
    portal: Portal,
) -> None:
    body = submit(
        portal,
        {
            "subject": "AD sync stopped",
            "description": "Users are not syncing.",
            "topic": "directory",
            "attachments": ["screen shot.PNG"],
        },
    ).get_json()
    assert body["queue"] == "cse-directory"
    assert body["missing"] == ["troubleshooting", "recognised_at", "resources", "service_logs"]


def test_topic_is_suggested_by_attachments_when_not_chosen(portal: Portal, db: Database) -> None:
    body = submit(
        portal,
        {
            "subject": "Sync problem",
            "description": "Users are missing.",
            "attachments": ["C:\\Program Files\\JumpCloud\\AD Sync\\adsync.log"],
        },
    ).get_json()
    assert body["queue"] == "cse-directory"
    assert "service_logs" not in body["missing"]
    contact = stored(db, body["contact_id"])
    assert contact.topic == "directory" and contact.events[0].data["topic_suggested"] is True
    linux = submit(
        portal,
        {
            "subject": "Agent issue",
            "description": "On our Ubuntu servers the agent stops.",
            "attachments": ["/var/log/jcagent.log"],
        },
    ).get_json()
    assert linux["queue"] == "cse-linux"


def test_standard_form_gets_a_business_hours_sla_any_time(portal: Portal) -> None:
    # Friday evening in Israel: the form is accepted; the clock starts Sunday 09:00 IST.
    body = submit(portal, {**BARE, "severity": "S1"}, admin="bob@globex.example", org="globex")
    assert body.status_code == 201
    assert body.get_json()["queue"] == "cse-windows"
    assert body.get_json()["sla"] == {"policy": "standard", "due_at": "2026-11-29T11:00:00+00:00"}


def test_trial_form_is_queued_without_a_contractual_sla(portal: Portal) -> None:
    body = submit(portal, BARE, admin="carol@initech.example", org="initech").get_json()
    assert body["queue"] == "cse-windows" and body["sla"] is None


def test_non_break_fix_form_goes_to_its_team_without_a_checklist(portal: Portal) -> None:
    body = submit(
        portal,
        {
            "subject": "Invoice question",
            "description": "Our invoice is wrong.",
            "category": "licensing",
        },
        admin="bob@globex.example",
        org="globex",
    ).get_json()
    assert body["queue"] == "account-managers"
    assert body["sla"] is None and body["missing"] == []


@pytest.mark.parametrize(
    ("admin", "org", "trial_words"),
    [
        ("dave@umbrella.example", "umbrella", True),
        ("fred@freeco.example", "freeco", False),
    ],
)
def test_free_tier_form_gets_the_help_center(
    portal: Portal, db: Database, admin: str, org: str, trial_words: bool
) -> None:
    response = submit(portal, COMPLETE, admin=admin, org=org)
    assert response.status_code == 201
    body = response.get_json()
    assert body["mode"] == "help_center"
    assert (body["queue"], body["sla"], body["missing"]) == (None, None, [])
    assert body["help_center"]["links"][0]["url"] == "https://help.example.com"
    assert ("trial has ended" in body["message"]) is trial_words
    assert stored(db, body["contact_id"]).status == "deflected"


def test_trial_day_31_form_is_help_center(portal: Portal, db: Database) -> None:
    set_trial_start(db, "initech", FRIDAY - timedelta(days=31))
    body = submit(portal, BARE, admin="carol@initech.example", org="initech").get_json()
    assert body["mode"] == "help_center"


def test_partner_admin_submits_for_a_managed_account(portal: Portal, db: Database) -> None:
    portal.clock.set(ISRAEL_SUNDAY)
    body = submit(portal, BARE, admin="erin@northwind.example", org="contoso").get_json()
    assert body["queue"] == "cse-windows" and body["sla"]["policy"] == "premium"
    contact = stored(db, body["contact_id"])
    assert contact.account_id == "contoso" and contact.via_partner_id == "northwind"


def test_form_retried_with_the_same_key_is_stored_once(portal: Portal, db: Database) -> None:
    first = submit(portal, COMPLETE, key="form-1")
    again = submit(portal, COMPLETE, key="form-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.get_json() == again.get_json()
    assert counts(db)[0] == 1
    assert submit(portal, BARE, key="form-1").status_code == 422


BAD_FORMS = [
    ({"description": "x"}, "subject", 400),
    ({"subject": "x"}, "description", 400),
    ({**BARE, "category": "gossip"}, "category", 400),
    ({**BARE, "topic": "plumbing"}, "topic", 400),
    ({**BARE, "severity": "urgent"}, "severity", 400),
    ({**BARE, "recognised_at": "yesterday"}, "recognised_at", 400),
    ({**BARE, "recognised_at": "2026-11-27T08:30:00"}, "recognised_at", 400),
    ({**BARE, "recognised_at": 1732700000}, "recognised_at", 400),
    ({**BARE, "attachments": "jcagent.log"}, "attachments", 400),
    ({**BARE, "attachments": [f"f{i}.log" for i in range(21)]}, "attachments", 400),
    ({**BARE, "attachments": [""]}, "attachments[0]", 400),
    ({**BARE, "resources": [1, 2]}, "resources[0]", 400),
    ({**BARE, "troubleshooting": {"steps": 1}}, "troubleshooting", 400),
    ({**BARE, "description": "x" * 20001}, "description", 413),
    ({**BARE, "error_messages": ["x" * 20001]}, "error_messages[0]", 413),
]


def test_bad_forms_are_refused_and_store_nothing(portal: Portal, db: Database) -> None:
    for body, field, status in BAD_FORMS:
        response = submit(portal, body)
        assert response.status_code == status, field
        assert response.get_json()["field"] == field, field
    assert counts(db) == (0, 0)
