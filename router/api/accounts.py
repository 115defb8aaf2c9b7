"""Accounts, their administrators, support PINs (shown once) and PIN lock-outs."""

from __future__ import annotations

from datetime import UTC, datetime
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
from router.core.domain import StaffRole, Tier
from router.runtime import runtime
from router.services import accounts, pins
from router.services.accounts import AccountDetail, AccountView, AdminView
from router.services.paging import Page
from router.services.pins import IssuedPin, LockoutView, PinView

blp = make_blueprint("accounts", "Accounts, administrators and support PINs")
lockouts_blp = make_blueprint("pin_lockouts", "Calling numbers locked out of PIN checks")

ID = "int(max=2147483647)"
NO_STORE = {"Cache-Control": "no-store"}
ACCOUNT_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class AdminSchema(Schema):
    """An administrator of an account (the people who may open contacts)."""

    id = fields.Integer(required=True)
    account_id = fields.String()
    email = fields.String(required=True)
    name = fields.String(allow_none=True)
    active = fields.Boolean()
    created_at = instant()


class PinSchema(Schema):
    """A support PIN's metadata (its digits are never shown again)."""

    id = fields.Integer(required=True)
    account_id = fields.String()
    admin_id = fields.Integer(allow_none=True)
    admin_email = fields.String(allow_none=True)
    created_at = instant()
    created_by = fields.String(allow_none=True)


class IssuedPinSchema(PinSchema):
    """A PIN just set: the only answer that carries its digits."""

    pin = fields.String(required=True, metadata={"description": "Shown once; stored hashed"})
    rotated = fields.Boolean()
    replaced_pin_id = fields.Integer(allow_none=True)


class AccountSchema(Schema):
    """A customer organisation or a partner."""

    id = fields.String(required=True)
    name = fields.String(required=True)
    tier = fields.String(required=True)
    trial_started_at = instant()
    is_partner = fields.Boolean()
    partner_id = fields.String(allow_none=True)
    region = fields.String(allow_none=True)
    country = fields.String()
    subdivision = fields.String(allow_none=True)
    timezone = fields.String()
    professional_services = fields.Boolean()
    csm_name = fields.String(allow_none=True)
    csm_email = fields.String(allow_none=True)
    account_manager_name = fields.String(allow_none=True)
    account_manager_email = fields.String(allow_none=True)
    attributes = fields.Dict()
    created_at = instant()
    updated_at = instant()


class AccountDetailSchema(AccountSchema):
    """An account with its administrators, PINs and the accounts it manages."""

    admins = fields.List(fields.Nested(AdminSchema))
    pins = fields.List(fields.Nested(PinSchema))
    managed_accounts = fields.List(fields.String())


def _optional(length: int) -> fields.String:
    return fields.String(allow_none=True, validate=validate.Length(max=length))


class AccountFields(Schema):
    """An account's editable fields (checked as the CSV import checks them)."""

    name = fields.String(validate=validate.Length(min=1, max=200))
    tier = fields.String(validate=one_of(Tier))
    trial_started_at = fields.AwareDateTime(
        allow_none=True,
        validate=validate.Range(
            min=datetime(2000, 1, 1, tzinfo=UTC), max=datetime(2100, 1, 1, tzinfo=UTC)
        ),
    )
    is_partner = fields.Boolean()
    partner_id = fields.String(allow_none=True, validate=validate.Regexp(ACCOUNT_ID))
    region = _optional(16)
    country = fields.String(allow_none=True, validate=validate.Length(equal=2))
    subdivision = _optional(16)
    timezone = _optional(64)
    professional_services = fields.Boolean()
    csm_name = _optional(200)
    csm_email = fields.Email(allow_none=True, validate=validate.Length(max=320))
    account_manager_name = _optional(200)
    account_manager_email = fields.Email(allow_none=True, validate=validate.Length(max=320))
    attributes = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=64)),
        metadata={"description": "Custom attributes rules can test as attrs.<name>"},
    )


class AccountCreateSchema(AccountFields):
    """A new account."""

    id = fields.String(required=True, validate=validate.Regexp(ACCOUNT_ID))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    tier = fields.String(required=True, validate=one_of(Tier))


class AccountPatchSchema(AccountFields):
    """Some of an account's fields."""

    @validates_schema
    def _something(self, data: dict[str, Any], **_: Any) -> None:
        if not data:
            raise ValidationError("give at least one field to change")


