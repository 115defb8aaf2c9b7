"""Console: contact list with filters, and a contact's detail with its timeline and actions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from router.console.views import (
    actor,
    blueprint,
    login_required,
    now,
    page_args,
    report,
)
from router.core.domain import Category, Channel, ContactStatus, Severity, SlaState, StaffRole, Tier
from router.core.validation import parse_instant
from router.runtime import runtime
from router.services import contact_changes, offers
from router.services import contacts as contacts_service
from router.services.errors import Invalid, NotFound, ServiceError
from router.services.queues import list_queues

FILTERS = ("queue", "channel", "tier", "sla_state", "account", "status", "severity", "q")
CHOICES = {
    "channel": [member.value for member in Channel],
    "tier": [member.value for member in Tier],
    "sla_state": [member.value for member in SlaState],
    "status": [member.value for member in ContactStatus],
    "severity": [member.value for member in Severity],
    "category": [member.value for member in Category],
}


@blueprint.get("/contacts")
@login_required()
def contacts() -> str:
    """List contacts, newest first, filtered by queue, channel, tier, SLA state, account..."""
    page, per_page = page_args()
    filters: dict[str, Any] = {}
    for name in FILTERS:
        value = request.args.get(name, "").strip()
        allowed = CHOICES.get(name)
        if value and (allowed is None or value in allowed):
            filters[name] = value[:200]
    sort = request.args.get("sort", "-received_at")
    if sort not in contacts_service.SORTS:
        sort = "-received_at"
    listed = contacts_service.list_contacts(
        runtime().db, now(), page=page, per_page=per_page, sort=sort, **filters
    )
    queues = list_queues(runtime().db, page=1, per_page=500).items
    return render_template(
        "console/contacts.html",
        listed=listed,
        filters=filters,
        sort=sort,
        sorts=list(contacts_service.SORTS),
        choices=CHOICES,
        queues=[queue.key for queue in queues],
    )


@blueprint.get("/contacts/<int(max=2147483647):contact_id>")
@login_required()
def contact(contact_id: int) -> str | tuple[str, int]:
    """Show a contact: routing decision, the trace of every rule tried, and its timeline."""
    try:
        data = contacts_service.get_contact(runtime().db, contact_id, now())
    except NotFound as exc:
        return render_template("console/error.html", title="Not found", message=exc.message), 404
    assignments = offers.assignment_explain(runtime().db, contact_id)
    named = {r.agent_id for r in assignments.reservations}
    if assignments.assigned_agent_id is not None:
        named.add(assignments.assigned_agent_id)
    for reservation in assignments.reservations:
        named.update(
            int(c["agent_id"])
            for c in reservation.explain.get("candidates", [])
            if isinstance(c, dict) and isinstance(c.get("agent_id"), int)
        )
    return render_template(
        "console/contact.html",
        contact=data,
        severities=CHOICES["severity"],
        assignments=assignments,
        agent_names=offers.staff_names(runtime().db, named),
    )


def _done(contact_id: int) -> BaseResponse:
    return redirect(url_for("console.contact", contact_id=contact_id))


@blueprint.post("/contacts/<int(max=2147483647):contact_id>/<action>")
@login_required(StaffRole.EDITOR)
def contact_action(contact_id: int, action: str) -> BaseResponse:
    """Accept, record the first response, re-grade or resolve a contact."""
    rt = runtime()
    note = request.form.get("note", "").strip()[:500] or None
    try:
        if action == "accept":
            contact_changes.accept(rt.db, contact_id, actor=actor(), now=now(), note=note)
            flash("Accepted.", "info")
        elif action == "first-response":
            at = _instant(request.form.get("at", ""))
            contact_changes.record_first_response(
                rt.db, contact_id, actor=actor(), now=now(), at=at, note=note
            )
            flash("First response recorded.", "info")
        elif action == "regrade":
            raw = request.form.get("severity", "")
            if raw not in CHOICES["severity"]:
                raise Invalid(f"choose a severity: {', '.join(CHOICES['severity'])}")
            contact_changes.regrade_severity(
                rt.db,
                rt.intake.cache,
                rt.policy,
                contact_id,
                Severity(raw),
                actor=actor(),
                now=now(),
                reason=note,
            )
            flash(f"Re-graded to {raw}; the due time was recomputed from the receipt.", "info")
        elif action == "resolve":
            contact_changes.resolve(rt.db, contact_id, actor=actor(), now=now(), note=note)
            flash("Resolved.", "info")
        else:
            raise NotFound(f"unknown action {action!r}")
    except ServiceError as exc:
        report(exc)
    return _done(contact_id)


def _instant(raw: str) -> datetime | None:
    text = raw.strip()
    if not text:
        return None
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise Invalid(f"first response time: {exc}") from None
