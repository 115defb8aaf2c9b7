"""Routing rules: the set in force, single rules, order, versions, validation and dry-run.

Every change names the version it is based on (``base_version``); if another change was stored
since, the answer is 409 with the version in force and nothing is changed.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from router.api.auth import current_actor
from router.api.common import make_blueprint, page_schema, protected, responds
from router.api.explain import sample_contact
from router.api.rule_schemas import (
    CandidateSchema,
    CatalogueSchema,
    CreateRuleSchema,
    DeleteArgs,
    DryRunResultSchema,
    DryRunSchema,
    MoveSchema,
    OrderSchema,
    PatchRuleSchema,
    ReplaceRuleSchema,
    ReplaceSetSchema,
    RollbackSchema,
    RuleListArgs,
    RulePageSchema,
    RuleResultSchema,
    RuleSetSchema,
    ValidationResultSchema,
    VersionArgs,
    VersionSchema,
)
from router.core.domain import StaffRole
from router.core.rules import OPERATORS, field_catalogue
from router.runtime import runtime
from router.services import rule_changes, rule_checks, rules
from router.services.paging import Page
from router.services.queues import list_queues

rules_blp = make_blueprint("rules", "Routing rules (one rule at a time)")
ruleset_blp = make_blueprint("rule_set", "The routing rule set: order, versions, validate, dry-run")

# -- rules -------------------------------------------------------------------------------------


def _rules() -> rules.RuleSetState:
    rt = runtime()
    return rules.get_rules(rt.db, rt.policy)


@rules_blp.route("")
class Rules(MethodView):
    """The rules in force, one page at a time; add a rule."""

    @protected(rules_blp, StaffRole.VIEWER)
    @rules_blp.arguments(RuleListArgs, location="query")
    @rules_blp.response(200, RulePageSchema)
    def get(self, args: dict[str, Any]) -> rules.RulePage:
        """List the rules in force, in order (filter by enabled, queue, text)."""
        return rules.list_rules(
            _rules(),
            page=args["page"],
            per_page=args["per_page"],
            enabled=args.get("enabled"),
            queue=args.get("queue"),
            text=args.get("q"),
        )

    @protected(rules_blp, StaffRole.EDITOR)
    @rules_blp.arguments(CreateRuleSchema)
    @rules_blp.response(201, RuleResultSchema)
    @responds(rules_blp, 409, 422)
    def post(self, body: dict[str, Any]) -> rules.RuleInVersion:
        """Add a rule (stored as a new version); validated against queues and SLA policies."""
        rt = runtime()
        return rule_changes.create_rule(
            rt.db,
            rt.policy,
            base_version=body["base_version"],
            rule=body["rule"],
            position=body.get("position"),
            actor=current_actor(),
            note=body.get("note"),
        )


@rules_blp.route("/<rule_id>")
class RuleItem(MethodView):
    """One rule of the set in force."""

    @protected(rules_blp, StaffRole.VIEWER)
    @rules_blp.response(200, RuleResultSchema)
    @responds(rules_blp, 404)
    def get(self, rule_id: str) -> rules.RuleInVersion:
        """Return a rule with its position."""
        rt = runtime()
        return rules.get_rule(rt.db, rt.policy, rule_id)

    @protected(rules_blp, StaffRole.EDITOR)
    @rules_blp.arguments(ReplaceRuleSchema)
    @rules_blp.response(200, RuleResultSchema)
    @responds(rules_blp, 404, 409, 422)
    def put(self, body: dict[str, Any], rule_id: str) -> rules.RuleInVersion:
        """Replace a rule's document (it keeps its place; an id in the body renames it)."""
        rt = runtime()
        return rule_changes.update_rule(
            rt.db,
            rt.policy,
            rule_id,
            base_version=body["base_version"],
            rule=body["rule"],
            actor=current_actor(),
            note=body.get("note"),
        )

    @protected(rules_blp, StaffRole.EDITOR)
    @rules_blp.arguments(PatchRuleSchema)
    @rules_blp.response(200, RuleResultSchema)
    @responds(rules_blp, 404, 409, 422)
    def patch(self, body: dict[str, Any], rule_id: str) -> rules.RuleInVersion:
        """Change some of a rule's keys: enable or disable it, describe it, its when or then."""
        rt = runtime()
        changes: dict[str, Any] = {
            key: body[key] for key in ("enabled", "description", "when", "then") if key in body
        }
        return rule_changes.update_rule(
            rt.db,
            rt.policy,
            rule_id,
            base_version=body["base_version"],
            changes=changes,
            actor=current_actor(),
            note=body.get("note"),
        )

    @protected(rules_blp, StaffRole.EDITOR)
    @rules_blp.arguments(DeleteArgs, location="query")
    @rules_blp.response(200, RuleSetSchema)
    @responds(rules_blp, 404, 409, 422)
    def delete(self, args: dict[str, Any], rule_id: str) -> rules.RuleSetState:
        """Delete a rule (never the default rule); return the new rule set."""
        rt = runtime()
        return rule_changes.delete_rule(
            rt.db,
            rt.policy,
            rule_id,
            base_version=args["base_version"],
            actor=current_actor(),
            note=args.get("note"),
        )


@rules_blp.route("/<rule_id>/move")
class MoveRule(MethodView):
    """Move a rule up or down."""

    @protected(rules_blp, StaffRole.EDITOR)
    @rules_blp.arguments(MoveSchema)
    @rules_blp.response(200, RuleResultSchema)
    @responds(rules_blp, 404, 409, 422)
    def post(self, body: dict[str, Any], rule_id: str) -> rules.RuleInVersion:
        """Move a rule to a position, or by an offset (the default rule stays last)."""
        rt = runtime()
        return rule_changes.move_rule(
            rt.db,
            rt.policy,
            rule_id,
            base_version=body["base_version"],
            position=body.get("position"),
            offset=body.get("offset"),
            actor=current_actor(),
            note=body.get("note"),
        )


