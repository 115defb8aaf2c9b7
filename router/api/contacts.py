"""Contacts: list and filter, detail with timeline and trace, re-grade, accept, respond, resolve."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields, validate

from router.api.auth import current_actor
from router.api.common import (
    PageArgs,
    instant,
    make_blueprint,
    now,
    one_of,
    page_schema,
    protected,
    responds,
    text,
)
from router.core.domain import Category, Channel, ContactStatus, Severity, SlaState, StaffRole, Tier
from router.runtime import runtime
from router.services import contact_changes, contacts
from router.services.paging import Page

blp = make_blueprint("contacts", "Contacts: what waits, its timeline, and staff actions")

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


class ContactSchema(Schema):
    """A contact's list entry; ``sla_state`` is the state now (a passed due time is breached)."""

    id = fields.Integer(required=True)
    reference = fields.String(required=True)
    channel = fields.String()
    status = fields.String()
    account_id = fields.String(allow_none=True)
    account_name = fields.String(allow_none=True)
    tier = fields.String(allow_none=True)
    severity = fields.String()
    category = fields.String()
    topic = fields.String(allow_none=True)
    region = fields.String(allow_none=True)
    queue = fields.String(allow_none=True)
    priority = fields.Integer()
    subject = fields.String(allow_none=True)
    from_address = fields.String(allow_none=True)
    tags = fields.List(fields.String())
    received_at = instant()
    sla_policy = fields.String(allow_none=True)
    warning_at = instant()
    due_at = instant()
    sla_state = fields.String()
    sla_state_recorded = fields.String()
    first_response_at = instant()
    accepted_at = instant()
    resolved_at = instant()
    wait_seconds = fields.Integer(allow_none=True)


class EventSchema(Schema):
    """A timeline entry."""

    id = fields.Integer()
    at = instant()
    kind = fields.String()
    actor = fields.String(allow_none=True)
    data = fields.Dict()


class ContactDetailSchema(ContactSchema):
    """A contact with its routing decision, trace and timeline."""

    external_id = fields.String()
    admin_email = fields.String(allow_none=True)
    via_partner_id = fields.String(allow_none=True)
    language = fields.String(allow_none=True)
    sla_started_at = instant()
    rule_version = fields.Integer(allow_none=True)
    matched_rule = fields.String(allow_none=True)
    checklist = fields.Dict()
    # Email: whether the From: address was proven by an aligned SPF/DKIM/DMARC pass, and why.
    sender = fields.Dict(allow_none=True)
    decision = fields.Dict()
    trace = fields.List(fields.Dict())
    events = fields.List(fields.Nested(EventSchema))


class ContactListArgs(PageArgs):
    """Contact filters."""

    queue = fields.String(validate=validate.Length(max=64))
    channel = fields.String(validate=one_of(Channel))
    tier = fields.String(validate=one_of(Tier))
    sla_state = fields.String(validate=one_of(SlaState))
    account = fields.String(validate=validate.Length(max=64))
    status = fields.String(validate=one_of(ContactStatus))
    severity = fields.String(validate=one_of(Severity))
    category = fields.String(validate=one_of(Category))
    region = fields.String(validate=validate.Length(max=16))
    q = fields.String(
        validate=validate.Length(max=200),
        metadata={"description": "Text in the subject, sender or provider id"},
    )
    received_since = fields.AwareDateTime(validate=validate.Range(min=EARLIEST, max=LATEST))
    received_until = fields.AwareDateTime(validate=validate.Range(min=EARLIEST, max=LATEST))
    sort = fields.String(load_default="-received_at", validate=one_of(list(contacts.SORTS)))


class RegradeSchema(Schema):
    """A new severity, and why."""

    severity = fields.String(required=True, validate=one_of(Severity))
    reason = text(500)


class FirstResponseSchema(Schema):
    """When the first response was sent (default now)."""

    at = fields.AwareDateTime(validate=validate.Range(min=EARLIEST, max=LATEST))
    note = text(500)


