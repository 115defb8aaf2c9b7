"""Support PINs for staff: list, set, rotate and revoke them, and lift PIN lock-outs.

A PIN's digits exist only in the answer to the request that set it: they are stored as an HMAC
(``router.core.pins.pin_hash``), never logged and never audited.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from router.core.pins import PIN_MAX_LENGTH, PinError, is_trivial, pin_hash, validate_pin
from router.services import audit
from router.services.errors import Conflict, Invalid, NotFound
from router.services.paging import Page, query_page
from router.store.db import Database
from router.store.models import Account, Admin, PinLockout, SupportPin


@dataclass(frozen=True)
class PinView:
    """A PIN's metadata (never its digits or hash)."""

    id: int
    account_id: str
    admin_id: int | None
    admin_email: str | None
    created_at: datetime
    created_by: str | None

    @classmethod
    def of(cls, pin: SupportPin) -> PinView:
        """Return the view of a stored PIN (its administrator loaded)."""
        return cls(
            id=pin.id,
            account_id=pin.account_id,
            admin_id=pin.admin_id,
            admin_email=pin.admin.email if pin.admin is not None else None,
            created_at=pin.created_at,
            created_by=pin.created_by,
        )


@dataclass(frozen=True)
class IssuedPin(PinView):
    """A PIN just set: the only place its digits ever appear."""

    rotated: bool
    replaced_pin_id: int | None
    pin: str


@dataclass(frozen=True)
class LockoutView:
    """A calling number locked out of PIN checks, and whether the lock-out is still in force."""

    calling_number: str
    locked_until: datetime
    failures: int
    created_at: datetime
    active: bool

    @classmethod
    def of(cls, row: PinLockout, now: datetime) -> LockoutView:
        """Return the view of a stored lock-out as it stands at ``now``."""
        return cls(
            calling_number=row.calling_number,
            locked_until=row.locked_until,
            failures=row.failures,
            created_at=row.created_at,
            active=row.locked_until > now,
        )


def _require_account(session: Session, account_id: str) -> None:
    if session.get(Account, account_id) is None:
        raise NotFound(f"no account {account_id!r}")


def list_pins(db: Database, account_id: str, *, page: int, per_page: int) -> Page[PinView]:
    """Return an account's PINs (metadata only)."""
    with db.session() as session:
        _require_account(session, account_id)
        stmt = (
            select(SupportPin)
            .options(selectinload(SupportPin.admin))
            .where(SupportPin.account_id == account_id)
            .order_by(SupportPin.id)
        )
        return query_page(session, stmt, page, per_page).map(PinView.of)


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
) -> IssuedPin:
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
        _require_account(session, account_id)
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
        return IssuedPin(
            id=record.id,
            account_id=account_id,
            admin_id=record.admin_id,
            admin_email=admin.email if admin is not None else None,
            created_at=record.created_at,
            created_by=actor,
            rotated=old is not None,
            replaced_pin_id=old.id if old is not None else None,
            pin=pin,
        )


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


def list_lockouts(
    db: Database, now: datetime, *, page: int, per_page: int, active: bool | None = True
) -> Page[LockoutView]:
    """Return calling numbers locked out of PIN checks (by default only current ones)."""
    stmt = select(PinLockout).order_by(PinLockout.locked_until.desc())
    if active is True:
        stmt = stmt.where(PinLockout.locked_until > now)
    elif active is False:
        stmt = stmt.where(PinLockout.locked_until <= now)
    with db.session() as session:
        return query_page(session, stmt, page, per_page).map(lambda row: LockoutView.of(row, now))


def unlock(db: Database, calling_number: str, *, actor: str, now: datetime) -> None:
    """Lift a calling number's lock-out so it may try PINs again."""
    number = calling_number.strip()
    with db.transaction() as session:
        row = session.get(PinLockout, number)
        if row is None or row.locked_until <= now:
            raise NotFound(f"{number} is not locked out")
        before = audit.snapshot(LockoutView.of(row, now))
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
            after=audit.snapshot(LockoutView.of(row, now)),
            at=now,
        )
