"""Accounts for staff: list, create and change accounts and their administrators."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from config.policy import Policy
from router.core.validation import normalise_email
from router.services import audit
from router.services.account_import import ACCOUNT_FIELDS, account_snapshot, parse_account_row
from router.services.errors import Conflict, Invalid, NotFound
from router.services.paging import Page, contains_text, query_page
from router.services.pins import PinView
from router.store.db import Database
from router.store.models import Account, Admin

_ATTR_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}")
MAX_ATTRIBUTES = 50


@dataclass(frozen=True)
class AccountView:
    """A customer organisation or a partner, as staff see it."""

    id: str
    name: str
    tier: str
    trial_started_at: datetime | None
    is_partner: bool
    partner_id: str | None
    region: str | None
    country: str
    subdivision: str | None
    timezone: str
    professional_services: bool
    csm_name: str | None
    csm_email: str | None
    account_manager_name: str | None
    account_manager_email: str | None
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, account: Account) -> AccountView:
        """Return the view of a stored account."""
        return cls(**_account_fields(account))


def _account_fields(account: Account) -> dict[str, Any]:
    return {
        "id": account.id,
        **{name: getattr(account, name) for name in ACCOUNT_FIELDS},
        "attributes": dict(account.attributes or {}),
        "created_at": account.created_at,
        "updated_at": account.updated_at,
    }


@dataclass(frozen=True)
class AdminView:
    """An administrator of an account (the people who may open contacts)."""

    id: int
    account_id: str
    email: str
    name: str | None
    active: bool
    created_at: datetime

    @classmethod
    def of(cls, admin: Admin) -> AdminView:
        """Return the view of a stored administrator."""
        return cls(
            id=admin.id,
            account_id=admin.account_id,
            email=admin.email,
            name=admin.name,
            active=admin.active,
            created_at=admin.created_at,
        )


@dataclass(frozen=True)
class AccountDetail(AccountView):
    """An account with its administrators, PINs and the accounts it manages."""

    admins: tuple[AdminView, ...]
    pins: tuple[PinView, ...]
    managed_accounts: tuple[str, ...]


def list_accounts(
    db: Database,
    *,
    page: int,
    per_page: int,
    tier: str | None = None,
    region: str | None = None,
    partner_id: str | None = None,
    is_partner: bool | None = None,
    q: str | None = None,
) -> Page[AccountView]:
    """Return accounts by id, filtered by tier, region, partner, and text in id or name."""
    stmt = select(Account).order_by(Account.id)
    if tier:
        stmt = stmt.where(Account.tier == tier)
    if region:
        stmt = stmt.where(Account.region == region)
    if partner_id:
        stmt = stmt.where(Account.partner_id == partner_id)
    if is_partner is not None:
        stmt = stmt.where(Account.is_partner.is_(is_partner))
    if q:
        stmt = stmt.where(contains_text(q, Account.id, Account.name))
    with db.session() as session:
        return query_page(session, stmt, page, per_page).map(AccountView.of)


def _account(session: Session, account_id: str) -> Account:
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound(f"no account {account_id!r}")
    return account


def get_account(db: Database, account_id: str) -> AccountDetail:
    """Return an account with its administrators, PINs and managed accounts."""
    with db.session() as session:
        account = session.get(
            Account,
            account_id,
            options=[selectinload(Account.admins), selectinload(Account.pins)],
        )
        if account is None:
            raise NotFound(f"no account {account_id!r}")
        return AccountDetail(
            **_account_fields(account),
            admins=tuple(AdminView.of(admin) for admin in account.admins),
            pins=tuple(PinView.of(pin) for pin in sorted(account.pins, key=lambda p: p.id)),
            managed_accounts=tuple(
                session.scalars(
                    select(Account.id).where(Account.partner_id == account.id).order_by(Account.id)
                )
            ),
        )


def _row(values: Mapping[str, Any]) -> dict[str, str]:
    """Turn typed fields into the CSV-style strings the shared account validation reads."""

    def text(name: str) -> str:
        value = values.get(name)
        if value is None:
            return ""
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, datetime):
            return value.isoformat()
        return str(value)

    return {
        "account_id": text("id"),
        "account_name": text("name"),
        **{name: text(name) for name in ACCOUNT_FIELDS if name != "name"},
    }


def _validated(values: Mapping[str, Any], policy: Policy) -> dict[str, Any]:
    try:
        return parse_account_row(_row(values), policy)
    except ValueError as exc:
        raise Invalid(f"invalid account: {exc}", errors={"account": [str(exc)]}) from None


def _attributes(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise Invalid("attributes must be an object", errors={"attributes": ["not an object"]})
    errors = []
    if len(raw) > MAX_ATTRIBUTES:
        errors.append(f"at most {MAX_ATTRIBUTES} attributes")
    for name, value in raw.items():
        if not isinstance(name, str) or not _ATTR_NAME.fullmatch(name):
            errors.append(f"{name!r}: names are 1-64 letters, digits, '_', '.', ':' or '-'")
        elif isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value)):
            continue
        elif not isinstance(value, str) or len(value) > 500:
            errors.append(f"{name}: a value is a string (up to 500), number or true/false")
    if errors:
        raise Invalid("invalid attributes", errors={"attributes": errors})
    return dict(raw)


def _check_partner(session: Session, values: Mapping[str, Any]) -> None:
    partner_id = values.get("partner_id")
    if partner_id is None:
        return
    partner = session.get(Account, partner_id)
    if partner is None or not partner.is_partner:
        raise Invalid(
            f"partner {partner_id!r} is not a partner account",
            errors={"partner_id": ["must be an existing partner account"]},
        )


def create_account(
    db: Database, policy: Policy, values: Mapping[str, Any], *, actor: str
) -> AccountView:
    """Create an account (validated as the CSV import validates it)."""
    fields = _validated(values, policy)
    attributes = _attributes(values.get("attributes") or {})
    with db.transaction() as session:
        if session.get(Account, fields["id"]) is not None:
            raise Conflict(f"account {fields['id']!r} already exists")
        _check_partner(session, fields)
        account = Account(attributes=attributes, **fields)
        session.add(account)
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="account.create",
            entity_type="account",
            entity_id=account.id,
            after={**account_snapshot(account), "attributes": attributes},
        )
        return AccountView.of(account)


def update_account(
    db: Database, policy: Policy, account_id: str, changes: Mapping[str, Any], *, actor: str
) -> AccountView:
    """Change some of an account's fields; the result is validated as a whole."""
    with db.transaction() as session:
        account = _account(session, account_id)
        before = {**account_snapshot(account), "attributes": dict(account.attributes or {})}
        merged = dict(before)
        if "region" in changes and changes["region"] != account.region:
            # A new region brings its own country, subdivision and time zone unless given.
            for derived in ("country", "subdivision", "timezone"):
                merged[derived] = None
        merged.update({name: changes[name] for name in ACCOUNT_FIELDS if name in changes})
        merged["id"] = account_id
        fields = _validated(merged, policy)
        if fields["partner_id"] is not None:
            _check_partner(session, fields)
        if account.is_partner and not fields["is_partner"]:
            managed = session.scalar(select(func.count()).where(Account.partner_id == account.id))
            if managed:
                raise Conflict(
                    f"{account.id} manages {managed} account(s); it must stay a partner",
                    managed=managed,
                )
        for name, value in fields.items():
            if name != "id":
                setattr(account, name, value)
        if "attributes" in changes:
            account.attributes = _attributes(changes["attributes"] or {})
        session.flush()
        after = {**account_snapshot(account), "attributes": dict(account.attributes or {})}
        audit.record(
            session,
            actor=actor,
            action="account.update",
            entity_type="account",
            entity_id=account.id,
            before=before,
            after=after,
        )
        return AccountView.of(account)