class NoteSchema(Schema):
    """An optional note for the timeline."""

    note = text(500)


@blp.route("")
class Contacts(MethodView):
    """Contacts."""

    @protected(blp, StaffRole.VIEWER)
    @blp.arguments(ContactListArgs, location="query")
    @blp.response(200, page_schema(ContactSchema, "ContactPage"))
    def get(self, args: dict[str, Any]) -> Page[contacts.ContactSummary]:
        """List contacts, newest first (filter by queue, channel, tier, SLA state, account...)."""
        filters = dict(args)
        page, per_page, sort = filters.pop("page"), filters.pop("per_page"), filters.pop("sort")
        return contacts.list_contacts(
            runtime().db, now(), page=page, per_page=per_page, sort=sort, **filters
        )


@blp.route("/<int(max=2147483647):contact_id>")
class ContactItem(MethodView):
    """One contact."""

    @protected(blp, StaffRole.VIEWER)
    @blp.response(200, ContactDetailSchema)
    @responds(blp, 404)
    def get(self, contact_id: int) -> contacts.ContactDetail:
        """Return a contact with its routing decision, trace and timeline."""
        return contacts.get_contact(runtime().db, contact_id, now())


@blp.route("/<int(max=2147483647):contact_id>/regrade")
class Regrade(MethodView):
    """Re-grade severity."""

    @protected(blp, StaffRole.EDITOR)
    @blp.arguments(RegradeSchema)
    @blp.response(200, ContactDetailSchema)
    @responds(blp, 404, 409)
    def post(self, body: dict[str, Any], contact_id: int) -> contacts.ContactDetail:
        """Change the severity; the SLA due time is recomputed from the original receipt."""
        rt = runtime()
        return contact_changes.regrade_severity(
            rt.db,
            rt.intake.cache,
            rt.policy,
            contact_id,
            Severity(body["severity"]),
            actor=current_actor(),
            now=now(),
            reason=body.get("reason"),
        )


@blp.route("/<int(max=2147483647):contact_id>/accept")
class Accept(MethodView):
    """Accept a waiting contact."""

    @protected(blp, StaffRole.EDITOR)
    @blp.arguments(NoteSchema)
    @blp.response(200, ContactDetailSchema)
    @responds(blp, 404, 409)
    def post(self, body: dict[str, Any], contact_id: int) -> contacts.ContactDetail:
        """Take a waiting contact out of its queue."""
        return contact_changes.accept(
            runtime().db, contact_id, actor=current_actor(), now=now(), note=body.get("note")
        )


@blp.route("/<int(max=2147483647):contact_id>/first-response")
class FirstResponse(MethodView):
    """Record the first response."""

    @protected(blp, StaffRole.EDITOR)
    @blp.arguments(FirstResponseSchema)
    @blp.response(200, ContactDetailSchema)
    @responds(blp, 404, 409, 422)
    def post(self, body: dict[str, Any], contact_id: int) -> contacts.ContactDetail:
        """Record the first response: the SLA clock stops as met or missed."""
        return contact_changes.record_first_response(
            runtime().db,
            contact_id,
            actor=current_actor(),
            now=now(),
            at=body.get("at"),
            note=body.get("note"),
        )


@blp.route("/<int(max=2147483647):contact_id>/resolve")
class Resolve(MethodView):
    """Resolve a contact."""

    @protected(blp, StaffRole.EDITOR)
    @blp.arguments(NoteSchema)
    @blp.response(200, ContactDetailSchema)
    @responds(blp, 404, 409)
    def post(self, body: dict[str, Any], contact_id: int) -> contacts.ContactDetail:
        """Resolve a contact (it also counts as the first response if none was recorded)."""
        return contact_changes.resolve(
            runtime().db, contact_id, actor=current_actor(), now=now(), note=body.get("note")
        )
