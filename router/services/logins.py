"""Staff credentials: create staff users, issue API tokens, and check tokens and passwords.

Console log-ins (lock-outs, throttling and sessions) are in ``router.services.console_sessions``.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from router.core.domain import StaffRole
from router.core.validation import normalise_email
from router.services import audit
from router.store.db import Database
from router.store.models import ApiToken, StaffUser

TOKEN_PREFIX = "crt_"
_hasher = PasswordHasher()


class StaffError(ValueError):
    """A staff operation that cannot be done; the message says why."""


@dataclass(frozen=True)
class IssuedToken:
    """A freshly issued token: the only moment its plaintext exists."""

    token: str
    token_id: int
    email: str
    role: str


@dataclass(frozen=True)
class StaffIdentity:
    """Who is calling the API, as far as permissions go."""

    id: int
    email: str
    role: StaffRole


def token_digest(token: str) -> str:
    """Return the stored form of a token (tokens are 256 random bits, so SHA-256 suffices)."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_staff(
    db: Database,
    email: str,
    role: str,
    *,
    name: str | None = None,
    password: str | None = None,
    actor: str = "cli",
) -> StaffUser:
    """Create a staff user; raise StaffError for a bad role, email or a duplicate."""
    try:
        address = normalise_email(email)
    except ValueError as exc:
        raise StaffError(str(exc)) from None
    try:
        staff_role = StaffRole(role)
    except ValueError:
        raise StaffError(f"unknown role {role!r}; use viewer, editor or admin") from None
    if password is not None and len(password) < 12:
        raise StaffError("a password needs at least 12 characters")
    with db.transaction() as session:
        if session.scalar(select(StaffUser.id).where(StaffUser.email == address)) is not None:
            raise StaffError(f"staff user {address} already exists")
        user = StaffUser(
            email=address,
            name=name,
            role=staff_role.value,
            password_hash=_hasher.hash(password) if password else None,
        )
        session.add(user)
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="staff.create",
            entity_type="staff_user",
            entity_id=address,
            after={"email": address, "role": staff_role.value, "name": name},
        )
    return user


def issue_token(
    db: Database,
    email: str,
    *,
    name: str = "cli",
    actor: str = "cli",
    replace: bool = False,
    expires_at: datetime | None = None,
) -> IssuedToken:
    """Issue a new API token for a staff user; ``replace`` revokes their tokens of that name."""
    address = email.strip().lower()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with db.transaction() as session:
        user = session.scalar(select(StaffUser).where(StaffUser.email == address))
        if user is None or not user.active:
            raise StaffError(f"no active staff user {address}")
        if replace:
            for old in session.scalars(
                select(ApiToken).where(
                    ApiToken.staff_user_id == user.id,
                    ApiToken.name == name,
                    ApiToken.revoked_at.is_(None),
                )
            ):
                old.revoked_at = now
        record = ApiToken(
            staff_user_id=user.id,
            name=name,
            token_hash=token_digest(token),
            prefix=token[: len(TOKEN_PREFIX) + 4],
            created_at=now,
            expires_at=expires_at,
        )
        session.add(record)
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="token.issue",
            entity_type="api_token",
            entity_id=str(record.id),
            after={
                "staff": address,
                "name": name,
                "prefix": record.prefix,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
        return IssuedToken(token=token, token_id=record.id, email=address, role=user.role)


def authenticate_token(db: Database, token: str, now: datetime) -> StaffIdentity | None:
    """Return the staff identity behind a bearer token, or None if it is unknown or revoked."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    with db.session() as session:
        row = session.execute(
            select(ApiToken, StaffUser)
            .join(StaffUser, ApiToken.staff_user_id == StaffUser.id)
            .where(ApiToken.token_hash == token_digest(token))
        ).first()
        if row is None:
            return None
        record, user = row
        if record.revoked_at is not None or not user.active:
            return None
        if record.expires_at is not None and record.expires_at <= now:
            return None
        return StaffIdentity(id=user.id, email=user.email, role=StaffRole(user.role))


def verify_password(db: Database, email: str, password: str) -> StaffIdentity | None:
    """Return the identity for a correct email and password, else None."""
    with db.session() as session:
        user = session.scalar(select(StaffUser).where(StaffUser.email == email.strip().lower()))
        if user is None or not user.active or not user.password_hash:
            _hasher.hash("timing-equaliser")  # same cost whether or not the user exists
            return None
        try:
            _hasher.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        return StaffIdentity(id=user.id, email=user.email, role=StaffRole(user.role))
