"""Agents: profiles (skills, languages, capacity, voice endpoint) and presence."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask.views import MethodView
from flask_smorest import abort
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from router.api.auth import SECURITY, current_actor, current_staff, require_role
from router.api.common import (
    ErrorSchema,
    PageArgs,
    instant,
    make_blueprint,
    now,
    one_of,
    page_schema,
    protected,
    responds,
)
from router.core.domain import Presence, StaffRole
from router.runtime import runtime
from router.services import agents, presence
from router.services.agents import MAX_CAPACITY, MAX_LANGUAGES, AgentView
from router.services.paging import Page

F = TypeVar("F", bound=Callable[..., Any])

blp = make_blueprint("agents", "Agents: profiles and presence")

ID = "int(max=2147483647)"
# Setting presence: the agent themself with any role, a supervisor (this role or higher) anyone.
SUPERVISOR = StaffRole.EDITOR


class SkillSchema(Schema):
    """A queue served and the level (1-3)."""

    queue = fields.String(required=True, validate=validate.Length(min=1, max=64))
    level = fields.Integer(load_default=1, validate=validate.Range(min=1, max=3))


class CapacitySchema(Schema):
    """Contacts per channel an agent may hold at once."""

    voice = fields.Integer(validate=validate.Range(min=0, max=MAX_CAPACITY))
    chat = fields.Integer(validate=validate.Range(min=0, max=MAX_CAPACITY))
    email = fields.Integer(validate=validate.Range(min=0, max=MAX_CAPACITY))
    portal = fields.Integer(validate=validate.Range(min=0, max=MAX_CAPACITY))


class AgentSchema(Schema):
    """An agent: profile, load per channel and presence."""

    id = fields.Integer(required=True, metadata={"description": "The staff user's id"})
    email = fields.String(required=True)
    name = fields.String(allow_none=True)
    active = fields.Boolean()
    skills = fields.List(fields.Nested(SkillSchema))
    languages = fields.List(fields.String())
    capacity = fields.Nested(CapacitySchema)
    # Named apart from Schema.load, which a field called "load" would hide.
    load_ = fields.Nested(
        CapacitySchema,
        attribute="load",
        data_key="load",
        metadata={"description": "Open offers and work in hand"},
    )
    voice_endpoint = fields.String(allow_none=True)
    presence = fields.String(validate=one_of(Presence))
    presence_reason = fields.String(allow_none=True)
    presence_changed_at = instant()
    missed_offers = fields.Integer(metadata={"description": "Offers left to time out in a row"})
    idle_since = instant(description="Without work since (null while working)")
    last_offered_at = instant()
    created_at = instant()
    updated_at = instant()


class ProfileSchema(Schema):
    """An agent's profile fields."""

    skills = fields.List(fields.Nested(SkillSchema), metadata={"description": "Human queues"})
    languages = fields.List(
        fields.String(validate=validate.Length(min=1, max=35)),
        validate=validate.Length(max=MAX_LANGUAGES),
        metadata={"description": "Language tags, e.g. en, he, fr-CA"},
    )
    capacity = fields.Nested(
        CapacitySchema, metadata={"description": "Defaults: voice 1, chat 3, email 8, portal 8"}
    )
    voice_endpoint = fields.String(
        allow_none=True,
        validate=validate.Length(max=320),
        metadata={"description": "E.164 number, client:<identity> or sip:user@host"},
    )


class AgentCreateSchema(ProfileSchema):
    """A new agent profile for an existing staff user."""

    staff_id = fields.Integer(required=True, validate=validate.Range(min=1, max=2147483647))


class AgentPatchSchema(ProfileSchema):
    """Some of an agent's profile fields."""

    @validates_schema
    def _something(self, data: dict[str, Any], **_: Any) -> None:
        if not data:
            raise ValidationError("give at least one field to change")


class PresenceSchema(Schema):
    """A presence change."""

    presence = fields.String(required=True, validate=one_of(Presence))
    reason = fields.String(
        allow_none=True, validate=validate.Length(max=100), metadata={"description": "Why"}
    )


