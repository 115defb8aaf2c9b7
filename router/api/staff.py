"""Staff users, their API tokens (shown once), who is calling, and the audit log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask.views import MethodView
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from router.api.auth import current_actor, current_staff
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
from router.services import audit, staff
from router.services.audit import AuditEntryView
from router.services.paging import Page
from router.services.staff import NewToken, StaffDetail, StaffView, TokenView

blp = make_blueprint("staff", "Staff users and API tokens")
me_blp = make_blueprint("me", "Who is calling")
audit_blp = make_blueprint("audit", "The audit log")

ID = "int(max=2147483647)"
NO_STORE = {"Cache-Control": "no-store"}
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


class StaffSchema(Schema):
    """A staff user."""

    id = fields.Integer(required=True)
    email = fields.String(required=True)
    name = fields.String(allow_none=True)
    role = fields.String(required=True)
    active = fields.Boolean()
    has_password = fields.Boolean(metadata={"description": "May log in to the console"})
    created_at = instant()
    login_locked_until = instant(
        description="Console log-in locked out after failed passwords until then (null: not "
        "locked); POST /staff/{id}/unlock lifts it"
    )


class TokenSchema(Schema):
    """An API token's metadata."""

    id = fields.Integer(required=True)
    staff_id = fields.Integer()
    name = fields.String()
    prefix = fields.String(metadata={"description": "First characters, to recognise it"})
    created_at = instant()
    expires_at = instant()
    last_used_at = instant()
    revoked_at = instant()
    active = fields.Boolean()


class IssuedTokenSchema(TokenSchema):
    """A token just issued: the only answer that carries it."""

    token = fields.String(required=True, metadata={"description": "Shown once; stored hashed"})


class StaffDetailSchema(StaffSchema):
    """A staff user with their tokens."""

    tokens = fields.List(fields.Nested(TokenSchema))


class StaffListArgs(PageArgs):
    """Staff filters."""

    role = fields.String(validate=one_of(StaffRole))
    active = fields.Boolean()
    q = fields.String(validate=validate.Length(max=200), metadata={"description": "Email or name"})


class StaffCreateSchema(Schema):
    """A new staff user."""

    email = fields.Email(required=True, validate=validate.Length(max=320))
    role = fields.String(required=True, validate=one_of(StaffRole))
    name = fields.String(allow_none=True, validate=validate.Length(max=200))
    password = fields.String(
        validate=validate.Length(min=12, max=200),
        load_only=True,
        metadata={"description": "For console login; at least 12 characters"},
    )


class StaffPatchSchema(Schema):
    """Some of a staff user's fields."""

    name = fields.String(allow_none=True, validate=validate.Length(max=200))
    role = fields.String(validate=one_of(StaffRole))
    active = fields.Boolean()
    password = fields.String(validate=validate.Length(min=12, max=200), load_only=True)

    @validates_schema
    def _something(self, data: dict[str, Any], **_: Any) -> None:
        if not data:
            raise ValidationError("give at least one field to change")


class TokenListArgs(PageArgs):
    """Token filters."""

    active = fields.Boolean()


class TokenCreateSchema(Schema):
    """A new token's label and lifetime."""

    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    expires_at = fields.AwareDateTime(
        allow_none=True,
        validate=validate.Range(max=LATEST),
        metadata={"description": "Default: never expires"},
    )


class MeSchema(Schema):
    """The caller."""

    id = fields.Integer(required=True)
    email = fields.String(required=True)
    role = fields.String(required=True)


class AuditSchema(Schema):
    """Who changed what, when, with the state before and after."""

    id = fields.Integer(required=True)
    at = instant()
    actor = fields.String()
    action = fields.String()
    entity_type = fields.String()
    entity_id = fields.String()
    before = fields.Dict(allow_none=True)
    after = fields.Dict(allow_none=True)


class AuditArgs(PageArgs):
    """Audit filters."""

    actor = fields.String(validate=validate.Length(max=320))
    action = fields.String(
        validate=validate.Length(max=64),
        metadata={"description": "e.g. rule.create, or rule for every rule action"},
    )
    entity_type = fields.String(validate=validate.Length(max=64))
    entity_id = fields.String(validate=validate.Length(max=255))
    since = fields.AwareDateTime(validate=validate.Range(min=EARLIEST, max=LATEST))
    until = fields.AwareDateTime(validate=validate.Range(min=EARLIEST, max=LATEST))


