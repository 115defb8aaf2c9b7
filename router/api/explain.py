"""POST /api/v1/route/explain: route a sample contact and show the decision; nothing stored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from router.api.auth import SECURITY, require_role
from router.domain import Category, Channel, Severity, StaffRole, Tier, Topic
from router.rules import ContactAttributes
from router.runtime import runtime
from router.services.intake import ContactRequest, IdentityError

blueprint = Blueprint("explain", __name__, description="Explain routing decisions")


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
    tags = fields.List(fields.String(validate=validate.Length(max=100)), load_default=list)
    subject = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))
    attrs = fields.Dict(keys=fields.String(), load_default=dict)


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
    tags = fields.List(fields.String(validate=validate.Length(max=100)))
    handoff = fields.Boolean()
    received_at = fields.AwareDateTime(metadata={"description": "Default: now"})
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

    @blueprint.doc(security=SECURITY)
    @blueprint.arguments(ExplainRequestSchema)
    @blueprint.response(200, ExplainResponseSchema)
    @blueprint.alt_response(401, description="Missing or invalid token")
    @blueprint.alt_response(404, description="Unknown account or admin")
    @require_role(StaffRole.VIEWER)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Route attributes or an account's sample contact; return decision and trace."""
        received_at = body.get("received_at") or datetime.now(UTC)
        intake = runtime().intake
        if "attributes" in body:
            values = dict(body["attributes"])
            values["tags"] = frozenset(values["tags"])
            return intake.explain_attributes(ContactAttributes(received_at=received_at, **values))
        request = ContactRequest(
            channel=Channel(body["channel"]),
            external_id="explain",
            received_at=received_at,
            account_id=body.get("account_id"),
            admin_email=body.get("admin_email"),
            severity=Severity(body["severity"]) if "severity" in body else None,
            category=Category(body["category"]) if "category" in body else None,
            topic=Topic(body["topic"]) if "topic" in body else None,
            number_region=body.get("number_region"),
            subject=body.get("subject"),
            tags=frozenset(body.get("tags", ())),
            handoff=body.get("handoff", False),
        )
        try:
            return intake.explain_request(request)
        except IdentityError as exc:
            abort(404, message=f"cannot identify the contact: {exc.reason}")
        raise AssertionError("unreachable")
