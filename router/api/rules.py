"""Routing rules: the set in force, single rules, order, versions, validation and dry-run.

Every change names the version it is based on (``base_version``); if another change was stored
since, the answer is 409 with the version in force and nothing is changed.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from router.api.auth import current_actor
from router.api.common import (
    PageArgs,
    instant,
    make_blueprint,
    page_schema,
    protected,
    responds,
    text,
)
from router.api.explain import ExplainRequestSchema, sample_contact
from router.core.domain import StaffRole
from router.core.rules import OPERATORS, field_catalogue
from router.runtime import runtime
from router.services import rules
from router.services.paging import paginate_list
from router.services.queues import list_queues

rules_blp = make_blueprint("rules", "Routing rules (one rule at a time)")
ruleset_blp = make_blueprint("rule_set", "The routing rule set: order, versions, validate, dry-run")

RULE_DOC = (
    'A rule document: {"id", "description", "enabled", "when": {"all"|"any": [{"field", "op", '
    '"value"} or nested groups]}, "then": {"queue", "priority" | "priority_boost", "tags", '
    '"sla_policy"}}'
)


# -- schemas -----------------------------------------------------------------------------------


class ThenSchema(Schema):
    """A rule's action."""

    queue = fields.String()
    priority = fields.Integer(allow_none=True)
    priority_boost = fields.Integer(allow_none=True)
    tags = fields.List(fields.String())
    sla_policy = fields.String(allow_none=True)


class RuleSchema(Schema):
    """A rule as stored, with its position (0 is tried first)."""

    id = fields.String()
    description = fields.String()
    enabled = fields.Boolean()
    default = fields.Boolean()
    when = fields.Dict(metadata={"description": "Conditions; absent on the default rule"})
    then = fields.Nested(ThenSchema)
    position = fields.Integer()


class RuleResultSchema(Schema):
    """One rule and the version it belongs to."""

    version = fields.Integer(required=True)
    rule = fields.Nested(RuleSchema, required=True)


class RuleSetSchema(Schema):
    """A complete rule set version."""

    version = fields.Integer(required=True, metadata={"description": "0: nothing stored yet"})
    created_at = instant()
    created_by = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    rules = fields.List(fields.Nested(RuleSchema), required=True)


RulePageSchema = Schema.from_dict(
    {
        "version": fields.Integer(required=True),
        "created_at": instant(),
        "created_by": fields.String(allow_none=True),
        "note": fields.String(allow_none=True),
        "items": fields.List(fields.Nested(RuleSchema), required=True),
        "page": fields.Integer(required=True),
        "per_page": fields.Integer(required=True),
        "total": fields.Integer(required=True),
        "pages": fields.Integer(required=True),
    },
    name="RulePage",
)


class RuleListArgs(PageArgs):
    """Filters for the rule list."""

    enabled = fields.Boolean()
    queue = fields.String(validate=validate.Length(max=64))
    q = fields.String(
        validate=validate.Length(max=100),
        metadata={"description": "Text in the rule's id or description"},
    )


class BaseVersion(Schema):
    """A change to the rules, based on a version."""

    base_version = fields.Integer(
        required=True,
        validate=validate.Range(min=0),
        metadata={"description": "The version this change is based on (409 if stale)"},
    )
    note = text(2000, metadata={"description": "Why (kept with the version)"})


class CreateRuleSchema(BaseVersion):
    """A new rule and where to put it."""

    rule = fields.Dict(required=True, metadata={"description": RULE_DOC})
    position = fields.Integer(
        validate=validate.Range(min=0, max=100_000),
        metadata={"description": "Index to insert at; default just above the default rule"},
    )


class ReplaceRuleSchema(BaseVersion):
    """A rule's new document (it keeps its place)."""

    rule = fields.Dict(required=True, metadata={"description": RULE_DOC})