@me_blp.route("")
class Me(MethodView):
    """The caller."""

    @protected(me_blp, StaffRole.VIEWER)
    @me_blp.response(200, MeSchema)
    def get(self) -> dict[str, Any]:
        """Return who the token belongs to and their role."""
        identity = current_staff()
        return {"id": identity.id, "email": identity.email, "role": identity.role.value}


@blp.route("")
class Staff(MethodView):
    """Staff users."""

    @protected(blp, StaffRole.ADMIN)
    @blp.arguments(StaffListArgs, location="query")
    @blp.response(200, page_schema(StaffSchema, "StaffPage"))
    def get(self, args: dict[str, Any]) -> Page[StaffView]:
        """List staff users (filter by role, active, text)."""
        return staff.list_staff(runtime().db, now=now(), **args)

    @protected(blp, StaffRole.ADMIN)
    @blp.arguments(StaffCreateSchema)
    @blp.response(201, StaffSchema)
    @responds(blp, 409, 422)
    def post(self, body: dict[str, Any]) -> StaffView:
        """Create a staff user."""
        return staff.add_staff(
            runtime().db,
            body["email"],
            body["role"],
            name=body.get("name"),
            password=body.get("password"),
            actor=current_actor(),
        )


@blp.route(f"/<{ID}:staff_id>")
class StaffItem(MethodView):
    """One staff user."""

    @protected(blp, StaffRole.ADMIN)
    @blp.response(200, StaffDetailSchema)
    @responds(blp, 404)
    def get(self, staff_id: int) -> StaffDetail:
        """Return a staff user and their tokens."""
        return staff.get_staff(runtime().db, staff_id, now())

    @protected(blp, StaffRole.ADMIN)
    @blp.arguments(StaffPatchSchema)
    @blp.response(200, StaffSchema)
    @responds(blp, 404, 409, 422)
    def patch(self, body: dict[str, Any], staff_id: int) -> StaffView:
        """Change a staff user's name, role, active flag or password (one admin must remain).

        Deactivating a user or changing their password ends their console sessions.
        """
        return staff.update_staff(runtime().db, staff_id, body, actor=current_actor(), now=now())


@blp.route(f"/<{ID}:staff_id>/unlock")
class StaffUnlock(MethodView):
    """A staff user's console log-in lock-out."""

    @protected(blp, StaffRole.ADMIN)
    @blp.response(200, StaffSchema)
    @responds(blp, 404)
    def post(self, staff_id: int) -> StaffView:
        """Lift a console log-in lock-out and forget the failed log-ins (harmless if none)."""
        return staff.unlock_login(runtime().db, staff_id, actor=current_actor(), now=now())


@blp.route(f"/<{ID}:staff_id>/tokens")
class Tokens(MethodView):
    """A staff user's tokens."""

    @protected(blp, StaffRole.ADMIN)
    @blp.arguments(TokenListArgs, location="query")
    @blp.response(200, page_schema(TokenSchema, "TokenPage"))
    @responds(blp, 404)
    def get(self, args: dict[str, Any], staff_id: int) -> Page[TokenView]:
        """List a staff user's tokens, newest first."""
        return staff.list_tokens(runtime().db, staff_id, now(), **args)

    @protected(blp, StaffRole.ADMIN)
    @blp.arguments(TokenCreateSchema)
    @blp.response(201, IssuedTokenSchema)
    @responds(blp, 404, 409, 422)
    def post(self, body: dict[str, Any], staff_id: int) -> tuple[NewToken, dict[str, str]]:
        """Issue a token (shown once in this answer)."""
        issued = staff.create_token(
            runtime().db,
            staff_id,
            name=body["name"],
            expires_at=body.get("expires_at"),
            actor=current_actor(),
            now=now(),
        )
        return issued, NO_STORE


@blp.route(f"/<{ID}:staff_id>/tokens/<{ID}:token_id>")
class TokenItem(MethodView):
    """One token."""

    @protected(blp, StaffRole.ADMIN)
    @blp.response(200, TokenSchema)
    @responds(blp, 404)
    def delete(self, staff_id: int, token_id: int) -> TokenView:
        """Revoke a token at once."""
        return staff.revoke_token(
            runtime().db, staff_id, token_id, actor=current_actor(), now=now()
        )


@audit_blp.route("")
class Audit(MethodView):
    """The audit log."""

    @protected(audit_blp, StaffRole.VIEWER)
    @audit_blp.arguments(AuditArgs, location="query")
    @audit_blp.response(200, page_schema(AuditSchema, "AuditPage"))
    def get(self, args: dict[str, Any]) -> Page[AuditEntryView]:
        """List audit entries, newest first (filter by actor, action, entity, time)."""
        return audit.list_entries(runtime().db, **args)
