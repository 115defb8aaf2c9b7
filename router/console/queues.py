"""Console: the queues overview a supervisor keeps open, and queue administration."""

from __future__ import annotations

from flask import flash, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from router.console.views import (
    actor,
    back,
    blueprint,
    login_required,
    now,
    report,
)
from router.core.domain import StaffRole
from router.runtime import runtime
from router.services import queue_overview
from router.services import queues as queues_service
from router.services.errors import ServiceError
from router.services.queue_overview import QueueOverview

DEFAULT_REFRESH_SECONDS = 15


def _overview() -> QueueOverview:
    return queue_overview.overview(
        runtime().db,
        now(),
        page=1,
        per_page=500,
        team=request.args.get("team") or None,
        include_inactive=request.args.get("inactive") == "1",
    )


def _refresh() -> int:
    try:
        return max(1, min(int(request.args.get("refresh", DEFAULT_REFRESH_SECONDS)), 3600))
    except ValueError:
        return DEFAULT_REFRESH_SECONDS


@blueprint.get("/queues")
@login_required()
def queues() -> str:
    """Show waiting contacts per queue, the oldest wait and SLA states; it refreshes itself."""
    return render_template(
        "console/queues.html",
        overview=_overview(),
        refresh=_refresh(),
        team=request.args.get("team", ""),
        fragment_url=url_for(
            "console.queues_fragment",
            team=request.args.get("team") or None,
            inactive=request.args.get("inactive") or None,
        ),
    )


@blueprint.get("/queues/fragment")
@login_required()
def queues_fragment() -> str:
    """Return the overview table's body (the page swaps it in on each refresh)."""
    return render_template("console/_queue_rows.html", overview=_overview())


@blueprint.get("/queues/manage")
@login_required()
def queues_manage() -> str:
    """List queues for administration."""
    rt = runtime()
    listed = queues_service.list_queues(rt.db, page=1, per_page=500)
    return render_template(
        "console/queues_manage.html",
        queues=listed.items,
        system=queues_service.system_queues(rt.policy),
    )


def _form_fields() -> dict[str, object]:
    fields: dict[str, object] = {
        "name": request.form.get("name", ""),
        "team": request.form.get("team", ""),
        "kind": request.form.get("kind", "human"),
        "owners": [
            owner.strip() for owner in request.form.get("owners", "").split(",") if owner.strip()
        ],
        "webhook_url": request.form.get("webhook_url", "").strip() or None,
    }
    return fields


@blueprint.post("/queues/manage")
@login_required(StaffRole.EDITOR)
def queue_create() -> BaseResponse:
    """Create a queue."""
    values = {"key": request.form.get("key", "").strip(), **_form_fields()}
    try:
        queues_service.create_queue(runtime().db, values, actor=actor())
        flash(f"Queue {values['key']} created.", "info")
    except ServiceError as exc:
        report(exc)
    return back(url_for("console.queues_manage"))


@blueprint.post("/queues/manage/<key>")
@login_required(StaffRole.EDITOR)
def queue_update(key: str) -> BaseResponse:
    """Change a queue, or switch it on or off."""
    rt = runtime()
    try:
        if request.form.get("action") == "toggle":
            changes: dict[str, object] = {"active": request.form.get("active") == "1"}
        else:
            changes = _form_fields()
        queues_service.update_queue(rt.db, rt.policy, key, changes, actor=actor())
        flash(f"Queue {key} saved.", "info")
    except ServiceError as exc:
        report(exc)
    return back(url_for("console.queues_manage"))