class PatchRuleSchema(BaseVersion):
    """Some of a rule's keys."""

    enabled = fields.Boolean()
    description = text(500)
    when = fields.Dict()
    then = fields.Dict()

    @validates_schema
    def _something(self, data: dict[str, Any], **_: Any) -> None:
        if not {"enabled", "description", "when", "then"} & set(data):
            raise ValidationError("give at least one of enabled, description, when, then")


class DeleteArgs(Schema):
    """Which version a deletion is based on."""

    base_version = fields.Integer(required=True, validate=validate.Range(min=0))
    note = text(2000)


class MoveSchema(BaseVersion):
    """Where to move a rule: an index, or a number of places (-1 is up one)."""

    position = fields.Integer(validate=validate.Range(min=0, max=100_000))
    offset = fields.Integer(validate=validate.Range(min=-100_000, max=100_000))

    @validates_schema
    def _one(self, data: dict[str, Any], **_: Any) -> None:
        if ("position" in data) == ("offset" in data):
            raise ValidationError("give either position or offset")


class ReplaceSetSchema(BaseVersion):
    """A complete new rule list."""

    rules = fields.List(fields.Dict(), required=True, validate=validate.Length(max=5000))


class OrderSchema(BaseVersion):
    """Every rule id, in the new order."""

    order = fields.List(
        fields.String(validate=validate.Length(max=64)),
        required=True,
        validate=validate.Length(min=1, max=5000),
    )


class CandidateSchema(Schema):
    """Candidate rules: a complete list, or one rule put into the set in force."""

    rules = fields.List(fields.Raw(), validate=validate.Length(max=5000))
    rule = fields.Dict(metadata={"description": RULE_DOC})
    replacing = fields.String(
        validate=validate.Length(max=64),
        metadata={"description": "Id of the rule the candidate replaces (default: a new rule)"},
    )
    position = fields.Integer(validate=validate.Range(min=0, max=100_000))

    @validates_schema
    def _one(self, data: dict[str, Any], **_: Any) -> None:
        if ("rules" in data) == ("rule" in data):
            raise ValidationError("give either rules (a complete list) or rule (one rule)")


class RuleErrorSchema(Schema):
    """One problem, located by path."""

    path = fields.String(required=True)
    message = fields.String(required=True)


class ValidationResultSchema(Schema):
    """Whether the candidate compiles, and every problem if not."""

    valid = fields.Boolean(required=True)
    base_version = fields.Integer(required=True)
    position = fields.Integer(allow_none=True)
    errors = fields.List(fields.Nested(RuleErrorSchema), required=True)


class DryRunSchema(CandidateSchema):
    """Candidate rules and a sample contact."""

    contact = fields.Nested(ExplainRequestSchema, required=True)
    assume_enabled = fields.Boolean(
        load_default=True,
        metadata={"description": "Try a single candidate rule as enabled (default true)"},
    )


class ExplainedSchema(Schema):
    """A routed sample contact."""

    attributes = fields.Dict()
    access = fields.String(allow_none=True)
    next_open_at = fields.String(allow_none=True)
    decision = fields.Dict()


class DryRunResultSchema(Schema):
    """The sample's routing with the candidate rules and with the rules in force."""

    base_version = fields.Integer(required=True)
    candidate_rule = fields.String(allow_none=True)
    candidate_position = fields.Integer(allow_none=True)
    candidate_matched = fields.Boolean(required=True)
    changed = fields.Boolean(required=True)
    candidate = fields.Nested(ExplainedSchema, required=True)
    in_force = fields.Nested(ExplainedSchema, required=True)


class ChangesSchema(Schema):
    """What a version changed from the one before."""

    added = fields.List(fields.String())
    removed = fields.List(fields.String())
    changed = fields.List(fields.String())
    reordered = fields.Boolean()


class VersionSchema(Schema):
    """A stored version, summarised."""

    version = fields.Integer(required=True)
    created_at = instant()
    created_by = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    rule_count = fields.Integer()
    changes = fields.Nested(ChangesSchema)


