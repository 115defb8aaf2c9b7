"""Console: the ordered rule list, the rule editor with live validation and dry-run, history."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from typing import Any

from flask import flash, jsonify, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response as BaseResponse

from router.console.views import actor, blueprint, login_required, now, page_args, report
from router.core.domain import Category, Channel, Severity, StaffRole, Tier, Topic
from router.core.rules import OPERATORS, ContactAttributes, field_catalogue
from router.core.validation import json_body_problem, parse_instant
from router.intake.service import ContactRequest
from router.runtime import runtime
from router.services import rules as rules_service
from router.services.errors import Conflict, Invalid, NotFound, ServiceError
from router.services.queues import list_queues

WHEN_EXAMPLE = {"all": [{"field": "tags", "op": "contains", "value": "vip"}]}


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


def _state() -> rules_service.RuleSetState:
    rt = runtime()
    return rules_service.get_rules(rt.db, rt.policy)


def _int(form: MultiDict[str, str], name: str) -> int:
    try:
        return int(form.get(name, ""))
    except ValueError:
        raise Invalid(f"{name} must be a whole number") from None


# -- list and ordering -------------------------------------------------------------------------


@blueprint.get("/rules")
@login_required()
def rules() -> str:
    """Show the rules in force, in the order they are tried."""
    state = _state()
    return render_template("console/rules.html", state=state.to_dict())


@blueprint.post("/rules/<rule_id>/move")
@login_required(StaffRole.EDITOR)
def rule_move(rule_id: str) -> BaseResponse:
    """Move a rule up, down, or to a position."""
    rt = runtime()
    form = request.form
    try:
        base = _int(form, "base_version")
        direction = form.get("direction")
        if direction in ("up", "down"):
            offset = -1 if direction == "up" else 1
            rules_service.move_rule(
                rt.db, rt.policy, rule_id, base_version=base, offset=offset, actor=actor()
            )
        else:
            position = _int(form, "position")
            rules_service.move_rule(
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
        rules_service.update_rule(
            rt.db,
            rt.policy,
            rule_id,
            base_version=_int(request.form, "base_version"),
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
        rules_service.delete_rule(
            rt.db,
            rt.policy,
            rule_id,
            base_version=_int(request.form, "base_version"),
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
        state = rules_service.reorder(
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


# -- the editor --------------------------------------------------------------------------------


def rule_from_form(form: MultiDict[str, str]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Build a rule document from the editor's fields; return it and any problems reading them."""
    problems: list[dict[str, str]] = []
    doc: dict[str, Any] = {
        "id": form.get("id", "").strip(),
        "description": form.get("description", "").strip(),
        "enabled": form.get("enabled") == "on",
    }
    if form.get("default") == "1":
        doc["default"] = True
        doc["enabled"] = True
    else:
        text = form.get("when", "").strip()
        # The same check every JSON body gets (app.py): deep nesting would exhaust the parser.
        hostile = json_body_problem(text.encode("utf-8", "surrogatepass"))
        try:
            if hostile:
                raise ValueError(hostile.replace("the JSON body", "it"))
            doc["when"] = json.loads(text) if text else None
        except ValueError as exc:
            problems.append({"path": "when", "message": f"not valid JSON: {exc}"})
            doc["when"] = {}
        if doc["when"] is None:
            del doc["when"]
    then: dict[str, Any] = {"queue": form.get("queue", "").strip()}
    for name in ("priority", "priority_boost"):
        raw = form.get(name, "").strip()
        if raw:
            try:
                then[name] = int(raw)
            except ValueError:
                problems.append({"path": f"then.{name}", "message": "must be a whole number"})
    tags = [tag.strip() for tag in form.get("tags", "").split(",") if tag.strip()]
    if tags:
        then["tags"] = tags
    sla_policy = form.get("sla_policy", "").strip()
    if sla_policy:
        then["sla_policy"] = sla_policy
    doc["then"] = then
    return doc, problems


