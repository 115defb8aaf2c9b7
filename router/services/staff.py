"""Staff users and API tokens for administrators: list, create, change, issue and revoke."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from router.core.domain import StaffRole
from router.core.validation import normalise_email
from router.services import audit
from router.services.errors import Conflict, Invalid, NotFound
from router.services.logins import StaffError, create_staff, issue_token, revoke_sessions
from router.services.paging import contains_text, iso, paginate
from router.store.db import Database
from router.store.models import ApiToken, ConsoleLoginLock, StaffUser

MIN_PASSWORD = 12
_hasher = PasswordHasher()


def staff_dict(user: StaffUser, locked_until: datetime | None = None) -> dict[str, Any]:
    """Return a staff user (never the password hash) and until when their log-in is locked."""
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "active": user.active,
        "has_password": bool(user.password_hash),
        "created_at": iso(user.created_at),
        "login_locked_until": iso(locked_until),
    }


def _locks(session: Session, emails: list[str], now: datetime) -> dict[str, datetime]:
    """Return the console log-in lock-outs in force for these addresses."""
    if not emails:
        return {}
    rows = session.execute(
        select(ConsoleLoginLock.email, ConsoleLoginLock.locked_until).where(
            ConsoleLoginLock.email.in_(emails), ConsoleLoginLock.locked_until > now
        )
    )
    return {email: until for email, until in rows if until is not None}


def token_dict(token: ApiToken, now: datetime) -> dict[str, Any]:
    """Return a token's metadata (its prefix, never the token)."""
    expired = token.expires_at is not None and token.expires_at <= now
    return {
        "id": token.id,
        "staff_id": token.staff_user_id,
        "name": token.name,
        "prefix": token.prefix,
        "created_at": iso(token.created_at),
        "expires_at": iso(token.expires_at),
        "last_used_at": iso(token.last_used_at),
        "revoked_at": iso(token.revoked_at),
        "active": token.revoked_at is None and not expired,
    }