# -- administrators ----------------------------------------------------------------------------


def list_admins(
    db: Database, account_id: str, *, page: int, per_page: int, active: bool | None = None
) -> Page[AdminView]:
    """Return an account's administrators."""
    with db.session() as session:
        _account(session, account_id)
        stmt = select(Admin).where(Admin.account_id == account_id).order_by(Admin.id)
        if active is not None:
            stmt = stmt.where(Admin.active.is_(active))
        return query_page(session, stmt, page, per_page).map(AdminView.of)


def add_admin(
    db: Database,
    account_id: str,
    email: str,
    *,
    name: str | None,
    active: bool,
    actor: str,
) -> AdminView:
    """Add an administrator (an email belongs to one account only)."""
    try:
        address = normalise_email(email)
    except ValueError as exc:
        raise Invalid(str(exc), errors={"email": [str(exc)]}) from None
    with db.transaction() as session:
        _account(session, account_id)
        if session.scalar(select(Admin.id).where(Admin.email == address)) is not None:
            raise Conflict(f"{address} is already an administrator of an account")
        admin = Admin(account_id=account_id, email=address, name=name or None, active=active)
        session.add(admin)
        session.flush()
        view = AdminView.of(admin)
        audit.record(
            session,
            actor=actor,
            action="admin.create",
            entity_type="admin",
            entity_id=address,
            after=audit.snapshot(view),
        )
        return view


def update_admin(
    db: Database, account_id: str, admin_id: int, changes: Mapping[str, Any], *, actor: str
) -> AdminView:
    """Rename, deactivate or reactivate an administrator."""
    with db.transaction() as session:
        admin = session.get(Admin, admin_id)
        if admin is None or admin.account_id != account_id:
            raise NotFound(f"no administrator {admin_id} of account {account_id!r}")
        before = audit.snapshot(AdminView.of(admin))
        if "name" in changes:
            admin.name = (changes["name"] or "").strip() or None
        if "active" in changes:
            admin.active = bool(changes["active"])
        session.flush()
        view = AdminView.of(admin)
        audit.record(
            session,
            actor=actor,
            action="admin.update",
            entity_type="admin",
            entity_id=admin.email,
            before=before,
            after=audit.snapshot(view),
        )
        return view
