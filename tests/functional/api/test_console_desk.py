"""The agent's desk and the supervisor's agents page in the console, over HTTP (no browser)."""

from __future__ import annotations

import html
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from router.core.domain import ContactStatus
from router.runtime import Runtime
from router.services import dispatch
from router.services.logins import create_staff
from router.store.models import Contact, Queue
from router.store.models.agents import Agent, AgentSkill, PresenceEvent
from tests.functional.api.test_console_http import token_of

PASSWORD = "desk-password-1234"


@dataclass(frozen=True)
class Desk:
    """A test's own queue, an offline agent serving it, and their logged-in console client."""

    client: FlaskClient
    staff_id: int
    email: str
    queue: str


def log_in(app: Flask, email: str) -> FlaskClient:
    client = app.test_client()
    answer = client.post(
        "/console/login",
        data={"email": email, "password": PASSWORD, "csrf_token": token_of(client)},
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)
    return client


def an_agent(app: Flask, rt: Runtime) -> Desk:
    key = f"q-{uuid.uuid4().hex[:10]}"
    staff = create_staff(rt.db, f"{key}@support.example", "viewer", password=PASSWORD)
    with rt.db.transaction() as session:
        session.add(Queue(key=key, name=key, team="t", kind="human"))
        session.add(Agent(staff_user_id=staff.id))
        session.flush()
        session.add(AgentSkill(agent_id=staff.id, queue_key=key))
    return Desk(log_in(app, staff.email), staff.id, staff.email, key)


def waiting_contact(rt: Runtime, queue: str) -> int:
    with rt.db.transaction() as session:
        contact = Contact(
            channel="email",
            external_id=uuid.uuid4().hex,
            status=ContactStatus.WAITING.value,
            queue_key=queue,
            received_at=datetime.now(UTC),
        )
        session.add(contact)
        session.flush()
        return contact.id


def post(client: FlaskClient, path: str, **data: str) -> str:
    """Post a console form from the desk (its CSRF token); return the page it leads to."""
    answer = client.post(path, data={"csrf_token": token_of(client, "/console/desk"), **data})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    assert answer.headers["Location"] == "/console/desk"
    return html.unescape(client.get("/console/desk").get_data(as_text=True))


def section(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}".*?</table>', page, re.S)
    assert found, element_id
    return found.group(0)


def offered(rt: Runtime, desk: Desk) -> tuple[int, int]:
    """Go available, have a new contact offered to the agent; return (contact, reservation)."""
    page = post(desk.client, "/console/desk/presence", presence="available", reason="")
    assert 'id="presence-now">available<' in page
    contact = waiting_contact(rt, desk.queue)
    reservation = dispatch.dispatch_contact(rt.db, rt.settings, contact, datetime.now(UTC))
    assert reservation is not None
    return contact, reservation


def test_an_agent_goes_available_and_accepts_an_offer(api_app: Flask, rt: Runtime) -> None:
    desk = an_agent(api_app, rt)
    first = desk.client.get("/console/desk")
    assert first.status_code == 200
    assert '<meta http-equiv="refresh" content="5">' in first.get_data(as_text=True)
    contact, reservation = offered(rt, desk)

    page = desk.client.get("/console/desk").get_data(as_text=True)
    offers = section(page, "offers")
    assert f"C-{contact}" in offers and desk.queue in offers
    assert f"/console/desk/offers/{reservation}/accept" in offers

    page = post(desk.client, f"/console/desk/offers/{reservation}/accept")
    assert f"Accepted C-{contact}." in page
    assert "No open offers." in section(page, "offers")
    assert f"/console/contacts/{contact}" in section(page, "my-work")
    with rt.db.session() as session:
        stored = session.get(Contact, contact)
        assert stored is not None
        assert (stored.status, stored.assigned_agent_id) == ("accepted", desk.staff_id)

    # Accepting again is refused with the reason, as a message on the desk (never a 500).
    page = post(desk.client, f"/console/desk/offers/{reservation}/accept")
    assert "this offer is already accepted" in page

    # The contact page explains the assignment: the offer, its agent and the candidates.
    contact_page = desk.client.get(f"/console/contacts/{contact}")
    assert contact_page.status_code == 200
    explain = section(contact_page.get_data(as_text=True), "assignment-explain")
    assert desk.email in explain and "accepted" in explain and "chosen" in explain
    assert "longest_idle" in explain


def test_an_agent_rejects_an_offer(api_app: Flask, rt: Runtime) -> None:
    desk = an_agent(api_app, rt)
    contact, reservation = offered(rt, desk)

    page = post(desk.client, f"/console/desk/offers/{reservation}/reject")
    assert f"Passed on C-{contact}." in page
    assert "No open offers." in section(page, "offers")
    assert "Nothing assigned to you." in section(page, "my-work")
    with rt.db.session() as session:
        stored = session.get(Contact, contact)
        assert stored is not None
        assert (stored.status, stored.assigned_agent_id) == ("waiting", None)
    page = post(desk.client, f"/console/desk/offers/{reservation}/accept")
    assert "this offer is already rejected" in page
    page = post(desk.client, "/console/desk/offers/2147483647/reject")
    assert "no reservation 2147483647" in page


def test_presence_switch_stores_events(api_app: Flask, rt: Runtime) -> None:
    desk = an_agent(api_app, rt)
    page = post(desk.client, "/console/desk/presence", presence="away", reason="lunch")
    assert 'id="presence-now">away<' in page and "(lunch)" in page
    page = post(desk.client, "/console/desk/presence", presence="busy")
    assert "invalid fields" in page and 'id="presence-now">away<' in page
    with rt.db.session() as session:
        events = session.scalars(
            select(PresenceEvent).where(PresenceEvent.agent_id == desk.staff_id)
        ).all()
        assert [(e.presence, e.reason, e.actor) for e in events] == [("away", "lunch", desk.email)]
    # An agent is not a supervisor (a viewer here).
    assert desk.client.get("/console/agents").status_code == 403


def test_supervisor_view_and_a_desk_without_an_agent_profile(api_app: Flask, rt: Runtime) -> None:
    agent = an_agent(api_app, rt)
    _, reservation = offered(rt, agent)
    email = f"sup-{uuid.uuid4().hex[:10]}@support.example"
    create_staff(rt.db, email, "editor", password=PASSWORD)
    supervisor = log_in(api_app, email)

    desk = supervisor.get("/console/desk")
    assert desk.status_code == 200
    body = desk.get_data(as_text=True)
    assert 'id="not-an-agent"' in body and "http-equiv" not in body
    assert 'method="post"' not in body.split("</header>")[-1]
    refused = supervisor.post(
        f"/console/desk/offers/{reservation}/accept",
        data={"csrf_token": token_of(supervisor, "/console/desk")},
    )
    assert refused.status_code == 302
    assert "this offer was made to another agent" in html.unescape(
        supervisor.get("/console/desk").get_data(as_text=True)
    )

    listed = supervisor.get("/console/agents?presence=available&per_page=200")
    assert listed.status_code == 200
    row = re.search(rf'id="agent-{agent.staff_id}".*?</tr>', listed.get_data(as_text=True), re.S)
    assert row, "the agent is listed"
    assert agent.email in row.group(0) and "available" in row.group(0)
    assert "1 / 8" in row.group(0)  # the open offer holds an email slot
