"""POST /api/v1/route/explain: route a sample contact and show the decision; nothing stored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask.views import MethodView
from flask_smorest import abort
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from router.api.common import make_blueprint, protected, responds
from router.core.domain import Category, Channel, Severity, StaffRole, Tier, Topic
from router.core.rules import ContactAttributes
from router.intake import ContactRequest, IdentityError, Sender
from router.runtime import runtime

blueprint = make_blueprint("explain", "Explain routing decisions")

# Routing and SLA arithmetic is defined for contacts of this era; far-off instants are mistakes.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


class AttrValue(fields.Field):  # type: ignore[type-arg]
    """A custom account attribute's value: a string, a number or true/false."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool | int | float | str) and value == value:  # rejects NaN
            if isinstance(value, str) and len(value) > 500:
                raise ValidationError("at most 500 characters")
            return value
        raise ValidationError("must be a string, a number or true/false")


def _choice(enum: type[Any]) -> validate.OneOf:
    return validate.OneOf([member.value for member in enum])


class AttributesSchema(Schema):
    """Every routing attribute, given explicitly (no account lookup)."""

    channel = fields.String(required=True, validate=_choice(Channel))
    tier = fields.String(required=True, validate=_choice(Tier))
    in_business_hours = fields.Boolean(load_default=True)
    account_id = fields.String(load_default=None, allow_none=True)
    account_region = fields.String(load_default=None, allow_none=True)
    account_country = fields.String(load_default=None, allow_none=True)
    partner_id = fields.String(load_default=None, allow_none=True)
    via_partner = fields.Boolean(load_default=False)
    professional_services = fields.Boolean(load_default=False)
    severity = fields.String(load_default="S3", validate=_choice(Severity))
    category = fields.String(load_default="break-fix", validate=_choice(Category))
    topic = fields.String(load_default=None, allow_none=True, validate=_choice(Topic))
    number_region = fields.String(load_default=None, allow_none=True)
    language = fields.String(load_default=None, allow_none=True)
    tags = fields.List(
        fields.String(validate=validate.Length(max=100)),
        load_default=list,
        validate=validate.Length(max=50),
    )
    subject = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))
    attrs = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=64)),
        values=AttrValue(),
        load_default=dict,
        validate=validate.Length(max=50),
    )


class ExplainRequestSchema(Schema):
    """An account (looked up) plus contact details, or explicit attributes."""

    account_id = fields.String(validate=validate.Length(min=1, max=64))
    admin_email = fields.Email()
    channel = fields.String(validate=_choice(Channel))
    severity = fields.String(validate=_choice(Severity))
    category = fields.String(validate=_choice(Category))
    topic = fields.String(validate=_choice(Topic))
    number_region = fields.String(validate=validate.Length(max=16))
    subject = fields.String(validate=validate.Length(max=500))
    tags = fields.List(
        fields.String(validate=validate.Length(max=100)), validate=validate.Length(max=50)
    )
    handoff = fields.Boolean()
    received_at = fields.AwareDateTime(
        validate=validate.Range(min=EARLIEST, max=LATEST),
        metadata={"description": "Default: now (2000-01-01 to 2100-01-01)"},
    )
    attributes = fields.Nested(AttributesSchema)

    @validates_schema
    def _one_way(self, data: dict[str, Any], **_: Any) -> None:
        if ("attributes" in data) == ("account_id" in data or "admin_email" in data):
            raise ValidationError(
                "give either attributes, or account_id/admin_email with a channel"
            )
        if "attributes" not in data and "channel" not in data:
            raise ValidationError("channel is required with account_id", "channel")


class ExplainResponseSchema(Schema):
    """The decision and its trace."""

    attributes = fields.Dict()
    access = fields.String(allow_none=True)
    next_open_at = fields.String(allow_none=True)
    decision = fields.Dict()


@blueprint.route("/explain")
class Explain(MethodView):
    """Explain how a contact would be routed."""

    @protected(blueprint, StaffRole.VIEWER)
    @blueprint.arguments(ExplainRequestSchema)
    @blueprint.response(200, ExplainResponseSchema)
    @responds(blueprint, 404)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Route attributes or an account's sample contact; return decision and trace."""
        sample = sample_contact(body)
        intake = runtime().intake
        if isinstance(sample, ContactAttributes):
            return intake.explain_attributes(sample)
        try:
            return intake.explain_request(sample)
        except IdentityError as exc:
            abort(404, message=f"cannot identify the contact: {exc.reason}")
        raise AssertionError("unreachable")


def sample_contact(body: dict[str, Any]) -> ContactAttributes | ContactRequest:
    """Turn a loaded ExplainRequestSchema body into explicit attributes or a contact request."""
    received_at = body.get("received_at") or datetime.now(UTC)
    if "attributes" in body:
        values = dict(body["attributes"])
        values["tags"] = frozenset(values["tags"])
        return ContactAttributes(received_at=received_at, **values)
    return ContactRequest(
        channel=Channel(body["channel"]),
        external_id="explain",
        received_at=received_at,
        sender=Sender(account_id=body.get("account_id"), admin_email=body.get("admin_email")),
        severity=Severity(body["severity"]) if "severity" in body else None,
        category=Category(body["category"]) if "category" in body else None,
        topic=Topic(body["topic"]) if "topic" in body else None,
        number_region=body.get("number_region"),
        subject=body.get("subject"),
        tags=frozenset(body.get("tags", ())),
        handoff=body.get("handoff", False),
    )
