"""Console: the audit log, and staff users with their tokens (admins)."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from router.console.views import actor, blueprint, login_required, now, page_args, report
from router.core.domain import StaffRole
from router.core.validation import parse_instant
from router.runtime import runtime
from router.services import audit as audit_service
from router.services import staff as staff_service
from router.services.errors import ServiceError


@blueprint.get("/audit")
@login_required()
def audit() -> str:
    """Show the audit log, newest first, filtered by who, what and which."""
    page, per_page = page_args()
    filters: dict[str, Any] = {}
    for name, limit in (("actor", 320), ("action", 64), ("entity_type", 64), ("entity_id", 255)):
        value = request.args.get(name, "").strip()
        if value:
            filters[name] = value[:limit]
    for name in ("since", "until"):
        value = request.args.get(name, "").strip()
        if value:
            try:
                filters[name] = parse_instant(value)
            except ValueError as exc:
                flash(f"{name}: {exc}", "error")
    listed = audit_service.list_entries(runtime().db, page=page, per_page=per_page, **filters)
    shown = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in filters.items()}
    return render_template("console/audit.html", listed=listed, filters=shown)


@blueprint.get("/staff")
@login_required(StaffRole.ADMIN)
def staff() -> str:
    """List staff users."""
    page, per_page = page_args()
    listed = staff_service.list_staff(runtime().db, page=page, per_page=per_page, now=now())
    return render_template("console/staff.html", listed=listed, roles=[r.value for r in StaffRole])


@blueprint.post("/staff")
@login_required(StaffRole.ADMIN)
def staff_create() -> BaseResponse:
    """Create a staff user."""
    form = request.form
    try:
        staff_service.add_staff(
            runtime().db,
            form.get("email", ""),
            form.get("role", ""),
            name=form.get("name", "").strip()[:200] or None,
            password=form.get("password") or None,
            actor=actor(),
        )
        flash("Staff user created.", "info")
    except ServiceError as exc:
        report(exc)
    return redirect(url_for("console.staff"))


@blueprint.post("/staff/<int(max=2147483647):staff_id>")
@login_required(StaffRole.ADMIN)
def staff_update(staff_id: int) -> BaseResponse:
    """Change a staff user's role, or deactivate or reactivate them."""
    changes: dict[str, Any] = {}
    if request.form.get("role"):
        changes["role"] = request.form["role"]
    if request.form.get("active") in ("0", "1"):
        changes["active"] = request.form["active"] == "1"
    try:
        staff_service.update_staff(runtime().db, staff_id, changes, actor=actor(), now=now())
        flash("Staff user saved.", "info")
    except ServiceError as exc:
        report(exc)
    return redirect(url_for("console.staff"))


@blueprint.post("/staff/<int(max=2147483647):staff_id>/unlock")
@login_required(StaffRole.ADMIN)
def staff_unlock(staff_id: int) -> BaseResponse:
    """Lift a staff user's console log-in lock-out."""
    try:
        unlocked = staff_service.unlock_login(runtime().db, staff_id, actor=actor(), now=now())
        flash(f"{unlocked.email} may log in again.", "info")
    except ServiceError as exc:
        report(exc)
    return redirect(url_for("console.staff"))


@blueprint.post("/staff/<int(max=2147483647):staff_id>/tokens")
@login_required(StaffRole.ADMIN)
def token_issue(staff_id: int) -> BaseResponse | tuple[str, int]:
    """Issue an API token; it is shown on the next page only."""
    try:
        issued = staff_service.create_token(
            runtime().db,
            staff_id,
            name=request.form.get("name", "").strip()[:100] or "console",
            expires_at=None,
            actor=actor(),
            now=now(),
        )
    except ServiceError as exc:
        report(exc)
        return redirect(url_for("console.staff"))
    return render_template("console/token_issued.html", issued=issued), 201
