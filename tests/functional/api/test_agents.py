"""Agents through the API: profiles, every bad field named, presence by whom, events, audit."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select, update

from router.runtime import Runtime
from router.services.logins import issue_token
from router.store.models import AuditEntry
from router.store.models.agents import Agent, PresenceEvent
from tests.functional.api.conftest import ApiClient


def new_staff(api: ApiClient, role: str = "viewer") -> tuple[int, str]:
    """Create a staff user of this test's own; return their id and email."""
    email = f"agent-{uuid.uuid4().hex[:10]}@support.example"
    created = api.post("staff", role="admin", json={"email": email, "role": role})
    assert created.status_code == 201, created.get_json()
    return created.get_json()["id"], email


def new_agent(api: ApiClient, role: str = "viewer", **profile: Any) -> tuple[int, str]:
    staff_id, email = new_staff(api, role)
    created = api.post("agents", json={"staff_id": staff_id, **profile})
    assert created.status_code == 201, created.get_json()
    return staff_id, email


def names(body: dict[str, Any], field: str) -> bool:
    """Return whether a 422 names ``field`` (the service's errors, or the request schema's)."""
    errors = body.get("errors") or {}
    return field in errors or field in errors.get("json", {})


def events(rt: Runtime, staff_id: int) -> list[tuple[str, str | None, str]]:
    with rt.db.session() as session:
        rows = session.scalars(
            select(PresenceEvent)
            .where(PresenceEvent.agent_id == staff_id)
            .order_by(PresenceEvent.id)
        )
        return [(event.presence, event.reason, event.actor) for event in rows]


def test_agent_profile_round_trip(api: ApiClient, rt: Runtime) -> None:
    staff_id, email = new_staff(api)
    created = api.post(
        "agents",
        json={
            "staff_id": staff_id,
            "skills": [{"queue": "cse-mac", "level": 3}, {"queue": "standard-chat"}],
            "languages": ["EN", "fr-ca", "en"],
            "voice_endpoint": "+1 202 555 0143",
        },
    )
    body = created.get_json()
    assert created.status_code == 201, body
    assert body["email"] == email and body["presence"] == "offline"
    assert body["skills"] == [
        {"queue": "cse-mac", "level": 3},
        {"queue": "standard-chat", "level": 1},
    ]
    assert body["languages"] == ["en", "fr-CA"]
    assert body["voice_endpoint"] == "+12025550143"
    assert body["capacity"] == {"voice": 1, "chat": 3, "email": 8, "portal": 8}
    assert body["load"] == {"voice": 0, "chat": 0, "email": 0, "portal": 0}

    again = api.post("agents", json={"staff_id": staff_id})
    assert again.status_code == 409
    assert api.post("agents", json={"staff_id": 999999}).status_code == 404

    changed = api.patch(
        f"agents/{staff_id}",
        json={
            "skills": [{"queue": "cse-mac", "level": 1}],
            "capacity": {"chat": 5},
            "voice_endpoint": "client:mac.expert",
        },
    )
    body = changed.get_json()
    assert changed.status_code == 200, body
    assert body["skills"] == [{"queue": "cse-mac", "level": 1}]
    assert body["capacity"]["chat"] == 5 and body["capacity"]["voice"] == 1
    assert body["languages"] == ["en", "fr-CA"]  # untouched
    assert api.get(f"agents/{staff_id}", role="viewer").get_json() == body
    assert api.patch("agents/999999", json={"languages": []}).status_code == 404
    assert api.get("agents/999999", role="viewer").status_code == 404

    listed = api.get("agents", role="viewer", query={"q": email, "queue": "cse-mac"}).get_json()
    assert [agent["id"] for agent in listed["items"]] == [staff_id]
    other_queue = api.get("agents", role="viewer", query={"q": email, "queue": "csm"}).get_json()
    assert other_queue["items"] == []

    with rt.db.session() as session:
        actions = session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.entity_type == "agent", AuditEntry.entity_id == str(staff_id))
            .order_by(AuditEntry.id)
        ).all()
    assert actions == ["agent.create", "agent.update"]


