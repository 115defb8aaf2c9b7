"""Accounts for staff: accounts, their administrators, support PINs and PIN lock-outs.

A PIN's digits exist only in the answer to the request that set it: they are stored as an HMAC
(``router.core.pins.pin_hash``), never logged and never audited.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from config.policy import Policy
from router.core.pins import PIN_MAX_LENGTH, PinError, is_trivial, pin_hash, validate_pin
from router.core.validation import normalise_email
from router.services import audit
from router.services.account_import import ACCOUNT_FIELDS, account_snapshot, parse_account_row
from router.services.errors import Conflict, Invalid, NotFound
from router.services.paging import contains_text, iso, paginate
from router.store.db import Database
from router.store.models import Account, Admin, PinLockout, SupportPin

_ATTR_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}")
MAX_ATTRIBUTES = 50


def account_dict(account: Account) -> dict[str, Any]:
    """Return an account's list entry."""
    data = account_snapshot(account)
    data["attributes"] = dict(account.attributes or {})
    data["created_at"] = iso(account.created_at)
    data["updated_at"] = iso(account.updated_at)
    return data


def admin_dict(admin: Admin) -> dict[str, Any]:
    """Return an administrator."""
    return {
        "id": admin.id,
        "account_id": admin.account_id,
        "email": admin.email,
        "name": admin.name,
        "active": admin.active,
        "created_at": iso(admin.created_at),
    }


def pin_dict(pin: SupportPin) -> dict[str, Any]:
    """Return a PIN's metadata (never its digits or hash)."""
    return {
        "id": pin.id,
        "account_id": pin.account_id,
        "admin_id": pin.admin_id,
        "admin_email": pin.admin.email if pin.admin is not None else None,
        "created_at": iso(pin.created_at),
        "created_by": pin.created_by,
    }


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
) -> dict[str, Any]:
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
        return paginate(session, stmt, page, per_page, account_dict)


def _account(session: Session, account_id: str) -> Account:
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound(f"no account {account_id!r}")
    return account


def get_account(db: Database, account_id: str) -> dict[str, Any]:
    """Return an account with its administrators, PINs and managed accounts."""
    with db.session() as session:
        account = session.get(
            Account,
            account_id,
            options=[selectinload(Account.admins), selectinload(Account.pins)],
        )
        if account is None:
            raise NotFound(f"no account {account_id!r}")
        data = account_dict(account)
        data["admins"] = [admin_dict(admin) for admin in account.admins]
        data["pins"] = [pin_dict(pin) for pin in sorted(account.pins, key=lambda p: p.id)]
        data["managed_accounts"] = list(
            session.scalars(
                select(Account.id).where(Account.partner_id == account.id).order_by(Account.id)
            )
        )
        return data


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
) -> dict[str, Any]:
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
        return account_dict(account)


def update_account(
    db: Database, policy: Policy, account_id: str, changes: Mapping[str, Any], *, actor: str
) -> dict[str, Any]:
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
        return account_dict(account)


# -- administrators ----------------------------------------------------------------------------


def list_admins(
    db: Database, account_id: str, *, page: int, per_page: int, active: bool | None = None
) -> dict[str, Any]:
    """Return an account's administrators."""
    with db.session() as session:
        _account(session, account_id)
        stmt = select(Admin).where(Admin.account_id == account_id).order_by(Admin.id)
        if active is not None:
            stmt = stmt.where(Admin.active.is_(active))
        return paginate(session, stmt, page, per_page, admin_dict)


def add_admin(
    db: Database,
    account_id: str,
    email: str,
    *,
    name: str | None,
    active: bool,
    actor: str,
) -> dict[str, Any]:
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
        data = admin_dict(admin)
        audit.record(
            session,
            actor=actor,
            action="admin.create",
            entity_type="admin",
            entity_id=address,
            after=data,
        )
        return data


def update_admin(
    db: Database, account_id: str, admin_id: int, changes: Mapping[str, Any], *, actor: str
) -> dict[str, Any]:
    """Rename, deactivate or reactivate an administrator."""
    with db.transaction() as session:
        admin = session.get(Admin, admin_id)
        if admin is None or admin.account_id != account_id:
            raise NotFound(f"no administrator {admin_id} of account {account_id!r}")
        before = admin_dict(admin)
        if "name" in changes:
            admin.name = (changes["name"] or "").strip() or None
        if "active" in changes:
            admin.active = bool(changes["active"])
        session.flush()
        data = admin_dict(admin)
        audit.record(
            session,
            actor=actor,
            action="admin.update",
            entity_type="admin",
            entity_id=admin.email,
            before=before,
            after=data,
        )
        return data


# -- PINs --------------------------------------------------------------------------------------


def list_pins(db: Database, account_id: str, *, page: int, per_page: int) -> dict[str, Any]:
    """Return an account's PINs (metadata only)."""
    with db.session() as session:
        _account(session, account_id)
        stmt = (
            select(SupportPin)
            .options(selectinload(SupportPin.admin))
            .where(SupportPin.account_id == account_id)
            .order_by(SupportPin.id)
        )
        return paginate(session, stmt, page, per_page, pin_dict)