def list_staff(
    db: Database,
    *,
    page: int,
    per_page: int,
    role: str | None = None,
    active: bool | None = None,
    q: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Return staff users by email, each with their log-in lock-out if one is in force."""
    stmt = select(StaffUser).order_by(StaffUser.email)
    if role:
        stmt = stmt.where(StaffUser.role == role)
    if active is not None:
        stmt = stmt.where(StaffUser.active.is_(active))
    if q:
        stmt = stmt.where(contains_text(q, StaffUser.email, StaffUser.name))
    with db.session() as session:
        listed = paginate(session, stmt, page, per_page, staff_dict)
        locks = _locks(session, [item["email"] for item in listed["items"]], now or _now())
    for item in listed["items"]:
        item["login_locked_until"] = iso(locks.get(item["email"]))
    return listed


def _now() -> datetime:
    return datetime.now(UTC)


def _user(session: Session, staff_id: int) -> StaffUser:
    user = session.get(StaffUser, staff_id)
    if user is None:
        raise NotFound(f"no staff user {staff_id}")
    return user


def get_staff(db: Database, staff_id: int, now: datetime) -> dict[str, Any]:
    """Return a staff user with their tokens."""
    with db.session() as session:
        user = _user(session, staff_id)
        data = staff_dict(user, _locks(session, [user.email], now).get(user.email))
        data["tokens"] = [
            token_dict(token, now)
            for token in session.scalars(
                select(ApiToken).where(ApiToken.staff_user_id == user.id).order_by(ApiToken.id)
            )
        ]
        return data


def add_staff(
    db: Database,
    email: str,
    role: str,
    *,
    name: str | None,
    password: str | None,
    actor: str,
) -> dict[str, Any]:
    """Create a staff user (409 if the email is taken)."""
    try:
        address = normalise_email(email)
    except ValueError as exc:
        raise Invalid(str(exc), errors={"email": [str(exc)]}) from None
    with db.session() as session:
        if session.scalar(select(StaffUser.id).where(StaffUser.email == address)) is not None:
            raise Conflict(f"staff user {address} already exists")
    try:
        user = create_staff(db, address, role, name=name, password=password, actor=actor)
    except StaffError as exc:
        if "already exists" in str(exc):
            raise Conflict(str(exc)) from None
        raise Invalid(str(exc)) from None
    return staff_dict(user)


def _active_admins(session: Session) -> int:
    return (
        session.scalar(
            select(func.count()).where(
                StaffUser.role == StaffRole.ADMIN.value, StaffUser.active.is_(True)
            )
        )
        or 0
    )


def update_staff(
    db: Database,
    staff_id: int,
    changes: Mapping[str, Any],
    *,
    actor: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Change a staff user's name, role, active flag or password; one active admin must remain."""
    # Deactivating a user or changing their password ends their console sessions (below).
    now = now or _now()
    if "role" in changes and changes["role"] not in {role.value for role in StaffRole}:
        raise Invalid("unknown role", errors={"role": ["viewer, editor or admin"]})
    password = changes.get("password")
    if password is not None and len(password) < MIN_PASSWORD:
        raise Invalid(
            f"a password needs at least {MIN_PASSWORD} characters",
            errors={"password": [f"at least {MIN_PASSWORD} characters"]},
        )
    with db.transaction() as session:
        user = _user(session, staff_id)
        before = staff_dict(user)
        was_admin = user.role == StaffRole.ADMIN.value and user.active
        if "name" in changes:
            user.name = (changes["name"] or "").strip() or None
        if "role" in changes:
            user.role = changes["role"]
        if "active" in changes:
            user.active = bool(changes["active"])
        if password is not None:
            user.password_hash = _hasher.hash(password)
        still_admin = user.role == StaffRole.ADMIN.value and user.active
        if was_admin and not still_admin:
            session.flush()
            if _active_admins(session) == 0:
                raise Conflict("this is the last active admin; make another admin first")
        session.flush()
        data = staff_dict(user, _locks(session, [user.email], now).get(user.email))
        after = dict(data)
        if password is not None:
            after["password_changed"] = True
        if password is not None or not user.active:
            after["sessions_revoked"] = revoke_sessions(session, user.id, now)
        audit.record(
            session,
            actor=actor,
            action="staff.update",
            entity_type="staff_user",
            entity_id=user.email,
            before=before,
            after=after,
            at=now,
        )
        return data


def list_tokens(
    db: Database,
    staff_id: int,
    now: datetime,
    *,
    page: int,
    per_page: int,
    active: bool | None = None,
) -> dict[str, Any]:
    """Return a staff user's tokens, newest first."""
    with db.session() as session:
        _user(session, staff_id)
        stmt = (
            select(ApiToken).where(ApiToken.staff_user_id == staff_id).order_by(ApiToken.id.desc())
        )
        if active is True:
            stmt = stmt.where(
                ApiToken.revoked_at.is_(None),
                or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
            )
        elif active is False:
            stmt = stmt.where(or_(ApiToken.revoked_at.is_not(None), ApiToken.expires_at <= now))
        return paginate(session, stmt, page, per_page, lambda token: token_dict(token, now))


def create_token(
    db: Database,
    staff_id: int,
    *,
    name: str,
    expires_at: datetime | None,
    actor: str,
    now: datetime,
) -> dict[str, Any]:
    """Issue a token; the answer is the only place the token ever appears."""
    if expires_at is not None and expires_at <= now:
        raise Invalid("expires_at must be in the future", errors={"expires_at": ["in the past"]})
    with db.session() as session:
        user = _user(session, staff_id)
        email, active = user.email, user.active
    if not active:
        raise Conflict(f"staff user {email} is deactivated")
    try:
        issued = issue_token(db, email, name=name, actor=actor, expires_at=expires_at)
    except StaffError as exc:
        raise Conflict(str(exc)) from None
    with db.session() as session:
        token = session.get(ApiToken, issued.token_id)
        assert token is not None
        data = token_dict(token, now)
    data["token"] = issued.token
    return data


def revoke_token(
    db: Database, staff_id: int, token_id: int, *, actor: str, now: datetime
) -> dict[str, Any]:
    """Revoke a token at once (revoking twice is harmless)."""
    with db.transaction() as session:
        token = session.get(ApiToken, token_id)
        if token is None or token.staff_user_id != staff_id:
            raise NotFound(f"no token {token_id} of staff user {staff_id}")
        before = token_dict(token, now)
        if token.revoked_at is None:
            token.revoked_at = now
            session.flush()
            audit.record(
                session,
                actor=actor,
                action="token.revoke",
                entity_type="api_token",
                entity_id=str(token.id),
                before=before,
                after=token_dict(token, now),
                at=now,
            )
        return token_dict(token, now)


def unlock_login(db: Database, staff_id: int, *, actor: str, now: datetime) -> dict[str, Any]:
    """Lift a staff user's console log-in lock-out and forget their failed log-ins."""
    # Unlocking a user who is not locked changes nothing and records nothing (idempotent).
    with db.transaction() as session:
        user = _user(session, staff_id)
        lock = session.get(ConsoleLoginLock, user.email)
        if lock is not None:
            before = {
                "locked_until": iso(lock.locked_until),
                "failures": lock.failures,
                "lockouts": lock.lockouts,
            }
            session.delete(lock)
            audit.record(
                session,
                actor=actor,
                action="login.unlocked",
                entity_type="staff_user",
                entity_id=user.email,
                before=before,
                after={"locked_until": None, "failures": 0, "lockouts": 0},
                at=now,
            )
        return staff_dict(user)
