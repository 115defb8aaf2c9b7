"""Routing rules over the API: what a rule, a rule set, a version, a check and a dry-run look like.

The services return rule sets, versions and checks as dataclasses; these schemas write them out,
and read the bodies of changes (each based on a version, ``base_version``).
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from router.api.common import PageArgs, instant, text
from router.api.explain import ExplainRequestSchema

RULE_DOC = (
    'A rule document: {"id", "description", "enabled", "when": {"all"|"any": [{"field", "op", '
    '"value"} or nested groups]}, "then": {"queue", "priority" | "priority_boost", "tags", '
    '"sla_policy"}}'
)


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