def _placement(form: MultiDict[str, str]) -> tuple[str | None, int | None]:
    """Return (rule id being replaced, position) for an editor submission."""
    original = form.get("original_id", "").strip() or None
    raw = form.get("position", "").strip()
    position = None
    if raw:
        try:
            position = int(raw)
        except ValueError:
            position = None
    return original, position


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
    queues = list_queues(rt.db, page=1, per_page=500)["items"]
    return render_template(
        "console/rule_edit.html",
        rule=rule,
        when_text=json.dumps(rule.get("when", WHEN_EXAMPLE), indent=2),
        original_id=original_id,
        base_version=base_version,
        position=position,
        errors=errors or [],
        conflict=conflict,
        queues=[queue["key"] for queue in queues],
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
    state = _state()
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
    state = _state()
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
    original, position = _placement(form)
    try:
        base = _int(form, "base_version")
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
            result = rules_service.create_rule(
                rt.db, rt.policy, base_version=base, rule=doc, position=position, actor=actor()
            )
        else:
            result = rules_service.update_rule(
                rt.db, rt.policy, original, base_version=base, rule=doc, actor=actor()
            )
    except Conflict as exc:
        current = _state()
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
                index = _state().index(original)
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
    rule = result["rule"]
    flash(
        f"Saved {rule['id']} (version {result['version']}, position {rule['position']}"
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
    original, position = _placement(form)
    state = _state()
    if problems:
        return jsonify(valid=False, errors=_relative(problems, None), base_version=state.version)
    try:
        documents, index = rules_service.candidate_documents(
            state.documents, doc, replacing=original, position=position
        )
    except ServiceError as exc:
        return jsonify(
            valid=False,
            errors=[{"path": "position", "field": "position", "message": exc.message}],
            base_version=state.version,
        )
    rt = runtime()
    errors = rules_service.validate(rt.db, rt.policy, documents)
    if original is None and any(d.get("id") == doc["id"] for d in state.documents):
        errors.append({"path": f"rules[{index}].id", "message": "a rule with this id exists"})
    return jsonify(
        valid=not errors,
        errors=_relative(errors, index),
        base_version=state.version,
        position=index,
    )


def sample_from_form(form: MultiDict[str, str], at: datetime) -> ContactAttributes | ContactRequest:
    """Build the dry-run's sample contact: an account's contact, or explicit attributes."""

    def choice(name: str, allowed: list[str], default: str | None) -> str | None:
        value = form.get(f"sample_{name}", "").strip()
        if not value:
            return default
        if value not in allowed:
            raise Invalid(f"sample {name}: choose one of {', '.join(allowed)}")
        return value

    raw_at = form.get("sample_received_at", "").strip()
    try:
        received_at = parse_instant(raw_at) if raw_at else at
    except ValueError as exc:
        raise Invalid(f"sample received at: {exc}") from None
    channel = choice("channel", [m.value for m in Channel], "email")
    severity = choice("severity", [m.value for m in Severity], "S3")
    category = choice("category", [m.value for m in Category], "break-fix")
    topic = choice("topic", [m.value for m in Topic], None)
    tags = frozenset(t.strip() for t in form.get("sample_tags", "").split(",") if t.strip())
    subject = form.get("sample_subject", "").strip()[:500] or None
    account = form.get("sample_account", "").strip()
    if account:
        return ContactRequest(
            channel=Channel(channel or "email"),
            external_id="dry-run",
            received_at=received_at,
            account_id=account,
            severity=Severity(severity or "S3"),
            category=Category(category or "break-fix"),
            topic=Topic(topic) if topic else None,
            subject=subject,
            tags=tags,
        )
    tier = choice("tier", [m.value for m in Tier], "premium")
    region = choice("region", sorted(runtime().policy.regions), None)
    return ContactAttributes(
        channel=Channel(channel or "email"),
        tier=Tier(tier or "premium"),
        received_at=received_at,
        in_business_hours=form.get("sample_in_business_hours") == "on",
        account_region=region,
        severity=Severity(severity or "S3"),
        category=Category(category or "break-fix"),
        topic=Topic(topic) if topic else None,
        tags=tags,
        subject=subject,
    )


@blueprint.post("/rules/dry-run")
@login_required()
def rule_dry_run() -> BaseResponse | tuple[BaseResponse, int]:
    """Route the sample contact with the editor's rule and with the rules in force."""
    form = request.form
    doc, problems = rule_from_form(form)
    original, position = _placement(form)
    if problems:
        return jsonify(error="fix the rule first", errors=_relative(problems, None)), 422
    try:
        sample = sample_from_form(form, now())
        result = rules_service.dry_run(
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
    return jsonify(result)


# -- history -----------------------------------------------------------------------------------


@blueprint.get("/rules/versions")
@login_required()
def rule_versions() -> str:
    """Show the version history with what each version changed."""
    page, per_page = page_args(default=20)
    listed = rules_service.list_versions(runtime().db, page, per_page)
    return render_template("console/rule_versions.html", listed=listed, current=_state().version)


@blueprint.get("/rules/versions/<int(max=2147483647):version>")
@login_required()
def rule_version(version: int) -> str | tuple[str, int]:
    """Show one stored version in full."""
    try:
        data = rules_service.get_version(runtime().db, version)
    except NotFound as exc:
        return render_template("console/error.html", title="Not found", message=exc.message), 404
    return render_template("console/rule_version.html", data=data, current=_state().version)


@blueprint.post("/rules/versions/<int(max=2147483647):version>/rollback")
@login_required(StaffRole.EDITOR)
def rule_rollback(version: int) -> BaseResponse:
    """Roll back: store a new version equal to this one."""
    rt = runtime()
    try:
        state = rules_service.rollback(
            rt.db,
            rt.policy,
            version,
            base_version=_int(request.form, "base_version"),
            actor=actor(),
        )
        flash(f"Rolled back to version {version} (stored as version {state.version}).", "info")
    except ServiceError as exc:
        report(exc)
    return redirect(url_for("console.rule_versions"))