class AccountListArgs(PageArgs):
    """Account filters."""

    tier = fields.String(validate=one_of(Tier))
    region = fields.String(validate=validate.Length(max=16))
    partner_id = fields.String(validate=validate.Length(max=64))
    is_partner = fields.Boolean()
    q = fields.String(validate=validate.Length(max=200), metadata={"description": "Id or name"})


class AdminListArgs(PageArgs):
    """Administrator filters."""

    active = fields.Boolean()


class AdminCreateSchema(Schema):
    """A new administrator."""

    email = fields.Email(required=True, validate=validate.Length(max=320))
    name = fields.String(allow_none=True, validate=validate.Length(max=200))
    active = fields.Boolean(load_default=True)


class AdminPatchSchema(Schema):
    """Rename, deactivate or reactivate an administrator."""

    name = fields.String(allow_none=True, validate=validate.Length(max=200))
    active = fields.Boolean()

    @validates_schema
    def _something(self, data: dict[str, Any], **_: Any) -> None:
        if not data:
            raise ValidationError("give name or active")


class PinIssueSchema(Schema):
    """Who the PIN is for, and optionally its digits (default: generated)."""

    admin_id = fields.Integer(
        allow_none=True,
        validate=validate.Range(min=1, max=2**31 - 1),
        metadata={"description": "An administrator of the account; their old PIN is replaced"},
    )
    pin = fields.String(
        validate=validate.Length(max=16),
        metadata={"description": "6-8 digits, not trivial; default: 8 random digits"},
    )


class PinRotateSchema(Schema):
    """Optionally the new digits (default: generated)."""

    pin = fields.String(validate=validate.Length(max=16))


class LockoutSchema(Schema):
    """A calling number locked out of PIN checks."""

    calling_number = fields.String(required=True)
    locked_until = instant()
    failures = fields.Integer()
    created_at = instant()
    active = fields.Boolean()


class LockoutArgs(PageArgs):
    """Which lock-outs: current (default), expired or all."""

    state = fields.String(load_default="active", validate=one_of(["active", "expired", "all"]))


@blp.route("")
class Accounts(MethodView):
    """Accounts."""

    @protected(blp, StaffRole.VIEWER)
    @blp.arguments(AccountListArgs, location="query")
    @blp.response(200, page_schema(AccountSchema, "AccountPage"))
    def get(self, args: dict[str, Any]) -> Page[AccountView]:
        """List accounts (filter by tier, region, partner, text in id or name)."""
        return accounts.list_accounts(runtime().db, **args)

    @protected(blp, StaffRole.ADMIN)
    @blp.arguments(AccountCreateSchema)
    @blp.response(201, AccountSchema)
    @responds(blp, 409, 422)
    def post(self, body: dict[str, Any]) -> AccountView:
        """Create an account."""
        rt = runtime()
        return accounts.create_account(rt.db, rt.policy, body, actor=current_actor())


@blp.route("/<account_id>")
class AccountItem(MethodView):
    """One account."""

    @protected(blp, StaffRole.VIEWER)
    @blp.response(200, AccountDetailSchema)
    @responds(blp, 404)
    def get(self, account_id: str) -> AccountDetail:
        """Return an account with its administrators, PINs (metadata) and managed accounts."""
        return accounts.get_account(runtime().db, account_id)

    @protected(blp, StaffRole.ADMIN)
    @blp.arguments(AccountPatchSchema)
    @blp.response(200, AccountSchema)
    @responds(blp, 404, 409, 422)
    def patch(self, body: dict[str, Any], account_id: str) -> AccountView:
        """Change some of an account's fields (tier, region, partner, contacts...)."""
        rt = runtime()
        return accounts.update_account(rt.db, rt.policy, account_id, body, actor=current_actor())


@blp.route("/<account_id>/admins")
class Admins(MethodView):
    """An account's administrators."""

    @protected(blp, StaffRole.VIEWER)
    @blp.arguments(AdminListArgs, location="query")
    @blp.response(200, page_schema(AdminSchema, "AdminPage"))
    @responds(blp, 404)
    def get(self, args: dict[str, Any], account_id: str) -> Page[AdminView]:
        """List an account's administrators."""
        return accounts.list_admins(runtime().db, account_id, **args)

    @protected(blp, StaffRole.ADMIN)
    @blp.arguments(AdminCreateSchema)
    @blp.response(201, AdminSchema)
    @responds(blp, 404, 409, 422)
    def post(self, body: dict[str, Any], account_id: str) -> AdminView:
        """Add an administrator (an email belongs to one account only)."""
        return accounts.add_admin(
            runtime().db,
            account_id,
            body["email"],
            name=body.get("name"),
            active=body["active"],
            actor=current_actor(),
        )


