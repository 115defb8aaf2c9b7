"""Console: the ordered rule list (move, enable, delete, drag to reorder) and the version history.

The rule editor is in router.console.rule_editor.
"""

from __future__ import annotations

import json
from typing import Any

from flask import flash, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from router.console.rule_form import whole_number
from router.console.views import actor, blueprint, login_required, page_args, report
from router.core.domain import StaffRole
from router.runtime import runtime
from router.services import rule_changes
from router.services import rules as rules_service
from router.services.errors import NotFound, ServiceError


@blueprint.app_template_filter("conditions")
def conditions_text(when: Any) -> str:
    """Render a rule's conditions for people: all(tier eq 'premium', any(...))."""
    if not when:  # None, or Jinja's undefined for the default rule
        return "always (default rule)"
    if isinstance(when, dict) and "field" in when:
        return f"{when.get('field')} {when.get('op')} {json.dumps(when.get('value'))}"
    if isinstance(when, dict):
        for kind in ("all", "any"):
            if kind in when and isinstance(when[kind], list):
                inner = [conditions_text(child) for child in when[kind]]
                if kind == "all":
                    return " and ".join(inner)
                return "(" + " or ".join(inner) + ")"
    return json.dumps(when)


def rules_in_force() -> rules_service.RuleSetState:
    """Return the rule set in force."""
    rt = runtime()
    return rules_service.get_rules(rt.db, rt.policy)


# -- list and ordering -------------------------------------------------------------------------


@blueprint.get("/rules")
@login_required()
def rules() -> str:
    """Show the rules in force, in the order they are tried."""
    state = rules_in_force()
    return render_template("console/rules.html", state=state)


@blueprint.post("/rules/<rule_id>/move")
@login_required(StaffRole.EDITOR)
def rule_move(rule_id: str) -> BaseResponse:
    """Move a rule up, down, or to a position."""
    rt = runtime()
    form = request.form
    try:
        base = whole_number(form, "base_version")
        direction = form.get("direction")
        if direction in ("up", "down"):
            offset = -1 if direction == "up" else 1
            rule_changes.move_rule(
                rt.db, rt.policy, rule_id, base_version=base, offset=offset, actor=actor()
            )
        else:
            position = whole_number(form, "position")
            rule_changes.move_rule(
                rt.db, rt.policy, rule_id, base_version=base, position=position, actor=actor()
            )
        flash(f"Moved {rule_id}.", "info")
    except ServiceError as exc:
        report(exc)
    return redirect(url_for("console.rules") + f"#rule-{rule_id}")


@blueprint.post("/rules/<rule_id>/toggle")
@login_required(StaffRole.EDITOR)
def rule_toggle(rule_id: str) -> BaseResponse:
    """Enable or disable a rule."""
    rt = runtime()
    try:
        enabled = request.form.get("enabled") == "1"
        rule_changes.update_rule(
            rt.db,
            rt.policy,
            rule_id,
            base_version=whole_number(request.form, "base_version"),
            changes={"enabled": enabled},
            actor=actor(),
        )
        flash(f"{'Enabled' if enabled else 'Disabled'} {rule_id}.", "info")
    except ServiceError as exc:
        report(exc)
    return redirect(url_for("console.rules") + f"#rule-{rule_id}")


@blueprint.post("/rules/<rule_id>/delete")
@login_required(StaffRole.EDITOR)
def rule_delete(rule_id: str) -> BaseResponse:
    """Delete a rule."""
    rt = runtime()
    try:
        rule_changes.delete_rule(
            rt.db,
            rt.policy,
            rule_id,
            base_version=whole_number(request.form, "base_version"),
            actor=actor(),
        )
        flash(f"Deleted {rule_id}.", "info")
    except ServiceError as exc:
        report(exc)
    return redirect(url_for("console.rules"))


@blueprint.post("/rules/order")
@login_required(StaffRole.EDITOR)
def rules_order() -> BaseResponse | tuple[BaseResponse, int]:
    """Store a new order (the list's drag and drop sends every rule id in order)."""
    rt = runtime()
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("order"), list):
        return jsonify(error="send {base_version, order}"), 400
    try:
        state = rule_changes.reorder(
            rt.db,
            rt.policy,
            base_version=int(body.get("base_version", -1)),
            order=[str(rule_id) for rule_id in body["order"]],
            actor=actor(),
        )
    except ServiceError as exc:
        return jsonify(error=exc.message, **exc.details), exc.status
    except (TypeError, ValueError):
        return jsonify(error="base_version must be a number"), 400
    return jsonify(version=state.version)


# -- history -----------------------------------------------------------------------------------


@blueprint.get("/rules/versions")
@login_required()
def rule_versions() -> str:
    """Show the version history with what each version changed."""
    page, per_page = page_args(default=20)
    listed = rules_service.list_versions(runtime().db, page, per_page)
    return render_template(
        "console/rule_versions.html", listed=listed, current=rules_in_force().version
    )


@blueprint.get("/rules/versions/<int(max=2147483647):version>")
@login_required()
def rule_version(version: int) -> str | tuple[str, int]:
    """Show one stored version in full."""
    try:
        data = rules_service.get_version(runtime().db, version)
    except NotFound as exc:
        return render_template("console/error.html", title="Not found", message=exc.message), 404
    return render_template("console/rule_version.html", data=data, current=rules_in_force().version)


@blueprint.post("/rules/versions/<int(max=2147483647):version>/rollback")
@login_required(StaffRole.EDITOR)
def rule_rollback(version: int) -> BaseResponse:
    """Roll back: store a new version equal to this one."""
    rt = runtime()
    try:
        state = rule_changes.rollback(
            rt.db,
            rt.policy,
            version,
            base_version=whole_number(request.form, "base_version"),
            actor=actor(),
        )
        flash(f"Rolled back to version {version} (stored as version {state.version}).", "info")
    except ServiceError as exc:
        report(exc)
    return redirect(url_for("console.rule_versions"))
