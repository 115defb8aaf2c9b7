"""Regions and their business calendars: opening times ahead, closures and special hours."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Response, jsonify
from flask.views import MethodView
from marshmallow import Schema, fields, validate
from werkzeug.routing import BaseConverter, ValidationError

from router.api.auth import current_actor
from router.api.common import (
    IsoText,
    PageArgs,
    instant,
    make_blueprint,
    now,
    page_schema,
    protected,
    responds,
    text,
)
from router.core.domain import StaffRole
from router.runtime import runtime
from router.services import calendars
from router.services.calendars import OverrideView, RegionView, Schedule
from router.services.paging import Page

blp = make_blueprint("regions", "Regions, business calendars and calendar overrides")


class DateConverter(BaseConverter):
    """Match a YYYY-MM-DD path segment and hand the view a date."""

    regex = r"\d{4}-\d{2}-\d{2}"

    def to_python(self, value: str) -> date:
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValidationError() from None

    def to_url(self, value: date | str) -> str:
        return value.isoformat() if isinstance(value, date) else str(value)


class RegionSchema(Schema):
    """A support region and whether it is open now."""

    key = fields.String(required=True)
    name = fields.String(required=True)
    display_number = fields.String()
    e164 = fields.String(allow_none=True)
    aliases = fields.List(fields.String())
    country = fields.String()
    subdivision = fields.String(allow_none=True)
    timezone = fields.String()
    language = fields.String()
    hours = fields.List(fields.List(fields.String()))
    working_days = fields.List(fields.String())
    open_now = fields.Boolean()
    next_open_at = instant()
    local_time = IsoText()


class IntervalSchema(Schema):
    """An open interval as UTC instants."""

    start_at = instant()
    end_at = instant()


class DaySchema(Schema):
    """One local day's opening times and why."""

    date = IsoText(attribute="day", metadata={"format": "date"})
    weekday = fields.String()
    open = fields.Boolean()
    source = fields.String(
        metadata={"description": "override, holiday, weekly (working day) or weekend"}
    )
    holiday = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    hours = fields.List(fields.List(fields.String()), metadata={"description": "Local HH:MM"})
    intervals = fields.List(fields.Nested(IntervalSchema))


class ScheduleSchema(RegionSchema):
    """A region with its opening times day by day."""

    days = fields.List(fields.Nested(DaySchema), required=True)


class OverrideSchema(Schema):
    """A staff change to one day: closed, or special hours."""

    id = fields.Integer()
    region = fields.String()
    day = IsoText(metadata={"format": "date"})
    closed = fields.Boolean()
    hours = fields.List(fields.List(fields.String()))
    note = fields.String(allow_none=True)
    created_at = instant()
    created_by = fields.String(allow_none=True)


class RegionListArgs(PageArgs):
    """Region filters."""

    country = fields.String(validate=validate.Length(equal=2))


class ScheduleArgs(Schema):
    """Which days to show."""

    start = fields.Date(
        validate=validate.Range(min=date(2000, 1, 1), max=date(2099, 12, 1)),
        metadata={"description": "First local day (default: today there)"},
    )
    days = fields.Integer(
        load_default=calendars.SCHEDULE_DAYS,
        validate=validate.Range(min=1, max=calendars.MAX_SCHEDULE_DAYS),
    )


class OverrideListArgs(PageArgs):
    """Override filters."""

    since = fields.Date(validate=validate.Range(min=date(2000, 1, 1), max=date(2100, 1, 1)))
    until = fields.Date(validate=validate.Range(min=date(2000, 1, 1), max=date(2100, 1, 1)))


class OverrideBody(Schema):
    """Closed all day (no hours), or these local hours instead of the usual ones."""

    hours = fields.List(
        fields.List(
            fields.String(validate=validate.Length(max=5)), validate=validate.Length(equal=2)
        ),
        load_default=list,
        validate=validate.Length(max=12),
        metadata={"description": 'e.g. [["09:00", "12:00"]]; empty or absent: closed all day'},
    )
    note = text(500)


@blp.route("")
class Regions(MethodView):
    """Regions."""

    @protected(blp, StaffRole.VIEWER)
    @blp.arguments(RegionListArgs, location="query")
    @blp.response(200, page_schema(RegionSchema, "RegionPage"))
    def get(self, args: dict[str, Any]) -> Page[RegionView]:
        """List regions (filter by country), each open or closed now."""
        rt = runtime()
        return calendars.list_regions(
            rt.db,
            rt.intake.cache,
            rt.policy,
            now(),
            page=args["page"],
            per_page=args["per_page"],
            country=args.get("country"),
        )


@blp.route("/<key>")
class RegionItem(MethodView):
    """One region's calendar."""

    @protected(blp, StaffRole.VIEWER)
    @blp.arguments(ScheduleArgs, location="query")
    @blp.response(200, ScheduleSchema)
    @responds(blp, 404)
    def get(self, args: dict[str, Any], key: str) -> Schedule:
        """Return a region with its opening times for the next 14 days (or ``days``)."""
        rt = runtime()
        return calendars.schedule(
            rt.db,
            rt.intake.cache,
            rt.policy,
            key,
            now(),
            start=args.get("start"),
            days=args["days"],
        )


@blp.route("/<key>/overrides")
class Overrides(MethodView):
    """A region's calendar overrides."""

    @protected(blp, StaffRole.VIEWER)
    @blp.arguments(OverrideListArgs, location="query")
    @blp.response(200, page_schema(OverrideSchema, "OverridePage"))
    @responds(blp, 404)
    def get(self, args: dict[str, Any], key: str) -> Page[OverrideView]:
        """List a region's overrides by day (filter by since/until)."""
        rt = runtime()
        return calendars.list_overrides(
            rt.db,
            rt.policy,
            key,
            page=args["page"],
            per_page=args["per_page"],
            since=args.get("since"),
            until=args.get("until"),
        )


@blp.route("/<key>/overrides/<isodate:day>")
class OverrideItem(MethodView):
    """One day's override."""

    @protected(blp, StaffRole.EDITOR)
    @blp.arguments(OverrideBody)
    @blp.response(200, OverrideSchema, description="Replaced")
    @blp.alt_response(201, schema=OverrideSchema, description="Created")
    @responds(blp, 404, 409, 422)
    def put(self, body: dict[str, Any], key: str, day: date) -> Response:
        """Close the day or set its special hours (replacing any override of that day)."""
        rt = runtime()
        override, created = calendars.put_override(
            rt.db,
            rt.policy,
            key,
            day,
            body["hours"],
            note=body.get("note"),
            actor=current_actor(),
            now=now(),
        )
        response = jsonify(OverrideSchema().dump(override))
        response.status_code = 201 if created else 200
        return response

    @protected(blp, StaffRole.EDITOR)
    @blp.response(204)
    @responds(blp, 404)
    def delete(self, key: str, day: date) -> None:
        """Remove the day's override: its usual hours apply again."""
        rt = runtime()
        calendars.delete_override(rt.db, rt.policy, key, day, actor=current_actor())