@blp.route(f"/<account_id>/admins/<{ID}:admin_id>")
class AdminItem(MethodView):
    """One administrator."""

    @protected(blp, StaffRole.ADMIN)
    @blp.arguments(AdminPatchSchema)
    @blp.response(200, AdminSchema)
    @responds(blp, 404)
    def patch(self, body: dict[str, Any], account_id: str, admin_id: int) -> AdminView:
        """Rename, deactivate or reactivate an administrator."""
        return accounts.update_admin(
            runtime().db, account_id, admin_id, body, actor=current_actor()
        )


@blp.route("/<account_id>/pins")
class Pins(MethodView):
    """An account's support PINs."""

    @protected(blp, StaffRole.VIEWER)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_schema(PinSchema, "PinPage"))
    @responds(blp, 404)
    def get(self, args: dict[str, Any], account_id: str) -> Page[PinView]:
        """List an account's PINs (who holds each, when it was set; never the digits)."""
        return pins.list_pins(runtime().db, account_id, **args)

    @protected(blp, StaffRole.ADMIN)
    @blp.arguments(PinIssueSchema)
    @blp.response(201, IssuedPinSchema)
    @responds(blp, 404, 409, 422)
    def post(self, body: dict[str, Any], account_id: str) -> tuple[IssuedPin, dict[str, str]]:
        """Set a PIN (shown once in this answer); an administrator's old PIN is replaced."""
        rt = runtime()
        issued = pins.issue_pin(
            rt.db,
            rt.settings.pin_pepper,
            account_id,
            actor=current_actor(),
            admin_id=body.get("admin_id"),
            pin=body.get("pin"),
        )
        return issued, NO_STORE


@blp.route(f"/<account_id>/pins/<{ID}:pin_id>")
class PinItem(MethodView):
    """One PIN."""

    @protected(blp, StaffRole.ADMIN)
    @blp.response(204)
    @responds(blp, 404)
    def delete(self, account_id: str, pin_id: int) -> None:
        """Revoke a PIN: it stops working at once."""
        pins.revoke_pin(runtime().db, account_id, pin_id, actor=current_actor())


@blp.route(f"/<account_id>/pins/<{ID}:pin_id>/rotate")
class RotatePin(MethodView):
    """Rotate a PIN."""

    @protected(blp, StaffRole.ADMIN)
    @blp.arguments(PinRotateSchema)
    @blp.response(201, IssuedPinSchema)
    @responds(blp, 404, 409, 422)
    def post(
        self, body: dict[str, Any], account_id: str, pin_id: int
    ) -> tuple[IssuedPin, dict[str, str]]:
        """Replace a PIN with new digits (shown once); the old one stops working at once."""
        rt = runtime()
        issued = pins.issue_pin(
            rt.db,
            rt.settings.pin_pepper,
            account_id,
            actor=current_actor(),
            pin=body.get("pin"),
            replace_id=pin_id,
        )
        return issued, NO_STORE


@lockouts_blp.route("")
class Lockouts(MethodView):
    """Lock-outs."""

    @protected(lockouts_blp, StaffRole.VIEWER)
    @lockouts_blp.arguments(LockoutArgs, location="query")
    @lockouts_blp.response(200, page_schema(LockoutSchema, "LockoutPage"))
    def get(self, args: dict[str, Any]) -> Page[LockoutView]:
        """List calling numbers locked out of PIN checks (current ones by default)."""
        active = {"active": True, "expired": False, "all": None}[args["state"]]
        return pins.list_lockouts(
            runtime().db, now(), page=args["page"], per_page=args["per_page"], active=active
        )


@lockouts_blp.route("/<calling_number>")
class LockoutItem(MethodView):
    """One calling number's lock-out."""

    @protected(lockouts_blp, StaffRole.ADMIN)
    @lockouts_blp.response(204)
    @responds(lockouts_blp, 404)
    def delete(self, calling_number: str) -> None:
        """Unlock a calling number: it may try PINs again at once."""
        pins.unlock(runtime().db, calling_number, actor=current_actor(), now=now())