# -- the rule set ------------------------------------------------------------------------------


@ruleset_blp.route("")
class RuleSet(MethodView):
    """The complete rule set in force."""

    @protected(ruleset_blp, StaffRole.VIEWER)
    @ruleset_blp.response(200, RuleSetSchema)
    def get(self) -> rules.RuleSetState:
        """Return the rule set in force, every rule in order."""
        return _rules()

    @protected(ruleset_blp, StaffRole.EDITOR)
    @ruleset_blp.arguments(ReplaceSetSchema)
    @ruleset_blp.response(200, RuleSetSchema)
    @responds(ruleset_blp, 409, 422)
    def put(self, body: dict[str, Any]) -> rules.RuleSetState:
        """Replace the whole rule list (stored as a new version)."""
        rt = runtime()
        return rule_changes.replace_rules(
            rt.db,
            rt.policy,
            base_version=body["base_version"],
            documents=body["rules"],
            actor=current_actor(),
            note=body.get("note"),
        )


@ruleset_blp.route("/order")
class Order(MethodView):
    """The order rules are tried in."""

    @protected(ruleset_blp, StaffRole.EDITOR)
    @ruleset_blp.arguments(OrderSchema)
    @ruleset_blp.response(200, RuleSetSchema)
    @responds(ruleset_blp, 409, 422)
    def put(self, body: dict[str, Any]) -> rules.RuleSetState:
        """Reorder the rules: every rule id once, the default rule last."""
        rt = runtime()
        return rule_changes.reorder(
            rt.db,
            rt.policy,
            base_version=body["base_version"],
            order=body["order"],
            actor=current_actor(),
            note=body.get("note"),
        )


@ruleset_blp.route("/validate")
class Validate(MethodView):
    """Check candidate rules without storing them."""

    @protected(ruleset_blp, StaffRole.VIEWER)
    @ruleset_blp.arguments(CandidateSchema)
    @ruleset_blp.response(200, ValidationResultSchema)
    @responds(ruleset_blp, 404, 422)
    def post(self, body: dict[str, Any]) -> rule_checks.RuleCheck:
        """Validate a complete list, or one rule put into the set in force; nothing is stored."""
        rt = runtime()
        return rule_checks.check(
            rt.db,
            rt.policy,
            body.get("rules"),
            rule=body.get("rule"),
            replacing=body.get("replacing"),
            position=body.get("position"),
        )


@ruleset_blp.route("/dry-run")
class DryRun(MethodView):
    """Route a sample contact with candidate rules."""

    @protected(ruleset_blp, StaffRole.VIEWER)
    @ruleset_blp.arguments(DryRunSchema)
    @ruleset_blp.response(200, DryRunResultSchema)
    @responds(ruleset_blp, 404, 422)
    def post(self, body: dict[str, Any]) -> rule_checks.DryRun:
        """Compare a sample's routing with candidate rules and with the rules in force."""
        return rule_checks.dry_run(
            runtime().intake,
            body.get("rules"),
            sample_contact(body["contact"]),
            rule=body.get("rule"),
            replacing=body.get("replacing"),
            position=body.get("position"),
            assume_enabled=body["assume_enabled"],
        )


@ruleset_blp.route("/fields")
class Catalogue(MethodView):
    """What rules can use."""

    @protected(ruleset_blp, StaffRole.VIEWER)
    @ruleset_blp.response(200, CatalogueSchema)
    def get(self) -> dict[str, Any]:
        """List the fields and operators rules can test, the queues and the SLA policies."""
        rt = runtime()
        queues = list_queues(rt.db, page=1, per_page=10_000).items
        return {
            "fields_": field_catalogue(),
            "operators": list(OPERATORS),
            "queues": [queue.key for queue in queues],
            "sla_policies": sorted(rt.policy.sla_policies),
        }


@ruleset_blp.route("/versions")
class Versions(MethodView):
    """The version history."""

    @protected(ruleset_blp, StaffRole.VIEWER)
    @ruleset_blp.arguments(VersionArgs, location="query")
    @ruleset_blp.response(200, page_schema(VersionSchema, "VersionPage"))
    def get(self, args: dict[str, Any]) -> Page[rules.VersionSummary]:
        """List stored versions, newest first, each with what it changed."""
        return rules.list_versions(
            runtime().db, args["page"], args["per_page"], created_by=args.get("created_by")
        )


@ruleset_blp.route("/versions/<int(max=2147483647):version>")
class VersionItem(MethodView):
    """One stored version."""

    @protected(ruleset_blp, StaffRole.VIEWER)
    @ruleset_blp.response(200, RuleSetSchema)
    @responds(ruleset_blp, 404)
    def get(self, version: int) -> rules.RuleSetState:
        """Return a stored version in full."""
        return rules.get_version(runtime().db, version)


@ruleset_blp.route("/versions/<int(max=2147483647):version>/rollback")
class Rollback(MethodView):
    """Roll back to a version."""

    @protected(ruleset_blp, StaffRole.EDITOR)
    @ruleset_blp.arguments(RollbackSchema)
    @ruleset_blp.response(201, RuleSetSchema)
    @responds(ruleset_blp, 404, 409, 422)
    def post(self, body: dict[str, Any], version: int) -> rules.RuleSetState:
        """Store a new version equal to an old one; it is in force for the next contact."""
        rt = runtime()
        return rule_changes.rollback(
            rt.db,
            rt.policy,
            version,
            base_version=body["base_version"],
            actor=current_actor(),
            note=body.get("note"),
        )
