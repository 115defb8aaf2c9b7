"""Console: each region's next 14 days of opening times, closures and special hours."""

from __future__ import annotations

from datetime import date

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from router.console.views import actor, blueprint, login_required, now, report
from router.core.domain import StaffRole
from router.runtime import runtime
from router.services import calendars as calendar_admin
from router.services.errors import Invalid, ServiceError


@blueprint.get("/calendars")
@login_required()
def calendars() -> str:
    """Show every region's opening times for the next 14 days, and its overrides."""
    rt = runtime()
    chosen = request.args.get("region", "")
    keys = [chosen] if chosen in rt.policy.regions else sorted(rt.policy.regions)
    schedules = [
        calendar_admin.schedule(rt.db, rt.intake.cache, rt.policy, key, now()) for key in keys
    ]
    overrides = {
        key: calendar_admin.list_overrides(
            rt.db, rt.policy, key, page=1, per_page=200, since=now().date()
        ).items
        for key in keys
    }
    return render_template(
        "console/calendars.html",
        schedules=schedules,
        overrides=overrides,
        regions=sorted(rt.policy.regions),
        chosen=chosen,
    )


def _hours(text: str) -> list[list[str]]:
    """Read "09:00-12:00, 13:00-17:00" (blank: closed all day)."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        start, sep, end = part.partition("-")
        if not sep:
            raise Invalid(f"hours {part!r}: write them as HH:MM-HH:MM")
        out.append([start.strip(), end.strip()])
    return out


def _form_day() -> date:
    """Return the form's day, or raise Invalid with how to give one."""
    try:
        return date.fromisoformat(request.form.get("day", "").strip())
    except ValueError:
        raise Invalid("day: use the date picker (YYYY-MM-DD)") from None


@blueprint.post("/calendars/overrides")
@login_required(StaffRole.EDITOR)
def override_set() -> BaseResponse:
    """Close a day or set its special hours in one region."""
    rt = runtime()
    region = request.form.get("region", "")
    try:
        day = _form_day()
        hours = [] if request.form.get("closed") == "on" else _hours(request.form.get("hours", ""))
        _data, created = calendar_admin.put_override(
            rt.db,
            rt.policy,
            region,
            day,
            hours,
            note=request.form.get("note", "")[:500],
            actor=actor(),
            now=now(),
        )
        flash(f"{'Added' if created else 'Replaced'} the override for {day.isoformat()}.", "info")
    except ServiceError as exc:
        report(exc)
    return redirect(url_for("console.calendars", region=region) + f"#region-{region}")


@blueprint.post("/calendars/overrides/delete")
@login_required(StaffRole.EDITOR)
def override_delete() -> BaseResponse:
    """Remove an override."""
    rt = runtime()
    region = request.form.get("region", "")
    try:
        day = _form_day()
        calendar_admin.delete_override(rt.db, rt.policy, region, day, actor=actor(), now=now())
        flash(f"Removed the override for {day.isoformat()}.", "info")
    except ServiceError as exc:
        report(exc)
    return redirect(url_for("console.calendars", region=region) + f"#region-{region}")
