"""Decide who every contact is from: the account, the admin who opened it, the caller's PIN.

The one place that does. ``identify`` ties a contact's sender to an account (an admin, a
partner's admin acting for a managed customer, or an account a verified PIN vouches for);
``identify_admin`` checks a portal token's admin; ``account_by_pin`` finds the account a
caller's support PIN belongs to; ``reply_author`` says who wrote a reply on a thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Connection, bindparam, or_, select
from sqlalchemy.orm import Session, joinedload

from router.core.pins import pin_hash
from router.intake.request import Sender
from router.store.models import Account, Admin, Contact, StaffUser, SupportPin


class ReplyAuthor(StrEnum):
    """Who wrote a reply on a contact's thread, as far as intake believes it."""

    STAFF = "staff"  # a verified, active staff member: the contact's first response
    ADMIN = "admin"  # a verified, active admin of the contact's account (or of its partner)
    OUTSIDER = "outsider"  # anyone else: kept apart from the contact, never routed onto it


@dataclass(frozen=True)
class Identity:
    """The account a contact is for and who opened it."""

    account: Account
    admin: Admin | None
    via_partner: Account | None


class IdentityError(Exception):
    """The contact cannot be tied to an active administrator of an account."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class PinAccount:
    """The account a PIN names: what the voice channel needs of it (the columns selected)."""

    id: str
    tier: str
    trial_started_at: datetime | None
    region: str | None
    country: str
    subdivision: str | None
    timezone: str


# The admin's account comes in the same query: every contact from an admin needs it.
_ADMIN_BY_EMAIL = (
    select(Admin).options(joinedload(Admin.account)).where(Admin.email == bindparam("email"))
)
# Read as a Core row, not ORM entities: identity-map bookkeeping was a large share of the PIN
# step's time. A PIN issued to an administrator works only while that administrator is active
# (SPEC 2.6); a PIN issued to the account as a whole has no admin to check.
_ACCOUNT_BY_PIN = (
    select(
        Account.id,
        Account.tier,
        Account.trial_started_at,
        Account.region,
        Account.country,
        Account.subdivision,
        Account.timezone,
    )
    .join(SupportPin, SupportPin.account_id == Account.id)
    .outerjoin(Admin, Admin.id == SupportPin.admin_id)
    .where(
        SupportPin.pin_hash == bindparam("pin_hash"),
        or_(SupportPin.admin_id.is_(None), Admin.active.is_(True)),
    )
)


def identify(session: Session, sender: Sender) -> Identity:
    """Return who a contact is from, or raise IdentityError with the reason."""
    if not sender.verified:
        raise IdentityError("sender_not_verified")
    if sender.admin_email is None:
        if sender.account_id is None:
            raise IdentityError("unidentified")
        account = session.get(Account, sender.account_id)
        if account is None:
            raise IdentityError("unknown_account")
        return Identity(account=account, admin=None, via_partner=None)
    return identify_admin(
        session,
        admin_email=sender.admin_email,
        account_id=sender.account_id,
        account_hints=sender.account_hints,
    )


def identify_admin(
    session: Session,
    *,
    admin_email: str,
    account_id: str | None = None,
    account_hints: tuple[str, ...] = (),
) -> Identity:
    """Return the active admin ``admin_email`` acting for ``account_id`` (or its own account).

    Without an account, a partner's admin naming a managed customer in ``account_hints`` acts
    for that customer. Raise IdentityError when the admin may not act for the account.
    """
    admin = session.scalar(_ADMIN_BY_EMAIL, {"email": admin_email.lower()})
    if admin is None:
        raise IdentityError("not_an_admin")
    if not admin.active:
        raise IdentityError("inactive_admin")
    if account_id is None:
        managed = _managed(session, admin, account_hints)
        if managed is not None:
            return Identity(account=managed, admin=admin, via_partner=admin.account)
        return Identity(account=admin.account, admin=admin, via_partner=None)
    if account_id == admin.account_id:
        return Identity(account=admin.account, admin=admin, via_partner=None)
    account = session.get(Account, account_id)
    if account is None:
        raise IdentityError("unknown_account")
    if account.partner_id is not None and account.partner_id == admin.account_id:
        return Identity(account=account, admin=admin, via_partner=admin.account)
    raise IdentityError("not_admin_of_account")


def account_by_pin(connection: Connection, pepper: str, pin: str) -> PinAccount | None:
    """Return the account a caller's support PIN belongs to, or None when it names none.

    The PIN is looked up by its keyed hash in one indexed query; it is never stored or logged.
    """
    hashed = pin_hash(pepper, pin.strip())
    found = connection.execute(_ACCOUNT_BY_PIN, {"pin_hash": hashed}).first()
    return PinAccount(*found) if found is not None else None


def reply_author(
    session: Session,
    contact: Contact,
    sender: str | None,
    *,
    sender_trusted: bool,
    staff_domains: frozenset[str],
) -> ReplyAuthor:
    """Return who wrote a reply on ``contact``'s thread (SPEC 2.6).

    Only a proven sender counts: staff when the address is an active staff member's in a
    staff domain (their answer is the first response), an admin when it is an active admin
    of the contact's account or of the partner managing it; anyone else is an outsider.
    """
    if sender is None or not sender_trusted:
        return ReplyAuthor.OUTSIDER
    address = sender.lower()
    if address.rpartition("@")[2] in staff_domains and session.scalar(
        select(StaffUser.id).where(StaffUser.email == address, StaffUser.active.is_(True))
    ):
        return ReplyAuthor.STAFF
    admin = session.scalar(_ADMIN_BY_EMAIL, {"email": address})
    if admin is None or not admin.active:
        return ReplyAuthor.OUTSIDER
    account = contact.account
    allowed = {
        contact.account_id,
        contact.via_partner_id,
        account.partner_id if account else None,
    }
    return ReplyAuthor.ADMIN if admin.account_id in allowed - {None} else ReplyAuthor.OUTSIDER


def _managed(session: Session, admin: Admin, hints: tuple[str, ...]) -> Account | None:
    """Return the customer a partner's admin names by id or name, if it manages one."""
    wanted = [hint.strip().lower() for hint in hints if hint and hint.strip()]
    if not wanted:
        return None
    managed = session.scalars(select(Account).where(Account.partner_id == admin.account_id))
    by_key = {
        key: account for account in managed for key in (account.id.lower(), account.name.lower())
    }
    return next((by_key[hint] for hint in wanted if hint in by_key), None)
