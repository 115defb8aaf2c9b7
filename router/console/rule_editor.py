"""Console: the rule editor, with live validation and a dry-run of a sample contact."""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict
from typing import Any

from flask import flash, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from router.console.rule_form import placement, rule_from_form, sample_from_form, whole_number
from router.console.rules import rules_in_force
from router.console.views import actor, blueprint, login_required, now
from router.core.domain import Category, Channel, Severity, StaffRole, Tier, Topic
from router.core.rules import OPERATORS, field_catalogue
from router.runtime import runtime
from router.services import rule_changes, rule_checks
from router.services.errors import Conflict, Invalid, NotFound, ServiceError
from router.services.queues import list_queues
from router.services.rule_checks import errors_to_dicts

WHEN_EXAMPLE = {"all": [{"field": "tags", "op": "contains", "value": "vip"}]}


def _relative(errors: list[dict[str, str]], index: int | None) -> list[dict[str, str]]:
    """Show the candidate's own problems by field (then.queue), others by full path."""
    prefix = f"rules[{index}]." if index is not None else None
    out = []
    for error in errors:
        path = error["path"]
        field = path[len(prefix) :] if prefix and path.startswith(prefix) else path
        out.append({"path": path, "field": field, "message": error["message"]})
    return out


def _editor(
    *,
    rule: dict[str, Any],
    original_id: str | None,
    base_version: int,
    position: int | None,
    errors: list[dict[str, str]] | None = None,
    conflict: dict[str, Any] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    rt = runtime()
    queues = list_queues(rt.db, page=1, per_page=500).items
    return render_template(
        "console/rule_edit.html",
        rule=rule,
        when_text=json.dumps(rule.get("when", WHEN_EXAMPLE), indent=2),
        original_id=original_id,
        base_version=base_version,
        position=position,
        errors=errors or [],
        conflict=conflict,
        queues=[queue.key for queue in queues],
        sla_policies=sorted(rt.policy.sla_policies),
        catalogue=field_catalogue(),
        operators=OPERATORS,
        channels=[m.value for m in Channel],
        tiers=[m.value for m in Tier],
        severities=[m.value for m in Severity],
        categories=[m.value for m in Category],
        topics=[m.value for m in Topic],
        regions=sorted(rt.policy.regions),
    ), status


@blueprint.get("/rules/new")
@login_required(StaffRole.EDITOR)
def rule_new() -> tuple[str, int]:
    """Open the editor for a new rule (it is saved disabled unless ticked)."""
    state = rules_in_force()
    rule = {
        "id": "",
        "description": "",
        "enabled": False,
        "when": WHEN_EXAMPLE,
        "then": {"queue": "", "tags": []},
    }
    return _editor(
        rule=rule,
        original_id=None,
        base_version=state.version,
        position=max(0, len(state.documents) - 1),
    )


@blueprint.get("/rules/<rule_id>/edit")
@login_required(StaffRole.EDITOR)
def rule_edit(rule_id: str) -> tuple[str, int]:
    """Open the editor for a rule."""
    state = rules_in_force()
    try:
        index = state.index(rule_id)
    except NotFound as exc:
        return render_template("console/error.html", title="Not found", message=exc.message), 404
    return _editor(
        rule=state.documents[index],
        original_id=rule_id,
        base_version=state.version,
        position=index,
    )


@blueprint.post("/rules/new")
@blueprint.post("/rules/<rule_id>/edit")
@login_required(StaffRole.EDITOR)
def rule_save(rule_id: str | None = None) -> BaseResponse | tuple[str, int]:
    """Save the editor: a new version; a stale or invalid edit comes back with the input kept."""
    rt = runtime()
    form = request.form
    doc, problems = rule_from_form(form)
    original, position = placement(form)
    try:
        base = whole_number(form, "base_version")
    except Invalid:
        base = -1
    if problems:
        return _editor(
            rule=doc,
            original_id=original,
            base_version=base,
            position=position,
            errors=_relative(problems, None),
            status=422,
        )
    try:
        if original is None:
            result = rule_changes.create_rule(
                rt.db, rt.policy, base_version=base, rule=doc, position=position, actor=actor()
            )
        else:
            result = rule_changes.update_rule(
                rt.db, rt.policy, original, base_version=base, rule=doc, actor=actor()
            )
    except Conflict as exc:
        current = rules_in_force()
        stored = None
        if original is not None:
            try:
                stored = current.documents[current.index(original)]
            except NotFound:
                stored = None
        return _editor(
            rule=doc,
            original_id=original,
            # Saving again applies this edit on top of the version now in force.
            base_version=current.version,
            position=position,
            conflict={
                "message": exc.message,
                "current_version": current.version,
                "stored": json.dumps(stored, indent=2) if stored else None,
            },
            status=409,
        )
    except ServiceError as exc:
        errors = exc.errors if isinstance(exc.errors, list) else []
        index = position
        if original is not None:
            with contextlib.suppress(NotFound):
                index = rules_in_force().index(original)
        if not errors:
            errors = [{"path": "rule", "message": exc.message}]
        return _editor(
            rule=doc,
            original_id=original,
            base_version=base,
            position=position,
            errors=_relative(errors, index),
            status=exc.status,
        )
    rule = result.rule
    flash(
        f"Saved {rule['id']} (version {result.version}, position {rule['position']}"
        f"{', disabled' if not rule['enabled'] else ''}).",
        "info",
    )
    return redirect(url_for("console.rules") + f"#rule-{rule['id']}")


@blueprint.post("/rules/check")
@login_required(StaffRole.EDITOR)
def rule_check() -> BaseResponse:
    """Validate the editor's content as it is typed (nothing is stored)."""
    form = request.form
    doc, problems = rule_from_form(form)
    original, position = placement(form)
    state = rules_in_force()
    if problems:
        return jsonify(valid=False, errors=_relative(problems, None), base_version=state.version)
    try:
        documents, index = rule_checks.candidate_documents(
            state.documents, doc, replacing=original, position=position
        )
    except ServiceError as exc:
        return jsonify(
            valid=False,
            errors=[{"path": "position", "field": "position", "message": exc.message}],
            base_version=state.version,
        )
    rt = runtime()
    errors = errors_to_dicts(rule_checks.validate(rt.db, rt.policy, documents))
    if original is None and any(d.get("id") == doc["id"] for d in state.documents):
        errors.append({"path": f"rules[{index}].id", "message": "a rule with this id exists"})
    return jsonify(
        valid=not errors,
        errors=_relative(errors, index),
        base_version=state.version,
        position=index,
    )


@blueprint.post("/rules/dry-run")
@login_required()
def rule_dry_run() -> BaseResponse | tuple[BaseResponse, int]:
    """Route the sample contact with the editor's rule and with the rules in force."""
    form = request.form
    doc, problems = rule_from_form(form)
    original, position = placement(form)
    if problems:
        return jsonify(error="fix the rule first", errors=_relative(problems, None)), 422
    try:
        sample = sample_from_form(form, now())
        result = rule_checks.dry_run(
            runtime().intake,
            None,
            sample,
            rule=doc,
            replacing=original,
            position=position if original is None else None,
        )
    except ServiceError as exc:
        errors = exc.errors if isinstance(exc.errors, list) else []
        return jsonify(error=exc.message, errors=_relative(errors, position)), exc.status
    return jsonify(asdict(result))
