"""Contacts through the API: filters, detail with timeline and trace, and staff actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from router.core.domain import Category, Channel, Severity, Topic
from router.runtime import Runtime
from router.services.sla_monitor import SlaMonitor
from router.store.models import AuditEntry, Contact
from tests.functional.api.conftest import ApiClient, make_contact


def events(body: dict[str, Any]) -> list[str]:
    return [event["kind"] for event in body["events"]]


def test_list_filters_and_pages(api: ApiClient, rt: Runtime) -> None:
    now = datetime.now(UTC)
    premium = make_contact(rt, subject="t-list premium", topic=Topic.MAC)
    standard = make_contact(
        rt, admin_email="bob@globex.example", subject="t-list standard", topic=Topic.MAC
    )
    portal = make_contact(
        rt,
        channel=Channel.PORTAL,
        admin_email="priya@hooli.example",
        subject="t-list portal",
        topic=Topic.MAC,
        received_at=now - timedelta(days=2),
    )
    everything = api.get("contacts", role="viewer", query={"q": "t-list"}).get_json()
    assert [c["id"] for c in everything["items"]] == [
        standard.contact_id,
        premium.contact_id,
        portal.contact_id,
    ]
    oldest_first = api.get(
        "contacts", role="viewer", query={"q": "t-list", "sort": "received_at"}
    ).get_json()
    assert oldest_first["items"][0]["id"] == portal.contact_id

    def ids(**query: Any) -> set[int]:
        page = api.get("contacts", role="viewer", query={"q": "t-list", **query}).get_json()
        return {item["id"] for item in page["items"]}

    assert ids(tier="premium") == {premium.contact_id, portal.contact_id}
    assert ids(tier="standard") == {standard.contact_id}
    assert ids(channel="portal") == {portal.contact_id}
    assert ids(account="hooli") == {portal.contact_id}
    assert ids(queue="cse-mac") == {premium.contact_id, standard.contact_id, portal.contact_id}
    assert ids(sla_state="breached") == {portal.contact_id}
    assert ids(sla_state="ok") == {premium.contact_id, standard.contact_id}
    assert ids(status="waiting", severity="S2") == {
        premium.contact_id,
        standard.contact_id,
        portal.contact_id,
    }
    assert ids(received_since=(now - timedelta(hours=1)).isoformat()) == {
        premium.contact_id,
        standard.contact_id,
    }
    paged = api.get("contacts", role="viewer", query={"q": "t-list", "per_page": 2}).get_json()
    assert paged["total"] == 3 and paged["pages"] == 2 and len(paged["items"]) == 2
    second = api.get(
        "contacts", role="viewer", query={"q": "t-list", "per_page": 2, "page": 2}
    ).get_json()
    assert [c["id"] for c in second["items"]] == [portal.contact_id]
    item = everything["items"][1]
    assert item["account_name"] == "Acme Corp" and item["reference"] == f"C-{premium.contact_id}"
    assert item["queue"] == "cse-mac" and item["wait_seconds"] >= 0

    for bad in ({"tier": "gold"}, {"sla_state": "late"}, {"sort": "name"}, {"page": 0}):
        answer = api.get("contacts", role="viewer", query=bad)
        assert answer.status_code == 422, bad
        assert answer.get_json()["errors"]["query"]
    naive = api.get("contacts", role="viewer", query={"received_since": "2026-01-01T00:00:00"})
    assert naive.status_code == 422


def test_detail_has_timeline_decision_and_trace(api: ApiClient, rt: Runtime) -> None:
    result = make_contact(rt, topic=Topic.IDENTITY, severity=Severity.S1)
    answer = api.get(f"contacts/{result.contact_id}", role="viewer")
    body = answer.get_json()
    assert answer.status_code == 200, body
    assert events(body) == ["received", "routed", "sla_started"]
    assert body["matched_rule"] == "break-fix-identity"
    assert body["decision"]["queue"] == "cse-identity"
    assert body["trace"][0]["rule_id"] == "free-tier-help-center"
    assert body["trace"][-1] == {
        "rule_id": "break-fix-identity",
        "outcome": "matched",
        "failed_condition": None,
        "condition_path": None,
    }
    assert body["admin_email"] == "alice@acme.example" and body["sla_policy"] == "premium"
    assert api.get("contacts/987654", role="viewer").status_code == 404


def test_accept_then_first_response_met(api: ApiClient, rt: Runtime) -> None:
    result = make_contact(rt, severity=Severity.S2)
    accepted = api.post(
        f"contacts/{result.contact_id}/accept", role="editor", json={"note": "mine"}
    )
    assert accepted.status_code == 200
    assert accepted.get_json()["status"] == "accepted" and accepted.get_json()["accepted_at"]
    again = api.post(f"contacts/{result.contact_id}/accept", role="editor", json={})
    assert again.status_code == 409 and again.get_json()["status"] == "accepted"

    responded = api.post(f"contacts/{result.contact_id}/first-response", role="editor", json={})
    body = responded.get_json()
    assert responded.status_code == 200, body
    assert body["sla_state"] == "met" and body["first_response_at"]
    assert events(body)[-3:] == ["accepted", "first_response", "sla_met"]
    twice = api.post(f"contacts/{result.contact_id}/first-response", role="editor", json={})
    assert twice.status_code == 409


def test_first_response_after_due_is_missed(api: ApiClient, rt: Runtime) -> None:
    received = datetime.now(UTC) - timedelta(hours=3)
    result = make_contact(rt, severity=Severity.S1, received_at=received)
    early = (received - timedelta(minutes=1)).isoformat()
    refused = api.post(
        f"contacts/{result.contact_id}/first-response", role="editor", json={"at": early}
    )
    assert (
        refused.status_code == 422
        and "before the contact was received" in refused.get_json()["message"]
    )
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (
        api.post(
            f"contacts/{result.contact_id}/first-response", role="editor", json={"at": future}
        ).status_code
        == 422
    )
    # Responded 30 minutes after receipt (before the 1-hour due), recorded late: met.
    at = (received + timedelta(minutes=30)).isoformat()
    met = api.post(f"contacts/{result.contact_id}/first-response", role="editor", json={"at": at})
    assert met.get_json()["sla_state"] == "met"

    late = make_contact(rt, severity=Severity.S1, received_at=received)
    listed = api.get(f"contacts/{late.contact_id}", role="viewer").get_json()
    assert listed["sla_state"] == "breached" and listed["sla_state_recorded"] == "ok"
    missed = api.post(
        f"contacts/{late.contact_id}/first-response", role="editor", json={"note": "sorry"}
    ).get_json()
    assert missed["sla_state"] == "missed"
    assert missed["events"][-2]["data"]["note"] == "sorry"


def test_regrade_recomputes_due_from_the_original_receipt(api: ApiClient, rt: Runtime) -> None:
    received = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    result = make_contact(rt, severity=Severity.S3, received_at=received, topic=Topic.LINUX)
    before = api.get(f"contacts/{result.contact_id}", role="viewer").get_json()
    assert before["due_at"] == (received + timedelta(hours=4)).isoformat()
    regraded = api.post(
        f"contacts/{result.contact_id}/regrade",
        role="editor",
        json={"severity": "S1", "reason": "whole company cannot log in"},
    )
    body = regraded.get_json()
    assert regraded.status_code == 200, body
    assert body["severity"] == "S1"
    assert body["due_at"] == (received + timedelta(hours=1)).isoformat()
    assert body["priority"] > before["priority"]
    assert body["sla_state"] == "ok" and body["sla_state_recorded"] == "ok"
    regrade = body["events"][-1]
    assert regrade["kind"] == "regraded" and regrade["actor"] == "editor@support.example"
    assert regrade["data"]["before"]["severity"] == "S3"
    assert regrade["data"]["reason"] == "whole company cannot log in"

    # Received 50 minutes ago, an S1's warning point (45 minutes) has passed: the clock shows
    # the warning at once, and the SLA sweep records it (and notifies) like any other warning.
    older = make_contact(
        rt, severity=Severity.S3, received_at=received - timedelta(minutes=20), topic=Topic.LINUX
    )
    warned = api.post(
        f"contacts/{older.contact_id}/regrade", role="editor", json={"severity": "S1"}
    ).get_json()
    assert (warned["sla_state"], warned["sla_state_recorded"]) == ("warning", "ok")
    assert events(warned)[-1] == "regraded"
    swept = SlaMonitor(rt.db, rt.policy).sweep(datetime.now(UTC))
    assert swept.warnings == 1
    recorded = api.get(f"contacts/{older.contact_id}", role="viewer").get_json()
    assert recorded["sla_state_recorded"] == "warning" and events(recorded)[-1] == "sla_warning"

    same = api.post(f"contacts/{result.contact_id}/regrade", role="editor", json={"severity": "S1"})
    assert same.status_code == 200 and len(same.get_json()["events"]) == len(body["events"])
    bad = api.post(f"contacts/{result.contact_id}/regrade", role="editor", json={"severity": "S9"})
    assert bad.status_code == 422
    with rt.db.session() as session:
        entry = session.scalar(
            select(AuditEntry).where(
                AuditEntry.action == "contact.regrade",
                AuditEntry.entity_id == str(result.contact_id),
            )
        )
        assert entry is not None and entry.before is not None and entry.after is not None
        assert entry.before["severity"] == "S3" and entry.after["severity"] == "S1"


def test_regrade_in_business_time(api: ApiClient, rt: Runtime) -> None:
    # Globex is Standard in Israel: S2 is 8 business hours, S1 is 4 (Sunday to Thursday, 9-17).
    received = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)  # Thursday 09:00 in Jerusalem
    result = make_contact(
        rt, admin_email="bob@globex.example", severity=Severity.S2, received_at=received
    )
    before = api.get(f"contacts/{result.contact_id}", role="viewer").get_json()
    assert before["due_at"] == "2026-11-26T15:00:00+00:00"  # Thursday 17:00
    body = api.post(
        f"contacts/{result.contact_id}/regrade", role="editor", json={"severity": "S1"}
    ).get_json()
    assert body["due_at"] == "2026-11-26T11:00:00+00:00"  # Thursday 13:00
    assert body["sla_state"] == "breached"
    s3 = api.post(
        f"contacts/{result.contact_id}/regrade", role="editor", json={"severity": "S3"}
    ).get_json()
    # End of the next business day after Thursday is Sunday's close in Israel.
    assert s3["due_at"] == "2026-11-29T15:00:00+00:00"


def test_resolve(api: ApiClient, rt: Runtime) -> None:
    result = make_contact(rt, category=Category.LICENSING, topic=None, severity=Severity.S3)
    resolved = api.post(
        f"contacts/{result.contact_id}/resolve", role="editor", json={"note": "refunded"}
    )
    body = resolved.get_json()
    assert resolved.status_code == 200, body
    assert body["status"] == "resolved" and body["resolved_at"]
    assert body["first_response_at"] is not None  # resolving is a response
    assert events(body)[-1] == "resolved" and body["events"][-1]["data"]["note"] == "refunded"
    for action, payload in [
        ("resolve", {}),
        ("accept", {}),
        ("regrade", {"severity": "S1"}),
        ("first-response", {}),
    ]:
        answer = api.post(f"contacts/{result.contact_id}/{action}", role="editor", json=payload)
        assert answer.status_code == 409, action
    assert api.post("contacts/987654/resolve", role="editor", json={}).status_code == 404
    with rt.db.session() as session:
        contact = session.get(Contact, result.contact_id)
        assert contact is not None and contact.status == "resolved"