def generate_pin() -> str:
    """Return a random PIN of the maximum length that passes the issuing rules."""
    while True:
        pin = f"{secrets.randbelow(10**PIN_MAX_LENGTH):0{PIN_MAX_LENGTH}d}"
        if not is_trivial(pin):
            return pin


def issue_pin(
    db: Database,
    pepper: str,
    account_id: str,
    *,
    actor: str,
    admin_id: int | None = None,
    pin: str | None = None,
    replace_id: int | None = None,
) -> dict[str, Any]:
    """Set a new PIN (or rotate one); the answer is the only place its digits ever appear.

    With ``replace_id`` (or an ``admin_id`` that already holds a PIN) the old PIN stops working
    in the same transaction the new one starts.
    """
    if pin is not None:
        try:
            validate_pin(pin)
        except PinError as exc:
            raise Invalid(f"pin: {exc}", errors={"pin": [str(exc)]}) from None
    with db.transaction() as session:
        _account(session, account_id)
        admin = None
        if admin_id is not None:
            admin = session.get(Admin, admin_id)
            if admin is None or admin.account_id != account_id:
                raise Invalid(
                    f"administrator {admin_id} does not belong to account {account_id!r}",
                    errors={"admin_id": ["not an administrator of this account"]},
                )
        old = None
        if replace_id is not None:
            old = session.get(SupportPin, replace_id)
            if old is None or old.account_id != account_id:
                raise NotFound(f"no PIN {replace_id} on account {account_id!r}")
            if admin is None and old.admin_id is not None:
                admin = session.get(Admin, old.admin_id)
        elif admin is not None:
            old = session.scalar(
                select(SupportPin).where(
                    SupportPin.account_id == account_id, SupportPin.admin_id == admin.id
                )
            )
        if pin is None:
            while True:
                pin = generate_pin()
                taken = session.scalar(
                    select(SupportPin.id).where(SupportPin.pin_hash == pin_hash(pepper, pin))
                )
                if taken is None:
                    break
        digest = pin_hash(pepper, pin)
        if session.scalar(select(SupportPin.id).where(SupportPin.pin_hash == digest)) is not None:
            # Do not say whose: a PIN identifies an account.
            raise Conflict("that PIN is already in use; choose another")
        if old is not None:
            session.delete(old)
            session.flush()
        record = SupportPin(
            account_id=account_id,
            admin_id=admin.id if admin is not None else None,
            pin_hash=digest,
            created_by=actor,
        )
        session.add(record)
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="pin.rotate" if old is not None else "pin.set",
            entity_type="account",
            entity_id=account_id,
            before={"pin_id": old.id} if old is not None else None,
            after={"pin_id": record.id, "admin": admin.email if admin is not None else None},
        )
        return {
            "id": record.id,
            "account_id": account_id,
            "admin_id": record.admin_id,
            "admin_email": admin.email if admin is not None else None,
            "created_at": iso(record.created_at),
            "created_by": actor,
            "rotated": old is not None,
            "replaced_pin_id": old.id if old is not None else None,
            "pin": pin,
        }


def revoke_pin(db: Database, account_id: str, pin_id: int, *, actor: str) -> None:
    """Delete a PIN: it stops working at once."""
    with db.transaction() as session:
        record = session.get(SupportPin, pin_id)
        if record is None or record.account_id != account_id:
            raise NotFound(f"no PIN {pin_id} on account {account_id!r}")
        session.delete(record)
        audit.record(
            session,
            actor=actor,
            action="pin.revoke",
            entity_type="account",
            entity_id=account_id,
            before={"pin_id": pin_id, "admin_id": record.admin_id},
        )


# -- lock-outs ---------------------------------------------------------------------------------


def lockout_dict(row: PinLockout, now: datetime) -> dict[str, Any]:
    """Return a calling number's lock-out."""
    return {
        "calling_number": row.calling_number,
        "locked_until": iso(row.locked_until),
        "failures": row.failures,
        "created_at": iso(row.created_at),
        "active": row.locked_until > now,
    }


def list_lockouts(
    db: Database, now: datetime, *, page: int, per_page: int, active: bool | None = True
) -> dict[str, Any]:
    """Return calling numbers locked out of PIN checks (by default only current ones)."""
    stmt = select(PinLockout).order_by(PinLockout.locked_until.desc())
    if active is True:
        stmt = stmt.where(PinLockout.locked_until > now)
    elif active is False:
        stmt = stmt.where(PinLockout.locked_until <= now)
    with db.session() as session:
        return paginate(session, stmt, page, per_page, lambda row: lockout_dict(row, now))


def unlock(db: Database, calling_number: str, *, actor: str, now: datetime) -> None:
    """Lift a calling number's lock-out so it may try PINs again."""
    number = calling_number.strip()
    with db.transaction() as session:
        row = session.get(PinLockout, number)
        if row is None or row.locked_until <= now:
            raise NotFound(f"{number} is not locked out")
        before = lockout_dict(row, now)
        # Kept, ending now: the failures that led to it stop counting towards the next lock-out
        # (deleted, they would count again and the next wrong PIN would re-lock the number).
        row.locked_until = now
        audit.record(
            session,
            actor=actor,
            action="pin.unlock",
            entity_type="calling_number",
            entity_id=number,
            before=before,
            after=lockout_dict(row, now),
            at=now,
        )
