"""Staff users and API tokens for administrators: list, create, change, issue and revoke."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from router.core.domain import StaffRole
from router.core.validation import instant_text, normalise_email
from router.services import audit
from router.services.console_sessions import revoke_sessions
from router.services.errors import Conflict, Invalid, NotFound
from router.services.logins import StaffError, create_staff, issue_token
from router.services.paging import Page, contains_text, query_page
from router.store.db import Database
from router.store.models import ApiToken, ConsoleLoginLock, StaffUser

MIN_PASSWORD = 12
_hasher = PasswordHasher()


@dataclass(frozen=True)
class StaffView:
    """A staff user (never the password hash) and until when their log-in is locked."""

    id: int
    email: str
    name: str | None
    role: str
    active: bool
    has_password: bool
    created_at: datetime
    login_locked_until: datetime | None

    @classmethod
    def of(cls, user: StaffUser, locked_until: datetime | None = None) -> StaffView:
        """Return the view of a stored staff user."""
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            role=user.role,
            active=user.active,
            has_password=bool(user.password_hash),
            created_at=user.created_at,
            login_locked_until=locked_until,
        )


@dataclass(frozen=True)
class TokenView:
    """An API token's metadata (its prefix, never the token)."""

    id: int
    staff_id: int
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    active: bool

    @classmethod
    def of(cls, token: ApiToken, now: datetime) -> TokenView:
        """Return the view of a stored token as it stands at ``now``."""
        expired = token.expires_at is not None and token.expires_at <= now
        return cls(
            id=token.id,
            staff_id=token.staff_user_id,
            name=token.name,
            prefix=token.prefix,
            created_at=token.created_at,
            expires_at=token.expires_at,
            last_used_at=token.last_used_at,
            revoked_at=token.revoked_at,
            active=token.revoked_at is None and not expired,
        )


@dataclass(frozen=True)
class StaffDetail(StaffView):
    """A staff user with their tokens."""

    tokens: tuple[TokenView, ...]


@dataclass(frozen=True)
class NewToken(TokenView):
    """A token just issued: the only place it ever appears."""

    token: str


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


def list_staff(
    db: Database,
    *,
    page: int,
    per_page: int,
    role: str | None = None,
    active: bool | None = None,
    q: str | None = None,
    now: datetime | None = None,
) -> Page[StaffView]:
    """Return staff users by email, each with their log-in lock-out if one is in force."""
    stmt = select(StaffUser).order_by(StaffUser.email)
    if role:
        stmt = stmt.where(StaffUser.role == role)
    if active is not None:
        stmt = stmt.where(StaffUser.active.is_(active))
    if q:
        stmt = stmt.where(contains_text(q, StaffUser.email, StaffUser.name))
    with db.session() as session:
        users = query_page(session, stmt, page, per_page)
        locks = _locks(session, [user.email for user in users.items], now or _now())
        return users.map(lambda user: StaffView.of(user, locks.get(user.email)))


def _now() -> datetime:
    return datetime.now(UTC)


def _user(session: Session, staff_id: int) -> StaffUser:
    user = session.get(StaffUser, staff_id)
    if user is None:
        raise NotFound(f"no staff user {staff_id}")
    return user


def get_staff(db: Database, staff_id: int, now: datetime) -> StaffDetail:
    """Return a staff user with their tokens."""
    with db.session() as session:
        user = _user(session, staff_id)
        tokens = session.scalars(
            select(ApiToken).where(ApiToken.staff_user_id == user.id).order_by(ApiToken.id)
        )
        view = StaffView.of(user, _locks(session, [user.email], now).get(user.email))
        return StaffDetail(**vars(view), tokens=tuple(TokenView.of(token, now) for token in tokens))


def add_staff(
    db: Database,
    email: str,
    role: str,
    *,
    name: str | None,
    password: str | None,
    actor: str,
) -> StaffView:
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
    return StaffView.of(user)


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
) -> StaffView:
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
        before = audit.snapshot(StaffView.of(user))
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
        view = StaffView.of(user, _locks(session, [user.email], now).get(user.email))
        after = audit.snapshot(view)
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
        return view


def list_tokens(
    db: Database,
    staff_id: int,
    now: datetime,
    *,
    page: int,
    per_page: int,
    active: bool | None = None,
) -> Page[TokenView]:
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
        return query_page(session, stmt, page, per_page).map(lambda token: TokenView.of(token, now))


def create_token(
    db: Database,
    staff_id: int,
    *,
    name: str,
    expires_at: datetime | None,
    actor: str,
    now: datetime,
) -> NewToken:
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
        return NewToken(**vars(TokenView.of(token, now)), token=issued.token)


def revoke_token(
    db: Database, staff_id: int, token_id: int, *, actor: str, now: datetime
) -> TokenView:
    """Revoke a token at once (revoking twice is harmless)."""
    with db.transaction() as session:
        token = session.get(ApiToken, token_id)
        if token is None or token.staff_user_id != staff_id:
            raise NotFound(f"no token {token_id} of staff user {staff_id}")
        before = audit.snapshot(TokenView.of(token, now))
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
                after=audit.snapshot(TokenView.of(token, now)),
                at=now,
            )
        return TokenView.of(token, now)


def unlock_login(db: Database, staff_id: int, *, actor: str, now: datetime) -> StaffView:
    """Lift a staff user's console log-in lock-out and forget their failed log-ins."""
    # Unlocking a user who is not locked changes nothing and records nothing (idempotent).
    with db.transaction() as session:
        user = _user(session, staff_id)
        lock = session.get(ConsoleLoginLock, user.email)
        if lock is not None:
            before = {
                "locked_until": instant_text(lock.locked_until),
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
        return StaffView.of(user)