@pytest.mark.parametrize(
    ("profile", "field"),
    [
        ({"skills": [{"queue": "no-such-queue"}]}, "skills"),
        ({"skills": [{"queue": "help-center"}]}, "skills"),  # deflection
        ({"skills": [{"queue": "supportbot"}]}, "skills"),  # bot
        ({"skills": [{"queue": "cse-mac"}, {"queue": "cse-mac", "level": 2}]}, "skills"),
        ({"skills": [{"queue": "cse-mac", "level": 4}]}, "skills"),
        ({"skills": "cse-mac"}, "skills"),
        ({"languages": ["english!"]}, "languages"),
        ({"languages": [f"x{i:02d}" for i in range(21)]}, "languages"),
        ({"languages": "en"}, "languages"),
        ({"capacity": {"voice": 101}}, "capacity"),
        ({"capacity": {"chat": -1}}, "capacity"),
        ({"capacity": {"fax": 1}}, "capacity"),
        ({"voice_endpoint": "+1555"}, "voice_endpoint"),
        ({"voice_endpoint": "12025550143"}, "voice_endpoint"),
        ({"voice_endpoint": "client:"}, "voice_endpoint"),
        ({"voice_endpoint": "client:has space"}, "voice_endpoint"),
        ({"voice_endpoint": "sip:nohost"}, "voice_endpoint"),
        ({"voice_endpoint": "sip:a@b c"}, "voice_endpoint"),
        ({"staff_id": "one"}, "staff_id"),
    ],
)
def test_bad_profile_fields_are_named(
    api: ApiClient, rt: Runtime, profile: dict[str, Any], field: str
) -> None:
    staff_id, _ = new_staff(api)
    created = api.post("agents", json={"staff_id": staff_id, **profile})
    assert created.status_code == 422, created.get_json()
    assert names(created.get_json(), field), created.get_json()
    if field != "staff_id":
        assert api.get(f"agents/{staff_id}").status_code == 404  # nothing half-written
        api.post("agents", json={"staff_id": staff_id})
        changed = api.patch(f"agents/{staff_id}", json=profile)
        assert changed.status_code == 422 and names(changed.get_json(), field), profile


def test_voice_endpoints_accepted(api: ApiClient) -> None:
    staff_id, _ = new_agent(api)
    for given, stored in [
        ("+44 20 7946 0000", "+442079460000"),
        ("client:agent_7.x-y", "client:agent_7.x-y"),
        ("sip:agent@pbx.support.example", "sip:agent@pbx.support.example"),
        (None, None),
    ]:
        changed = api.patch(f"agents/{staff_id}", json={"voice_endpoint": given})
        assert changed.status_code == 200, (given, changed.get_json())
        assert changed.get_json()["voice_endpoint"] == stored


def test_capacity_below_the_load_is_a_conflict(api: ApiClient, rt: Runtime) -> None:
    staff_id, _ = new_agent(api)
    with rt.db.transaction() as session:
        session.execute(update(Agent).where(Agent.staff_user_id == staff_id).values(load_chat=2))
    refused = api.patch(f"agents/{staff_id}", json={"capacity": {"chat": 1}})
    assert refused.status_code == 409
    assert "chat" in refused.get_json()["message"]
    assert api.get(f"agents/{staff_id}").get_json()["capacity"]["chat"] == 3
    assert api.patch(f"agents/{staff_id}", json={"capacity": {"chat": 2}}).status_code == 200


def test_presence_by_the_agent_a_supervisor_and_nobody_else(api: ApiClient, rt: Runtime) -> None:
    # No skills: no waiting contact can be offered to these agents by the dispatcher.
    staff_id, email = new_agent(api)
    own = ApiClient(api.client, {"viewer": issue_token(rt.db, email).token})

    went = own.put(f"agents/{staff_id}/presence", role="viewer", json={"presence": "available"})
    body = went.get_json()
    assert went.status_code == 200, body
    assert body["presence"] == "available" and body["idle_since"] is not None
    again = own.put(f"agents/{staff_id}/presence", role="viewer", json={"presence": "available"})
    assert again.status_code == 200
    assert events(rt, staff_id) == [("available", None, email)]  # the same again: no event

    other, _ = new_agent(api)
    refused = own.put(f"agents/{other}/presence", role="viewer", json={"presence": "away"})
    assert refused.status_code == 403
    assert "needs the editor role" in refused.get_json()["message"]
    assert events(rt, other) == []

    supervised = api.put(
        f"agents/{staff_id}/presence", role="editor", json={"presence": "away", "reason": "lunch"}
    )
    assert supervised.status_code == 200
    assert supervised.get_json()["presence_reason"] == "lunch"
    assert events(rt, staff_id)[-1] == ("away", "lunch", "editor@support.example")

    for bad, field in [
        ({"presence": "busy"}, "presence"),
        ({"presence": "away", "reason": "x" * 101}, "reason"),
        ({}, "presence"),
    ]:
        answer = api.put(f"agents/{staff_id}/presence", role="editor", json=bad)
        assert answer.status_code == 422 and names(answer.get_json(), field), bad
    assert api.put("agents/999999/presence", json={"presence": "away"}).status_code == 404
    staff_only, _ = new_staff(api)  # a staff user without an agent profile
    answer = api.put(f"agents/{staff_only}/presence", json={"presence": "away"})
    assert answer.status_code == 404
    listed = api.get("agents", role="viewer", query={"presence": "away", "q": email})
    assert [agent["id"] for agent in listed.get_json()["items"]] == [staff_id]


def test_going_away_keeps_work_in_hand(api: ApiClient, rt: Runtime) -> None:
    staff_id, _ = new_agent(api)
    with rt.db.transaction() as session:
        session.execute(update(Agent).where(Agent.staff_user_id == staff_id).values(load_email=1))
    came = api.put(f"agents/{staff_id}/presence", role="editor", json={"presence": "available"})
    assert came.get_json()["idle_since"] is None  # has work: not idle
    left = api.put(f"agents/{staff_id}/presence", role="editor", json={"presence": "offline"})
    assert left.get_json()["load"]["email"] == 1
