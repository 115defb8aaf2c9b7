"""Offers through the API: the caller's own offers, accept and reject (only one's own), and the
assignment explain of a contact."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from router.core.domain import ContactStatus, Presence
from router.runtime import Runtime
from router.services import dispatch
from router.services.logins import create_staff, issue_token
from router.store.models import Contact, Queue
from router.store.models.agents import Agent, AgentSkill
from tests.functional.api.conftest import ApiClient


def agent_with_contacts(rt: Runtime, count: int) -> tuple[str, list[int]]:
    """Make a queue of this test's own, an available agent serving it (a token) and contacts."""
    key = f"q-{uuid.uuid4().hex[:10]}"
    staff = create_staff(rt.db, f"{key}@support.example", "viewer")
    now = datetime.now(UTC)
    with rt.db.transaction() as session:
        session.add(Queue(key=key, name=key, team="t", kind="human"))
        session.add(Agent(staff_user_id=staff.id, presence=Presence.AVAILABLE.value))
        session.flush()
        session.add(AgentSkill(agent_id=staff.id, queue_key=key))
        contacts = [
            Contact(
                channel="email",
                external_id=uuid.uuid4().hex,
                status=ContactStatus.WAITING.value,
                queue_key=key,
                received_at=now,
            )
            for _ in range(count)
        ]
        session.add_all(contacts)
        session.flush()
        ids = [contact.id for contact in contacts]
    for contact_id in ids:
        assert dispatch.dispatch_contact(rt.db, rt.settings, contact_id, now) is not None
    return issue_token(rt.db, staff.email).token, ids


def as_agent(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_agent_sees_and_accepts_their_offer(api: ApiClient, rt: Runtime) -> None:
    token, (contact,) = agent_with_contacts(rt, 1)

    mine = api.call("GET", "agents/me/offers", role=None, headers=as_agent(token))
    assert mine.status_code == 200, mine.get_json()
    (offer,) = mine.get_json()["items"]
    assert (offer["contact_id"], offer["reference"]) == (contact, f"C-{contact}")
    assert 0 < offer["seconds_left"] <= 120
    accept = f"reservations/{offer['reservation_id']}/accept"

    theirs = api.call("POST", accept, role="viewer")
    assert theirs.status_code == 409
    assert theirs.get_json()["reason"] == "not_yours"

    accepted = api.call("POST", accept, role=None, headers=as_agent(token))
    assert accepted.status_code == 200, accepted.get_json()
    assert accepted.get_json()["status"] == "accepted"
    again = api.call("POST", accept, role=None, headers=as_agent(token))
    assert (again.status_code, again.get_json()["reason"]) == (409, "already_accepted")

    explained = api.get(f"contacts/{contact}/assignments", role="viewer")
    assert explained.status_code == 200
    body = explained.get_json()
    assert body["status"] == "accepted"
    assert body["reservations"][0]["explain"]["strategy"] == "longest_idle"


def test_reject_and_unknown_offers(api: ApiClient, rt: Runtime) -> None:
    token, _ = agent_with_contacts(rt, 1)
    (offer,) = api.call("GET", "agents/me/offers", role=None, headers=as_agent(token)).get_json()[
        "items"
    ]

    rejected = api.call(
        "POST", f"reservations/{offer['reservation_id']}/reject", role=None, headers=as_agent(token)
    )
    assert rejected.status_code == 200, rejected.get_json()
    assert rejected.get_json()["status"] == "rejected"
    left = api.call("GET", "agents/me/offers", role=None, headers=as_agent(token))
    assert left.get_json()["items"] == []
    assert api.post("reservations/999999/accept", role="viewer").status_code == 404
    assert api.get("contacts/999999/assignments", role="viewer").status_code == 404


def test_offers_need_an_agent_profile(api: ApiClient, rt: Runtime) -> None:
    staff = create_staff(rt.db, f"{uuid.uuid4().hex[:10]}@support.example", "viewer")
    token = issue_token(rt.db, staff.email).token
    response = api.call("GET", "agents/me/offers", role=None, headers=as_agent(token))
    assert response.status_code == 404
    assert "agent" in response.get_json()["message"]