class VersionArgs(PageArgs):
    """Filters for the version history."""

    created_by = fields.String(validate=validate.Length(max=320))


class RollbackSchema(BaseVersion):
    """Roll back to an older version (stored as a new version)."""


class FieldSchema(Schema):
    """A field rules can test."""

    field = fields.String()
    type = fields.String()
    ops = fields.List(fields.String())
    values = fields.List(fields.String(), allow_none=True)
    nullable = fields.Boolean()
    description = fields.String()


class CatalogueSchema(Schema):
    """What a rule may use: fields and operators, queues and SLA policies."""

    fields_ = fields.List(fields.Nested(FieldSchema), data_key="fields")
    operators = fields.List(fields.String())
    queues = fields.List(fields.String())
    sla_policies = fields.List(fields.String())


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
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List the rules in force, in order (filter by enabled, queue, text)."""
        state = _rules()
        rules = [rules.with_position(doc, i) for i, doc in enumerate(state.documents)]
        if "enabled" in args:
            rules = [rule for rule in rules if rule["enabled"] is args["enabled"]]
        if args.get("queue"):
            rules = [rule for rule in rules if rule["then"].get("queue") == args["queue"]]
        if args.get("q"):
            needle = args["q"].lower()
            rules = [
                rule
                for rule in rules
                if needle in str(rule["id"]).lower() or needle in rule["description"].lower()
            ]
        page = paginate_list(rules, args["page"], args["per_page"])
        head = state.to_dict()
        head.pop("rules")
        return {**head, **page}

    @protected(rules_blp, StaffRole.EDITOR)
    @rules_blp.arguments(CreateRuleSchema)
    @rules_blp.response(201, RuleResultSchema)
    @responds(rules_blp, 409, 422)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Add a rule (stored as a new version); validated against queues and SLA policies."""
        rt = runtime()
        return rules.create_rule(
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
    def get(self, rule_id: str) -> dict[str, Any]:
        """Return a rule with its position."""
        rt = runtime()
        return rules.get_rule(rt.db, rt.policy, rule_id)

    @protected(rules_blp, StaffRole.EDITOR)
    @rules_blp.arguments(ReplaceRuleSchema)
    @rules_blp.response(200, RuleResultSchema)
    @responds(rules_blp, 404, 409, 422)
    def put(self, body: dict[str, Any], rule_id: str) -> dict[str, Any]:
        """Replace a rule's document (it keeps its place; an id in the body renames it)."""
        rt = runtime()
        return rules.update_rule(
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
    def patch(self, body: dict[str, Any], rule_id: str) -> dict[str, Any]:
        """Change some of a rule's keys: enable or disable it, describe it, its when or then."""
        rt = runtime()
        changes: dict[str, Any] = {
            key: body[key] for key in ("enabled", "description", "when", "then") if key in body
        }
        return rules.update_rule(
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
    def delete(self, args: dict[str, Any], rule_id: str) -> dict[str, Any]:
        """Delete a rule (never the default rule); return the new rule set."""
        rt = runtime()
        return rules.delete_rule(
            rt.db,
            rt.policy,
            rule_id,
            base_version=args["base_version"],
            actor=current_actor(),
            note=args.get("note"),
        ).to_dict()


@rules_blp.route("/<rule_id>/move")
class MoveRule(MethodView):
    """Move a rule up or down."""

    @protected(rules_blp, StaffRole.EDITOR)
    @rules_blp.arguments(MoveSchema)
    @rules_blp.response(200, RuleResultSchema)
    @responds(rules_blp, 404, 409, 422)
    def post(self, body: dict[str, Any], rule_id: str) -> dict[str, Any]:
        """Move a rule to a position, or by an offset (the default rule stays last)."""
        rt = runtime()
        return rules.move_rule(
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
    def get(self) -> dict[str, Any]:
        """Return the rule set in force, every rule in order."""
        return _rules().to_dict()

    @protected(ruleset_blp, StaffRole.EDITOR)
    @ruleset_blp.arguments(ReplaceSetSchema)
    @ruleset_blp.response(200, RuleSetSchema)
    @responds(ruleset_blp, 409, 422)
    def put(self, body: dict[str, Any]) -> dict[str, Any]:
        """Replace the whole rule list (stored as a new version)."""
        rt = runtime()
        return rules.replace_rules(
            rt.db,
            rt.policy,
            base_version=body["base_version"],
            documents=body["rules"],
            actor=current_actor(),
            note=body.get("note"),
        ).to_dict()


@ruleset_blp.route("/order")
class Order(MethodView):
    """The order rules are tried in."""

    @protected(ruleset_blp, StaffRole.EDITOR)
    @ruleset_blp.arguments(OrderSchema)
    @ruleset_blp.response(200, RuleSetSchema)
    @responds(ruleset_blp, 409, 422)
    def put(self, body: dict[str, Any]) -> dict[str, Any]:
        """Reorder the rules: every rule id once, the default rule last."""
        rt = runtime()
        return rules.reorder(
            rt.db,
            rt.policy,
            base_version=body["base_version"],
            order=body["order"],
            actor=current_actor(),
            note=body.get("note"),
        ).to_dict()


@ruleset_blp.route("/validate")
class Validate(MethodView):
    """Check candidate rules without storing them."""

    @protected(ruleset_blp, StaffRole.VIEWER)
    @ruleset_blp.arguments(CandidateSchema)
    @ruleset_blp.response(200, ValidationResultSchema)
    @responds(ruleset_blp, 404, 422)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Validate a complete list, or one rule put into the set in force; nothing is stored."""
        rt = runtime()
        state = _rules()
        position = None
        documents = body.get("rules")
        if documents is None:
            documents, position = rules.candidate_documents(
                state.documents,
                body["rule"],
                replacing=body.get("replacing"),
                position=body.get("position"),
            )
        errors = rules.validate(rt.db, rt.policy, documents)
        return {
            "valid": not errors,
            "base_version": state.version,
            "position": position,
            "errors": errors,
        }


@ruleset_blp.route("/dry-run")
class DryRun(MethodView):
    """Route a sample contact with candidate rules."""

    @protected(ruleset_blp, StaffRole.VIEWER)
    @ruleset_blp.arguments(DryRunSchema)
    @ruleset_blp.response(200, DryRunResultSchema)
    @responds(ruleset_blp, 404, 422)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Compare a sample's routing with candidate rules and with the rules in force."""
        return rules.dry_run(
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
        queues = list_queues(rt.db, page=1, per_page=10_000)["items"]
        return {
            "fields_": field_catalogue(),
            "operators": list(OPERATORS),
            "queues": [queue["key"] for queue in queues],
            "sla_policies": sorted(rt.policy.sla_policies),
        }


@ruleset_blp.route("/versions")
class Versions(MethodView):
    """The version history."""

    @protected(ruleset_blp, StaffRole.VIEWER)
    @ruleset_blp.arguments(VersionArgs, location="query")
    @ruleset_blp.response(200, page_schema(VersionSchema, "VersionPage"))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
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
    def get(self, version: int) -> dict[str, Any]:
        """Return a stored version in full."""
        return rules.get_version(runtime().db, version)


@ruleset_blp.route("/versions/<int(max=2147483647):version>/rollback")
class Rollback(MethodView):
    """Roll back to a version."""

    @protected(ruleset_blp, StaffRole.EDITOR)
    @ruleset_blp.arguments(RollbackSchema)
    @ruleset_blp.response(201, RuleSetSchema)
    @responds(ruleset_blp, 404, 409, 422)
    def post(self, body: dict[str, Any], version: int) -> dict[str, Any]:
        """Store a new version equal to an old one; it is in force for the next contact."""
        rt = runtime()
        return rules.rollback(
            rt.db,
            rt.policy,
            version,
            base_version=body["base_version"],
            actor=current_actor(),
            note=body.get("note"),
        ).to_dict()
