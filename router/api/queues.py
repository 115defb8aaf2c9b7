"""Queues: list, create, change, delete, and the supervisors' overview."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

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
)
from router.core.domain import StaffRole
from router.runtime import runtime
from router.services import queue_overview, queues
from router.services.paging import Page
from router.services.queue_overview import QueueOverview
from router.services.queues import QueueDetail, QueueView

blp = make_blueprint("queues", "Queues and the queue overview")
overview_blp = make_blueprint("queue_overview", "Waiting contacts per queue, for supervisors")


class QueueSchema(Schema):
    """A queue."""

    key = fields.String(required=True)
    name = fields.String(required=True)
    team = fields.String(required=True)
    kind = fields.String(required=True)
    owners = fields.List(fields.String(), required=True)
    webhook_url = fields.String(allow_none=True)
    active = fields.Boolean(required=True)
    created_at = instant()
    updated_at = instant()


class SlaCountsSchema(Schema):
    """Waiting contacts by SLA state."""

    none = fields.Integer()
    ok = fields.Integer()
    warning = fields.Integer()
    breached = fields.Integer()
    met = fields.Integer()
    missed = fields.Integer()


class WaitingSchema(Schema):
    """Waiting contacts: how many, the oldest, and their SLA states."""

    waiting = fields.Integer(required=True)
    oldest_received_at = instant()
    oldest_wait_seconds = fields.Integer(allow_none=True)
    sla = fields.Nested(SlaCountsSchema, required=True)


class QueueDetailSchema(QueueSchema):
    """A queue with the rules routing to it and its waiting contacts."""

    rules = fields.List(fields.String(), required=True)
    waiting = fields.Nested(WaitingSchema, required=True)


class OverviewItemSchema(WaitingSchema):
    """One queue's line on the overview."""

    key = fields.String(required=True)
    name = fields.String(required=True)
    team = fields.String(required=True)
    kind = fields.String(required=True)
    active = fields.Boolean(required=True)


class OverviewSchema(Schema):
    """Every queue's waiting contacts, busiest first, and the totals."""

    generated_at = instant()
    totals = fields.Nested(WaitingSchema, required=True)
    items = fields.List(fields.Nested(OverviewItemSchema), required=True)
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    total = fields.Integer(required=True)
    pages = fields.Integer(required=True)


class QueueListArgs(PageArgs):
    """Queue filters."""

    team = fields.String(validate=validate.Length(max=64))
    kind = fields.String(validate=one_of(queues.QUEUE_KINDS))
    active = fields.Boolean()


class OverviewArgs(PageArgs):
    """Overview filters."""

    team = fields.String(validate=validate.Length(max=64))
    kind = fields.String(validate=one_of(queues.QUEUE_KINDS))
    include_inactive = fields.Boolean(load_default=False)


class QueueFields(Schema):
    """A queue's editable fields."""

    name = fields.String(validate=validate.Length(min=1, max=200))
    team = fields.String(validate=validate.Length(min=1, max=64))
    kind = fields.String(validate=one_of(queues.QUEUE_KINDS))
    owners = fields.List(fields.Email(), validate=validate.Length(max=50))
    webhook_url = fields.Url(
        allow_none=True, schemes={"http", "https"}, validate=validate.Length(max=500)
    )
    active = fields.Boolean()


class QueueCreateSchema(QueueFields):
    """A new queue."""

    key = fields.String(
        required=True,
        validate=validate.Regexp("^" + queues.QUEUE_KEY.pattern + "$"),
        metadata={"description": "Permanent key: lower-case letters, digits, '-', '_'"},
    )
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    team = fields.String(required=True, validate=validate.Length(min=1, max=64))


class QueuePatchSchema(QueueFields):
    """Some of a queue's fields."""

    @validates_schema
    def _something(self, data: dict[str, Any], **_: Any) -> None:
        if not data:
            raise ValidationError("give at least one field to change")


@blp.route("")
class Queues(MethodView):
    """Queues."""

    @protected(blp, StaffRole.VIEWER)
    @blp.arguments(QueueListArgs, location="query")
    @blp.response(200, page_schema(QueueSchema, "QueuePage"))
    def get(self, args: dict[str, Any]) -> Page[QueueView]:
        """List queues (filter by team, kind, active)."""
        return queues.list_queues(
            runtime().db,
            page=args["page"],
            per_page=args["per_page"],
            team=args.get("team"),
            kind=args.get("kind"),
            active=args.get("active"),
        )

    @protected(blp, StaffRole.EDITOR)
    @blp.arguments(QueueCreateSchema)
    @blp.response(201, QueueSchema)
    @responds(blp, 409, 422)
    def post(self, body: dict[str, Any]) -> QueueView:
        """Create a queue (rules can route to it from then on)."""
        return queues.create_queue(runtime().db, body, actor=current_actor())


@blp.route("/<key>")
class QueueItem(MethodView):
    """One queue."""

    @protected(blp, StaffRole.VIEWER)
    @blp.response(200, QueueDetailSchema)
    @responds(blp, 404)
    def get(self, key: str) -> QueueDetail:
        """Return a queue, the rules that route to it and its waiting contacts."""
        rt = runtime()
        return queues.get_queue(rt.db, rt.policy, key, now())

    @protected(blp, StaffRole.EDITOR)
    @blp.arguments(QueuePatchSchema)
    @blp.response(200, QueueSchema)
    @responds(blp, 404, 409, 422)
    def patch(self, body: dict[str, Any], key: str) -> QueueView:
        """Change a queue (a system queue, or one rules route to, cannot be deactivated)."""
        rt = runtime()
        return queues.update_queue(rt.db, rt.policy, key, body, actor=current_actor())

    @protected(blp, StaffRole.EDITOR)
    @blp.response(204)
    @responds(blp, 404, 409)
    def delete(self, key: str) -> None:
        """Delete a queue no rule routes to and no contact was routed to (never a system queue)."""
        rt = runtime()
        queues.delete_queue(rt.db, rt.policy, key, actor=current_actor())


@overview_blp.route("")
class Overview(MethodView):
    """What supervisors keep open."""

    @protected(overview_blp, StaffRole.VIEWER)
    @overview_blp.arguments(OverviewArgs, location="query")
    @overview_blp.response(200, OverviewSchema)
    def get(self, args: dict[str, Any]) -> QueueOverview:
        """Waiting contacts per queue, the oldest wait and SLA state counts, busiest first."""
        return queue_overview.overview(
            runtime().db,
            now(),
            page=args["page"],
            per_page=args["per_page"],
            team=args.get("team"),
            kind=args.get("kind"),
            include_inactive=args["include_inactive"],
        )
