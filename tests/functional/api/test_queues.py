"""Queues through the API: list, create, change, delete guards, and the supervisors' overview."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from router.core.domain import Channel, Severity, Topic
from router.runtime import EXTENSION_KEY, Runtime
from router.services import queues
from router.services.logins import create_staff
from router.store.models import AuditEntry
from tests.functional.api.conftest import ApiClient, current_version, make_contact


def test_list_and_filter_queues(api: ApiClient) -> None:
    page = api.get("queues", role="viewer", query={"per_page": 4}).get_json()
    assert page["per_page"] == 4 and len(page["items"]) == 4 and page["total"] >= 15
    assert page["pages"] == -(-page["total"] // 4)
    assert [q["key"] for q in page["items"]] == sorted(q["key"] for q in page["items"])
    bots = api.get("queues", role="viewer", query={"kind": "bot"}).get_json()
    assert [q["key"] for q in bots["items"]] == ["supportbot"]
    team = api.get("queues", role="viewer", query={"team": "csm"}).get_json()
    assert {q["team"] for q in team["items"]} == {"csm"}
    bad = api.get("queues", role="viewer", query={"kind": "robot"})
    assert bad.status_code == 422 and "kind" in bad.get_json()["errors"]["query"]
    too_many = api.get("queues", role="viewer", query={"per_page": 1000})
    assert too_many.status_code == 422


def test_create_change_and_delete_a_queue(api: ApiClient, rt: Runtime) -> None:
    body = {
        "key": "t-vip",
        "name": "VIP desk",
        "team": "cse",
        "owners": ["Lead@Support.Example"],
        "webhook_url": "https://hooks.example.com/vip",
    }
    created = api.post("queues", role="editor", json=body)
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["owners"] == ["lead@support.example"]
    assert created.get_json()["kind"] == "human" and created.get_json()["active"] is True
    assert api.post("queues", role="editor", json=body).status_code == 409
    for bad in (
        {**body, "key": "Bad Key"},
        {**body, "key": "t-x", "webhook_url": "ftp://example.com"},
        {**body, "key": "t-x", "kind": "robot"},
        {**body, "key": "t-x", "owners": ["not-an-email"]},
        {"key": "t-x", "name": "no team"},
    ):
        answer = api.post("queues", role="editor", json=bad)
        assert answer.status_code == 422, bad
        assert answer.get_json()["errors"]

    detail = api.get("queues/t-vip", role="viewer").get_json()
    assert detail["rules"] == [] and detail["waiting"]["waiting"] == 0

    renamed = api.patch("queues/t-vip", role="editor", json={"name": "VIP desk (EMEA)"})
    assert renamed.status_code == 200 and renamed.get_json()["name"] == "VIP desk (EMEA)"
    assert api.patch("queues/t-vip", role="editor", json={}).status_code == 422
    assert api.patch("queues/nope", role="editor", json={"name": "x"}).status_code == 404

    # A rule routes to it now: it can be neither deactivated nor deleted.
    rule = {
        "id": "t-to-vip",
        "when": {"all": [{"field": "tags", "op": "contains", "value": "t-vip"}]},
        "then": {"queue": "t-vip"},
    }
    api.post("rules", role="editor", json={"base_version": current_version(api), "rule": rule})
    assert api.get("queues/t-vip", role="viewer").get_json()["rules"] == ["t-to-vip"]
    refused = api.patch("queues/t-vip", role="editor", json={"active": False})
    assert refused.status_code == 409 and refused.get_json()["rules"] == ["t-to-vip"]
    assert api.delete("queues/t-vip", role="editor").status_code == 409
    api.delete("rules/t-to-vip", role="editor", query={"base_version": current_version(api)})

    off = api.patch("queues/t-vip", role="editor", json={"active": False})
    assert off.status_code == 200 and off.get_json()["active"] is False
    assert api.delete("queues/t-vip", role="editor").status_code == 204
    assert api.get("queues/t-vip", role="viewer").status_code == 404
    assert api.delete("queues/t-vip", role="editor").status_code == 404

    with rt.db.session() as session:
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.entity_id == "t-vip").order_by(AuditEntry.id)
        ).all()
        update = session.scalar(
            select(AuditEntry).where(
                AuditEntry.entity_id == "t-vip", AuditEntry.action == "queue.update"
            )
        )
        assert update is not None and update.before is not None and update.after is not None
        assert update.before["name"] == "VIP desk" and update.after["name"] == "VIP desk (EMEA)"
    assert actions == ["queue.create", "queue.update", "queue.update", "queue.delete"]


def test_a_queue_contacts_were_routed_to_cannot_be_deleted(api: ApiClient, rt: Runtime) -> None:
    api.post("queues", role="editor", json={"key": "t-used", "name": "Used", "team": "cse"})
    rule = {
        "id": "t-to-used",
        "when": {"all": [{"field": "subject", "op": "contains", "value": "t-used"}]},
        "then": {"queue": "t-used"},
    }
    api.post(
        "rules",
        role="editor",
        json={"base_version": current_version(api), "rule": rule, "position": 0},
    )
    assert make_contact(rt, subject="t-used please").queue == "t-used"
    api.delete("rules/t-to-used", role="editor", query={"base_version": current_version(api)})
    answer = api.delete("queues/t-used", role="editor")
    assert answer.status_code == 409 and "deactivate it instead" in answer.get_json()["message"]


def test_overview_counts_waiting_contacts_and_sla_states(api: ApiClient, rt: Runtime) -> None:
    now = datetime.now(UTC)
    # Premium S1: 1 hour, warning at 45 minutes (calendar time).
    make_contact(
        rt, topic=Topic.DEVICES, severity=Severity.S1, received_at=now - timedelta(hours=2)
    )
    make_contact(
        rt, topic=Topic.DEVICES, severity=Severity.S1, received_at=now - timedelta(minutes=50)
    )
    make_contact(
        rt, topic=Topic.DEVICES, severity=Severity.S1, received_at=now - timedelta(minutes=5)
    )
    accepted = make_contact(rt, topic=Topic.DEVICES, channel=Channel.PORTAL)
    api.post(f"contacts/{accepted.contact_id}/accept", role="editor", json={})

    overview = api.get("queue-overview", role="viewer", query={"per_page": 200}).get_json()
    devices = next(item for item in overview["items"] if item["key"] == "cse-devices")
    assert devices["waiting"] == 3
    assert devices["sla"]["breached"] == 1 and devices["sla"]["warning"] == 1
    assert devices["sla"]["ok"] == 1
    assert 7190 <= devices["oldest_wait_seconds"] <= 7300
    assert devices["name"] == "CSE — Devices (MDM, policies)"
    # Busiest first: a queue with a breach comes before queues without one.
    first_without = next(
        i for i, item in enumerate(overview["items"]) if item["sla"]["breached"] == 0
    )
    assert overview["items"].index(devices) < first_without
    assert overview["totals"]["waiting"] >= 3
    assert overview["totals"]["sla"]["breached"] >= 1
    empty = next(item for item in overview["items"] if item["key"] == "fallback")
    assert empty["waiting"] == 0 and empty["oldest_wait_seconds"] is None

    team = api.get("queue-overview", role="viewer", query={"team": "csm"}).get_json()
    assert [item["key"] for item in team["items"]] == ["csm"]
    detail = api.get("queues/cse-devices", role="viewer").get_json()
    assert detail["waiting"]["waiting"] == 3 and detail["rules"] == ["break-fix-devices"]
    breached = api.get(
        "contacts", role="viewer", query={"queue": "cse-devices", "sla_state": "breached"}
    ).get_json()
    assert breached["total"] == 1


# -- system queues (issue 12, item 17) -----------------------------------------------------------

SYSTEM = {
    "fallback": "Fallback URL",
    "escalations": "SLA policy",
    "help-center": "shipped routing rules",
    "supportbot": "shipped routing rules",
}


def test_system_queues_are_the_ones_the_code_and_policy_need(rt: Runtime) -> None:
    from ivr.machine import FALLBACK_QUEUE

    system = queues.system_queues(rt.policy)
    assert set(SYSTEM) <= set(system)
    assert FALLBACK_QUEUE in system
    assert {e.queue for e in rt.policy.escalations.values() if e.queue} <= set(system)


@pytest.mark.parametrize("key", list(SYSTEM))
def test_system_queues_cannot_be_deleted_or_deactivated(
    api: ApiClient, rt: Runtime, key: str
) -> None:
    rules = api.get("rule-set", role="viewer").get_json()
    # No rule routes to it any more, so only its being a system queue stands in the way.
    others = [rule for rule in rules["rules"] if rule["then"]["queue"] != key]
    for rule in others:
        rule.pop("position")
    if len(others) != len(rules["rules"]):
        replaced = api.put(
            "rule-set", role="editor", json={"base_version": rules["version"], "rules": others}
        )
        assert replaced.status_code == 200, replaced.get_json()
    try:
        assert api.get(f"queues/{key}", role="viewer").get_json()["rules"] == []
        for answer, change in [
            (api.delete(f"queues/{key}", role="editor"), "deleted"),
            (api.patch(f"queues/{key}", role="editor", json={"active": False}), "deactivated"),
        ]:
            assert answer.status_code == 409, answer.get_json()
            message = answer.get_json()["message"]
            assert message.startswith(f"queue '{key}' is a system queue and cannot be {change}: ")
            assert SYSTEM[key] in message
        queue = api.get(f"queues/{key}", role="viewer").get_json()
        assert queue["active"] is True
        # Everything else about it can still change.
        renamed = api.patch(f"queues/{key}", role="editor", json={"name": f"{key} (renamed)"})
        assert renamed.status_code == 200, renamed.get_json()
        api.patch(f"queues/{key}", role="editor", json={"name": queue["name"]})
        with rt.db.session() as session:
            refused = session.scalars(
                select(AuditEntry.action).where(
                    AuditEntry.entity_id == key, AuditEntry.action == "queue.delete"
                )
            ).all()
        assert refused == []
    finally:
        if len(others) != len(rules["rules"]):
            restore = [{k: v for k, v in r.items() if k != "position"} for r in rules["rules"]]
            put_back = api.put(
                "rule-set",
                role="editor",
                json={"base_version": current_version(api), "rules": restore},
            )
            assert put_back.status_code == 200, put_back.get_json()


def test_the_console_says_why_a_system_queue_stays_active(api_app: Flask, api: ApiClient) -> None:
    email, password = "queues-editor@support.example", "queues-editor-password-12"
    create_staff(api_app.extensions[EXTENSION_KEY].db, email, "editor", password=password)
    client = api_app.test_client()

    def csrf(path: str) -> str:
        found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
        assert found
        return found.group(1)

    login = {"email": email, "password": password, "csrf_token": csrf("/console/login")}
    assert client.post("/console/login", data=login).status_code == 302
    page = client.get("/console/queues/manage").text
    assert "system queue (always active)" in page
    toggle = {"action": "toggle", "active": "0", "csrf_token": csrf("/console/queues/manage")}
    for key in SYSTEM:
        answer = client.post(f"/console/queues/manage/{key}", data=toggle)
        assert answer.status_code == 302
        shown = html.unescape(client.get(answer.headers["Location"]).text)
        assert f"queue '{key}' is a system queue and cannot be deactivated" in shown
        assert api.get(f"queues/{key}", role="viewer").get_json()["active"] is True