class AgentListArgs(PageArgs):
    """Agent filters."""

    presence = fields.String(validate=one_of(Presence))
    queue = fields.String(validate=validate.Length(max=64), metadata={"description": "Served"})
    q = fields.String(validate=validate.Length(max=200), metadata={"description": "Email or name"})


def self_or_supervisor(view: F) -> F:
    """Let an agent set their own presence with any role; anyone else's needs a supervisor."""
    # The documented role is the supervisor's (the role matrix reads it from the 403); the
    # agent themself is the one exception, checked before the body is read.

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        identity = current_staff()
        if identity.role.rank < SUPERVISOR.rank and identity.id != kwargs.get("staff_id"):
            abort(
                403,
                message=f"this needs the {SUPERVISOR.value} role, or to be the agent; yours is "
                f"{identity.role.value}",
            )
        return view(*args, **kwargs)

    documented = blp.alt_response(
        401, schema=ErrorSchema, description="Missing, unknown, expired or revoked token"
    )(wrapper)
    documented = blp.alt_response(
        403,
        schema=ErrorSchema,
        description=f"Needs the {SUPERVISOR.value} role or higher, unless the caller is the agent",
    )(documented)
    documented = blp.alt_response(
        400, schema=ErrorSchema, description="The request could not be read"
    )(documented)
    documented = blp.doc(security=SECURITY)(documented)
    return cast(F, require_role(StaffRole.VIEWER)(documented))


@blp.route("")
class Agents(MethodView):
    """Agents."""

    @protected(blp, StaffRole.VIEWER)
    @blp.arguments(AgentListArgs, location="query")
    @blp.response(200, page_schema(AgentSchema, "AgentPage"))
    def get(self, args: dict[str, Any]) -> Page[AgentView]:
        """List agents by email (filter by presence, a queue served, text)."""
        return agents.list_agents(runtime().db, **args)

    @protected(blp, StaffRole.ADMIN)
    @blp.arguments(AgentCreateSchema)
    @blp.response(201, AgentSchema)
    @responds(blp, 404, 409, 422)
    def post(self, body: dict[str, Any]) -> AgentView:
        """Give a staff user an agent profile (offline until set available)."""
        staff_id = body.pop("staff_id")
        return agents.create_agent(runtime().db, staff_id, body, actor=current_actor(), now=now())


@blp.route(f"/<{ID}:staff_id>")
class AgentItem(MethodView):
    """One agent."""

    @protected(blp, StaffRole.VIEWER)
    @blp.response(200, AgentSchema)
    @responds(blp, 404)
    def get(self, staff_id: int) -> AgentView:
        """Return an agent's profile, load and presence."""
        return agents.get_agent(runtime().db, staff_id)

    @protected(blp, StaffRole.ADMIN)
    @blp.arguments(AgentPatchSchema)
    @blp.response(200, AgentSchema)
    @responds(blp, 404, 409, 422)
    def patch(self, body: dict[str, Any], staff_id: int) -> AgentView:
        """Change an agent's skills, languages, capacity or voice endpoint.

        Capacity below the contacts in hand on a channel is refused (409).
        """
        return agents.update_agent(runtime().db, staff_id, body, actor=current_actor(), now=now())


@blp.route(f"/<{ID}:staff_id>/presence")
class AgentPresence(MethodView):
    """An agent's presence."""

    @self_or_supervisor
    @blp.arguments(PresenceSchema)
    @blp.response(200, AgentSchema)
    @responds(blp, 404, 422)
    def put(self, body: dict[str, Any], staff_id: int) -> AgentView:
        """Set an agent's presence: the agent themself, or a supervisor (editor or admin).

        Setting the presence in force again changes nothing; becoming available offers work.
        """
        rt = runtime()
        return presence.set_presence(
            rt.db,
            rt.settings,
            staff_id,
            body["presence"],
            reason=body.get("reason"),
            actor=current_actor(),
            now=now(),
        )
