"""Console: the agent's desk (presence, open offers, work in hand) and the supervisor's agents view.

The desk reloads itself every few seconds (a meta refresh, allowed under the CSP); live updates
over Server-Sent Events come later. Accept, reject and presence changes are plain CSRF forms: a
refused one (an offer taken, expired or someone else's) is flashed, never an error page.
"""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from router.console.views import (
    actor,
    blueprint,
    current_user,
    login_required,
    now,
    page_args,
    report,
)
from router.core.domain import Presence, StaffRole
from router.runtime import runtime
from router.services import offers, reservations
from router.services import presence as presence_service
from router.services.agents import AgentView, get_agent, list_agents
from router.services.errors import NotFound, ServiceError
from router.store.models.agents import CHANNELS

PRESENCES = [member.value for member in Presence]


def _staff_id() -> int:
    user = current_user()
    assert user is not None  # login_required ran first
    return user.id


@blueprint.get("/desk")
@login_required()
def desk() -> str:
    """The agent's desk: presence switch, open offers with accept/reject, and work in hand."""
    staff_id = _staff_id()
    agent: AgentView | None
    try:
        agent = get_agent(runtime().db, staff_id)
    except NotFound:
        agent = None
    if agent is None:
        return render_template("console/desk.html", agent=None)
    return render_template(
        "console/desk.html",
        agent=agent,
        offers=offers.offers_for(runtime().db, staff_id, now()),
        work=offers.my_work(runtime().db, staff_id, now()),
        presences=PRESENCES,
        channels=CHANNELS,
    )


def _to_desk() -> BaseResponse:
    return redirect(url_for("console.desk"))


@blueprint.post("/desk/presence")
@login_required()
def desk_presence() -> BaseResponse:
    """Set one's own presence (available, away, offline) with an optional reason."""
    rt = runtime()
    wanted = request.form.get("presence", "")
    reason = request.form.get("reason", "").strip()[:200] or None
    try:
        view = presence_service.set_presence(
            rt.db, rt.settings, _staff_id(), wanted, reason=reason, actor=actor(), now=now()
        )
        flash(f"You are {view.presence}.", "info")
    except ServiceError as exc:
        report(exc)
    return _to_desk()


@blueprint.post("/desk/offers/<int(max=2147483647):reservation_id>/accept")
@login_required()
def desk_accept(reservation_id: int) -> BaseResponse:
    """Accept one's own open offer: the contact is assigned to the agent."""
    try:
        view = reservations.accept(runtime().db, reservation_id, _staff_id(), now())
        flash(f"Accepted C-{view.contact_id}.", "info")
    except ServiceError as exc:
        report(exc)
    return _to_desk()


@blueprint.post("/desk/offers/<int(max=2147483647):reservation_id>/reject")
@login_required()
def desk_reject(reservation_id: int) -> BaseResponse:
    """Reject one's own open offer: the contact goes to the next agent."""
    rt = runtime()
    try:
        view = reservations.reject(rt.db, rt.settings, reservation_id, _staff_id(), now())
        flash(f"Passed on C-{view.contact_id}.", "info")
    except ServiceError as exc:
        report(exc)
    return _to_desk()


@blueprint.get("/agents")
@login_required(StaffRole.EDITOR)
def agents() -> str:
    """The supervisor's view: every agent's presence, load per channel and work in hand."""
    page, per_page = page_args(default=100)
    wanted = request.args.get("presence", "")
    presence = wanted if wanted in PRESENCES else None
    listed = list_agents(runtime().db, page=page, per_page=per_page, presence=presence)
    return render_template(
        "console/agents.html",
        listed=listed,
        work=offers.work_counts(runtime().db, [agent.id for agent in listed.items]),
        presence=presence,
        presences=PRESENCES,
        channels=CHANNELS,
    )
